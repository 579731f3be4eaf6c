"""Network partitions between the client and Redis, made with real network namespaces and
iptables (issue 13, item 2): a write the client gave up on must never be applied after a
later write of the same process, and the first write after recovery must be in Redis as soon
as it is acknowledged.

Redis runs alone in a network namespace (``secure_redis.testing.netns``); the partition drops
every packet entering it. A write abandoned during the partition still sits in the send
queue of the old TCP socket, and the kernel retransmits it once the path is back. The tests
heal when that retransmission is seconds away (its timer, read with ``ss``), so the writes
made after recovery come first, which is the order the issue saw; then they watch Redis
until the kernel holds no unacknowledged byte toward the server and for at least
``WATCH_AFTER_HEAL`` seconds, so anything still on its way has landed.

Only the head of an abandoned queue lands: the client has closed that socket, so Redis's
reply to the first retransmitted commands makes the kernel answer with a reset, which drops
the rest. Under load that is a few keys per partition, which is why the workload test rewrites
every key after recovery and checks them all. Root only; a test skips, saying why, only when
the kernel refuses namespaces.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Iterator

import pytest

import secure_redis as sr
from conftest import wait_until
from secure_redis.testing import NetworkNamespace, TestPKI, namespaces_available

# Short, so a write on a dead path is given up within a second and the tests stay quick.
SOCKET_TIMEOUT = 1.0
# How long a request then a PING may take before the client gives the connection up
# (supervisor.rs): a partition shorter than this would not make it reconnect.
NOTICED_AFTER = 2 * SOCKET_TIMEOUT + 0.5
# TCP retransmissions back off (about 0.2, 0.4, 1, 1.6, 3.2, 6.5 s apart here); healing right
# after one leaves seconds before the next.
MAX_PARTITION = 12.0
# The issue saw the retransmitted write about 4 s after the heal; wait longer than that even
# when the kernel shows nothing pending, in case a client replays writes itself.
WATCH_AFTER_HEAL = 6.0
WATCH_AT_MOST = 20.0
RECONNECT_WITHIN = 10.0


# The secrets stay inside fixtures: pytest prints a failing test's arguments, and the suite
# counts a secret in a failure's text as a leak.
@pytest.fixture
def partition_config(pki: TestPKI, password: str, encryption_key: str) -> sr.SecurityConfig:
    """The defaults (connection_timeout, retries, back-off), except the short socket_timeout."""
    return sr.SecurityConfig(
        redis_auth=password, encryption_key=encryption_key, tls_ca_path=pki.ca_cert, socket_timeout=SOCKET_TIMEOUT
    )


@pytest.fixture
def namespace(tmp_path, pki: TestPKI, password: str) -> Iterator[NetworkNamespace]:
    reason = namespaces_available()
    if reason is not None:
        pytest.skip(reason)
    with NetworkNamespace(tmp_path / "netns", pki, password=password) as made:
        yield made


def next_retransmission(namespace: NetworkNamespace) -> float | None:
    """Seconds until the kernel next retransmits data to the server; None when it holds none."""
    due = [view.retransmit_in for view in namespace.sockets_to_server() if view.retransmit_in is not None]
    return min(due) if due else None


async def heal_when_retransmission_is_far(
    namespace: NetworkNamespace, started: float, at_least: float
) -> tuple[int, float | None]:
    """Heals once the client has had time to give the connection up and the next retransmission
    of data it abandoned is at least `at_least` s away (or there is none), at the latest after
    MAX_PARTITION s. Returns the packets the partition dropped and the seconds left to that
    retransmission when it healed."""
    deadline = started + MAX_PARTITION
    due = next_retransmission(namespace)
    while time.monotonic() < deadline:
        if time.monotonic() - started >= NOTICED_AFTER and (due is None or due >= at_least):
            break
        await asyncio.sleep(0.05)
        due = next_retransmission(namespace)
    dropped = namespace.dropped_packets()  # before heal(): deleting the rules resets the counts
    namespace.heal()
    return dropped, due


async def watch_until_settled(
    namespace: NetworkNamespace, healed: float, observe: Callable[[], Awaitable[None]]
) -> bool:
    """Calls `observe` every 0.2 s until WATCH_AFTER_HEAL s have passed since the heal and no
    socket toward the server holds unacknowledged data (every abandoned write delivered or
    dropped), at most WATCH_AT_MOST s after the heal. Whether it settled."""
    while time.monotonic() - healed < WATCH_AT_MOST:
        await observe()
        if time.monotonic() - healed >= WATCH_AFTER_HEAL:
            if not [view for view in namespace.sockets_to_server() if view.holds_data]:
                return True
        await asyncio.sleep(0.2)
    await observe()
    return False


async def test_a_write_given_up_during_a_partition_never_lands_after_a_later_write(
    namespace: NetworkNamespace, partition_config: sr.SecurityConfig
) -> None:
    """The issue's reproduction: set v1; partition; set v2 (given up after socket_timeout);
    heal; set v3. Redis must hold v3 from its acknowledgement on, for another process and for
    the writer once v3 has left its L1."""
    writer = sr.GenericRedisCache(namespace.url, security_config=partition_config)
    # Another process's view: no L1, so every read is Redis's answer.
    reader = sr.GenericRedisCache(namespace.url, security_config=partition_config, enable_l1_cache=False)
    try:
        assert await writer.connect() and await reader.connect()
        await writer.set("k", "v1")
        assert await reader.get("k") == "v1"

        namespace.drop_inbound()
        started = time.monotonic()
        await writer.set("k", "v2")  # must give up without raising
        gave_up_after = time.monotonic() - started
        assert gave_up_after < SOCKET_TIMEOUT + 1.0, gave_up_after
        dropped, due = await heal_when_retransmission_is_far(namespace, started, at_least=2.5)
        healed = time.monotonic()
        assert dropped > 0, "the partition dropped nothing: the test did not partition anything"

        assert await wait_until(lambda: writer.ping(), timeout=RECONNECT_WITHIN), "the writer never reconnected"
        await writer.set("k", "v3")
        acknowledged = time.monotonic()
        right_after_ack = await reader.get("k")

        wrong_reads: list[tuple[float, object]] = []  # (seconds after v3's ack, what Redis held)

        async def observe() -> None:
            value = await reader.get("k")
            if value != "v3":
                wrong_reads.append((round(time.monotonic() - acknowledged, 1), value))

        settled = await watch_until_settled(namespace, healed, observe)
        in_redis = await reader.get("k")
        from_writer = await writer.get("k")
        # Push v3 out of the writer's L1 (an LRU of l1_cache_size entries), then read it back
        # from Redis: the writer, too, must see v3 and not the write it gave up on.
        await writer.set_many({f"filler:{i}": i for i in range(writer.l1_cache_size)})
        l1_hits = (await writer.get_cache_stats())["performance"]["l1_hits"]
        writer_from_redis = await writer.get("k")
        assert (await writer.get_cache_stats())["performance"]["l1_hits"] == l1_hits, "k was still in L1"

        problems = []
        if right_after_ack != "v3":
            problems.append(f"right after set(v3), the first write after recovery, returned, Redis held "
                            f"{right_after_ack!r}")
        if wrong_reads:
            problems.append(f"Redis held something other than v3 after v3 was acknowledged: {wrong_reads[:3]} ... "
                            f"{wrong_reads[-1:]} ({len(wrong_reads)} reads, seconds after the ack)")
        if in_redis != "v3":
            problems.append(f"at the end Redis holds {in_redis!r}, not v3")
        if from_writer != "v3":
            problems.append(f"the writer reads {from_writer!r}")
        if writer_from_redis != "v3":
            problems.append(f"once v3 left its L1 the writer reads {writer_from_redis!r}")
        if not settled:
            problems.append(f"the kernel still held unacknowledged data toward Redis {WATCH_AT_MOST} s after the heal")
        context = (f"v2 given up after {gave_up_after:.2f} s; healed {healed - started:.2f} s into the partition, "
                   f"{dropped} packets dropped, next retransmission then due in {due} s; v3 acknowledged "
                   f"{acknowledged - healed:.2f} s after the heal")
        assert not problems, "; ".join(problems) + f" ({context})"
    finally:
        await writer.disconnect()
        await reader.disconnect()


TASKS = 64
KEYS_PER_TASK = 4
DELETE_EVERY = 3  # every third operation of a task on its mixed keys is a delete
PAUSE = 0.03  # between a task's operations: enough load, and the loop stays responsive
WARM_UP = 0.5
AFTER_RECOVERY = 1.0  # every task keeps writing this long after the writer is back on Redis
_DELETED = object()


async def test_writes_and_deletes_racing_a_partition_leave_redis_as_the_process_last_wrote(
    namespace: NetworkNamespace, partition_config: sr.SecurityConfig
) -> None:
    """64 tasks set and delete their own keys while the network is cut and healed. Every write
    made after the writer is back is in Redis as soon as it returns; once every abandoned byte
    has been delivered, each key in Redis is the last value the process wrote, or absent when
    its last operation was a delete: no older value, no deleted key brought back.

    Each task's last key only ever gets sets, then a final delete after recovery; its other
    keys get sets and deletes, then a final set of a new value. So any abandoned write that
    lands after the final pass shows at the end, whichever key it was for."""
    writer = sr.GenericRedisCache(namespace.url, security_config=partition_config)
    reader = sr.GenericRedisCache(namespace.url, security_config=partition_config, enable_l1_cache=False)
    keys = [f"w:{task}:{index}" for task in range(TASKS) for index in range(KEYS_PER_TASK)]
    last: dict[str, object] = {}  # the process's last operation per key: a value or _DELETED
    written: dict[str, list[object]] = {key: [] for key in keys}  # every value, to name stale ones
    right_after_ack: list[str] = []  # post-recovery writes Redis did not show when they returned
    healed = asyncio.Event()
    recovered = asyncio.Event()
    stop = asyncio.Event()

    def describe(key: str, found: object) -> str | None:
        """None when Redis's `found` agrees with the process's last operation on `key`."""
        expected = last.get(key, _DELETED)
        if (found is None and expected is _DELETED) or found == expected:
            return None
        if found is None:
            return f"{key} missing (last wrote {expected!r})"
        if expected is _DELETED:
            return f"{key} deleted but holds {found!r}"
        earlier = "an earlier write" if found in written[key] else "a value never written"
        return f"{key} holds {found!r}, {earlier}, not {expected!r}"

    async def apply(key: str, value: str | None) -> None:
        """Sets `key` to `value`, or deletes it for None; checked against Redis at once when
        made after the heal on a live connection: from the very first such write (the one that
        starts the repair) each must be in Redis when it returns."""
        checked = healed.is_set() and writer.is_available
        if value is None:
            await writer.delete(key)
            last[key] = _DELETED
        else:
            await writer.set(key, value)
            last[key] = value
            written[key].append(value)
        if checked:
            problem = describe(key, await reader.get(key))
            if problem is not None:
                right_after_ack.append(problem)

    async def work(task: int) -> None:
        operation = 0
        while not stop.is_set():  # bounded: the phases below set `stop`
            index = operation % KEYS_PER_TASK
            operation += 1
            mixed = index < KEYS_PER_TASK - 1
            delete = mixed and operation % DELETE_EVERY == 0
            await apply(f"w:{task}:{index}", None if delete else f"{task}:{operation}")
            await asyncio.sleep(PAUSE)
        if recovered.is_set():
            for index in range(KEYS_PER_TASK):
                operation += 1
                final_delete = index == KEYS_PER_TASK - 1
                await apply(f"w:{task}:{index}", None if final_delete else f"{task}:{operation}")

    try:
        assert await writer.connect() and await reader.connect()
        workers = [asyncio.create_task(work(task)) for task in range(TASKS)]
        try:
            await asyncio.sleep(WARM_UP)
            namespace.drop_inbound()
            started = time.monotonic()
            dropped, due = await heal_when_retransmission_is_far(namespace, started, at_least=5.0)
            healed_at = time.monotonic()
            healed.set()
            assert dropped > 0, "the partition dropped nothing: the test did not partition anything"
            assert await wait_until(lambda: writer.ping(), timeout=RECONNECT_WITHIN), "the writer never reconnected"
            back = time.monotonic()
            recovered.set()
            await asyncio.sleep(AFTER_RECOVERY)
        finally:
            stop.set()
            outcomes = await asyncio.wait_for(asyncio.gather(*workers, return_exceptions=True), timeout=30)
        assert not [o for o in outcomes if isinstance(o, BaseException)], outcomes
        stopped = time.monotonic()

        async def observe() -> None:  # the end state is what counts; nothing to see on the way
            return None

        settled = await watch_until_settled(namespace, healed_at, observe)
        in_redis = await reader.get_many(keys)
        at_the_end = [p for p in (describe(key, in_redis.get(key)) for key in keys) if p is not None]
        writer_reads = [p for p in [describe(key, await writer.get(key)) for key in keys] if p is not None]

        problems = []
        if right_after_ack:
            problems.append(f"{len(right_after_ack)} writes after recovery were not in Redis when they returned, "
                            f"e.g. {right_after_ack[:3]}")
        if at_the_end:
            problems.append(f"{len(at_the_end)} of {len(keys)} keys in Redis differ from the process's last "
                            f"operation, e.g. {at_the_end[:3]}")
        if writer_reads:
            problems.append(f"the writer reads {len(writer_reads)} keys wrong, e.g. {writer_reads[:3]}")
        if not settled:
            problems.append(f"the kernel still held unacknowledged data toward Redis {WATCH_AT_MOST} s after the heal")
        context = (f"healed {healed_at - started:.2f} s into the partition, {dropped} packets dropped, next "
                   f"retransmission then due in {due} s; back on Redis {back - healed_at:.2f} s after the heal, "
                   f"writes stopped {stopped - healed_at:.2f} s after it")
        assert not problems, "; ".join(problems) + f" ({context})"
    finally:
        await writer.disconnect()
        await reader.disconnect()
