"""L1 coherence across processes (issue 13, item 1): no process serves a value from its L1
after another process's newer write or delete has been acknowledged for 100 ms.

Each test runs real OS processes against real TLS Redis: writers perform versioned sets and
deletes, readers read hot keys over and over (so their L1 really holds them when a writer
changes them), and the stale-read rule of tests/coherence_workers.py is applied to every read
afterwards. Faults: the invalidation connections killed with CLIENT KILL, Redis restarted,
a Sentinel failover; topologies: one node, Sentinel, Cluster; and a real
``uvicorn --workers 2`` app driven over HTTP.

Relies on the fix's contract: each cache's invalidation connection (one per node it tracks)
is named ``secure_redis:invalidation`` (CLIENT SETNAME) and carries the tracking flag ``t``.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest
import redis

import secure_redis as sr
from coherence_workers import MAX_VERSIONS, key_name, make_cache, run_role, stale_reads
from conftest import find_secrets, remember_secret
from secure_redis.testing import RedisCluster, RedisSentinelSet, TestPKI, free_port, random_password

INVALIDATION_NAME = "secure_redis:invalidation"
TESTS = Path(__file__).resolve().parent
HOT_KEYS = 8  # well under the default L1 size (100): nothing is evicted, L1 keeps every key
# Paces (seconds). A writer op costs two round trips (the op and the acknowledgement check),
# so a key changes every ~40 ms, and a reader reads it every ~2.5 ms: many L1 hits per version.
WRITE_PAUSE = 0.003
READ_PAUSE = 0.002
MIN_L1_SHARE = 0.10  # of a reader's reads answered by L1: below this the test proves little


# -- settings and Redis administration ---------------------------------------------------------


class Credentials:
    """The session's password, encryption key and CA in one argument. pytest prints a failing
    test's arguments, so no test here takes a secret directly; this repr shows none."""

    def __init__(self, pki: TestPKI, password: str, encryption_key: str) -> None:
        self.pki, self.password, self.encryption_key = pki, password, encryption_key

    def __repr__(self) -> str:
        return "Credentials(***)"


@pytest.fixture
def creds(pki: TestPKI, password: str, encryption_key: str) -> Credentials:
    return Credentials(pki, password, encryption_key)


class Settings(dict):
    """What a child needs to build its cache (see coherence_workers.make_cache); it travels
    through multiprocessing's pipe, never argv. Its repr leaves the secrets out."""

    def __repr__(self) -> str:
        return f"Settings(url={self['url']!r})"


def settings_for(url: str, creds: Credentials, **extra: Any) -> Settings:
    return Settings(url=url, password=creds.password, encryption_key=creds.encryption_key,
                    ca=str(creds.pki.ca_cert), **extra)


def admin(port: int, creds: Credentials) -> redis.Redis:
    """A raw TLS client for CLIENT LIST / CLIENT KILL (the password stays in this process)."""
    return redis.Redis(host="127.0.0.1", port=port, password=creds.password, ssl=True,
                       ssl_ca_certs=str(creds.pki.ca_cert), socket_timeout=5)


def invalidation_clients(client: redis.Redis) -> list[dict[str, Any]]:
    return [c for c in client.client_list() if c.get("name") == INVALIDATION_NAME]


def kill_invalidation_clients(client: redis.Redis) -> list[dict[str, Any]]:
    found = invalidation_clients(client)
    for entry in found:
        client.execute_command("CLIENT", "KILL", "ID", entry["id"])
    return found


def wait_for_invalidation_clients(client: redis.Redis, count: int, timeout: float = 10.0) -> float | None:
    """When at least `count` named invalidation connections are up (monotonic time), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if len(invalidation_clients(client)) >= count:
                return time.monotonic()
        except redis.RedisError:
            pass  # Redis still coming back
        time.sleep(0.05)
    return None


def roles(writers: dict[str, list[int]], readers: dict[str, list[int]], seconds: float) -> dict[str, dict[str, Any]]:
    """Role per child: the keys it writes and the keys it reads (a child may do both)."""
    names = list(dict.fromkeys([*writers, *readers]))
    return {
        name: {
            "writes": writers.get(name, []), "reads": readers.get(name, []),
            "seed": index, "write_pause": WRITE_PAUSE, "read_pause": READ_PAUSE,
            "max_writes": 20_000, "max_seconds": seconds,
        }
        for index, name in enumerate(names)
    }


async def seed(cache: sr.GenericRedisCache, keys: range, acks) -> None:
    """Version 0 of every key, acknowledged before any child starts; then read back, which
    fills this cache's L1 when it has one (the fork variant's parent)."""
    assert await cache.connect() is True
    for index in keys:
        await cache.set(key_name(index), {"key": key_name(index), "v": 0})
        acks[index * MAX_VERSIONS] = time.monotonic()
    for index in keys:
        assert await cache.get(key_name(index)) == {"key": key_name(index), "v": 0}


# -- the workload ---------------------------------------------------------------------------------


class Workload:
    """Children running `run_role`, the shared acknowledgement table and what they reported."""

    def __init__(self, tmp_path: Path, method: str, settings: dict[str, Any], child_roles: dict[str, dict[str, Any]],
                 keys: int = HOT_KEYS) -> None:
        self.ctx = multiprocessing.get_context(method)
        self.folder = tmp_path
        self.settings = settings
        self.roles = child_roles
        self.keys = range(keys)
        self.acks = self.ctx.RawArray("d", keys * MAX_VERSIONS)
        self.shared = {
            "acks": self.acks, "ready": self.ctx.Value("i", 0), "go": self.ctx.Event(),
            "stop": self.ctx.Event(), "pause": self.ctx.Event(), "paused": self.ctx.Event(),
        }
        self.processes: list[Any] = []
        self.results: dict[str, dict[str, Any]] = {}
        self.facts: dict[str, Any] = {}
        self._stale: list[dict[str, Any]] | None = None

    def seed_with_fresh_cache(self) -> None:
        async def run() -> None:
            cache = make_cache(Settings({**self.settings, "cache_kwargs": {**self.settings.get("cache_kwargs", {}),
                                                                           "enable_l1_cache": False}}))
            try:
                await seed(cache, self.keys, self.acks)
            finally:
                await cache.disconnect()

        asyncio.run(run())

    def run(self, *, before: float, after: float, fault: Callable[["Workload"], dict[str, Any]] | None = None,
            inherited: sr.GenericRedisCache | None = None) -> "Workload":
        """Starts the children, lets them work `before` seconds, applies `fault`, lets them work
        `after` more seconds, stops them. Children are killed on the way out, whatever happened."""
        try:
            for name, role in self.roles.items():
                process = self.ctx.Process(
                    target=run_role, name=f"coherence-{name}", daemon=True,
                    args=(name, self.settings, role, self.shared, str(self.folder / f"{name}.json"), inherited),
                )
                process.start()
                self.processes.append(process)
            self._wait_until_warm(timeout=20)
            self.shared["go"].set()
            time.sleep(before)
            if fault is not None:
                self.facts = fault(self)
            time.sleep(after)
            self.shared["stop"].set()
            for process in self.processes:
                process.join(timeout=30)
        finally:
            self.shared["stop"].set()
            self.shared["pause"].clear()
            self.shared["go"].set()  # a child still waiting for the start gives up at once
            for process in self.processes:
                if process.is_alive():
                    process.kill()
                process.join(timeout=5)
        for name in self.roles:
            path = self.folder / f"{name}.json"
            self.results[name] = json.loads(path.read_text()) if path.exists() else {"error": "no result file"}
        return self

    def _wait_until_warm(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.shared["ready"].value < len(self.processes):
            dead = [p.name for p in self.processes if p.exitcode is not None]
            if dead or time.monotonic() > deadline:
                self.shared["stop"].set()
                for process in self.processes:
                    process.join(timeout=10)
                errors = {name: self._error_of(name) for name in self.roles}
                raise AssertionError(f"children did not get ready (dead: {dead}): {errors}")
            time.sleep(0.02)

    def _error_of(self, name: str) -> str | None:
        path = self.folder / f"{name}.json"
        return json.loads(path.read_text()).get("error") if path.exists() else "no result file"

    # -- what happened

    def readers(self) -> dict[str, dict[str, Any]]:
        return {name: result for name, result in self.results.items() if self.roles[name]["reads"]}

    def stale(self) -> list[dict[str, Any]]:
        if self._stale is None:
            self._stale = [dict(s, reader=name) for name, r in self.readers().items()
                           for s in stale_reads(r["reads"], self.acks)]
        return self._stale

    def summary(self, label: str) -> str:
        reads = sum(len(r["reads"]) for r in self.readers().values())
        misses = sum(1 for r in self.readers().values() for read in r["reads"] if read[2] < 0)
        writes = sum(r.get("writes", 0) for r in self.results.values())
        unacknowledged = sum(r.get("unacknowledged", 0) for r in self.results.values())
        l1 = {name: r.get("l1_hits") for name, r in self.readers().items()}
        line = (f"[{label}] stale reads: {len(self.stale())} of {reads} reads ({misses} misses); "
                f"{writes} writes ({unacknowledged} not acknowledged); L1 hits per reader: {l1}; "
                f"facts: {self.facts}")
        print(line)
        return line

    def l1_hits_after(self, name: str, since: float) -> int:
        """L1 hits a reader counted between its first sample after `since` and its last one."""
        samples = [s for s in self.results[name]["timeline"] if s[0] >= since]
        return samples[-1][1] - samples[0][1] if len(samples) >= 2 else 0

    def check(self, label: str, *, min_writes: int = 300) -> None:
        """No child failed, the workload was real (writes, reads, L1 hits) and nothing was stale."""
        errors = {name: r["error"] for name, r in self.results.items() if r.get("error")}
        assert not errors, errors
        assert [p.exitcode for p in self.processes] == [0] * len(self.processes)
        line = self.summary(label)
        stale = self.stale()
        assert len(stale) == 0, f"{line}; first stale reads: {stale[:5]}"
        writes = sum(r["writes"] for r in self.results.values())
        assert writes >= min_writes, line
        for name, result in self.readers().items():
            reads = len(result["reads"])
            assert reads >= 1000, line
            # Without L1 hits, "no stale read" would say nothing about L1.
            assert result["l1_hits"] >= MIN_L1_SHARE * reads, f"{name}: {line}"


# -- one node -------------------------------------------------------------------------------------


@pytest.fixture
def node(make_server):
    """A server of this test's own: the restart test stops it, and CLIENT LIST stays ours."""
    return make_server("coherence")


def one_writer(readers: int, seconds: float) -> dict[str, dict[str, Any]]:
    every = list(range(HOT_KEYS))
    return roles({"writer": every}, {f"reader-{i}": every for i in range(readers)}, seconds)


def test_two_spawned_processes_writer_and_reader(tmp_path, node, creds) -> None:
    workload = Workload(tmp_path, "spawn", settings_for(node.url, creds), one_writer(1, 60))
    workload.seed_with_fresh_cache()
    workload.run(before=4, after=4)
    workload.check("spawn, 1 writer + 1 reader")


def test_two_forked_processes_after_the_parent_used_the_cache(tmp_path, node, creds) -> None:
    """As under gunicorn --preload: the parent made the cache and filled its L1, then forked;
    both children use that inherited cache (and its inherited L1)."""
    settings = settings_for(node.url, creds)
    workload = Workload(tmp_path, "fork", settings, one_writer(1, 60))
    inherited = make_cache(settings)
    try:
        asyncio.run(seed(inherited, workload.keys, workload.acks))
        workload.run(before=4, after=4, inherited=inherited)
    finally:
        asyncio.run(inherited.disconnect())
    workload.check("fork after use, 1 writer + 1 reader")


def test_three_processes_one_writer_two_readers(tmp_path, node, creds) -> None:
    workload = Workload(tmp_path, "spawn", settings_for(node.url, creds), one_writer(2, 60))
    workload.seed_with_fresh_cache()
    workload.run(before=4, after=4)
    workload.check("spawn, 1 writer + 2 readers")


def test_three_processes_writing_in_two(tmp_path, node, creds) -> None:
    """A and B each write half the keys and read the other half; C reads everything."""
    first, second = list(range(HOT_KEYS // 2)), list(range(HOT_KEYS // 2, HOT_KEYS))
    child_roles = roles({"a": first, "b": second}, {"a": second, "b": first, "c": first + second}, 60)
    workload = Workload(tmp_path, "spawn", settings_for(node.url, creds), child_roles)
    workload.seed_with_fresh_cache()
    workload.run(before=4, after=4)
    workload.check("spawn, writes in 2 of 3 processes")


def test_invalidation_connections_killed_mid_run(tmp_path, node, creds) -> None:
    """CLIENT KILL of every invalidation connection: until each is back, its cache must not
    serve from an L1 that may have missed an invalidation; once back, L1 serves again."""
    workload = Workload(tmp_path, "spawn", settings_for(node.url, creds), one_writer(1, 60))
    workload.seed_with_fresh_cache()
    client = admin(node.port, creds)

    def kill(_: Workload) -> dict[str, Any]:
        # On one node each cache's own data connection is tracked (flag t), redirected to its
        # named invalidation connection, which carries the id of the redirect target.
        tracked = [c for c in client.client_list() if "t" in c["flags"]]
        killed = kill_invalidation_clients(client)
        killed_at = time.monotonic()
        back_at = wait_for_invalidation_clients(client, max(len(killed), 1))
        return {"killed": len(killed), "tracking_flag": len(tracked) >= len(killed) > 0,
                "killed_at": killed_at, "back_at": back_at,
                "back_after_s": None if back_at is None else round(back_at - killed_at, 3)}

    try:
        workload.run(before=3, after=4, fault=kill)
    finally:
        client.close()
    workload.check("CLIENT KILL of the invalidation connections")
    facts = workload.facts
    # One per cache: the writer's and the reader's (both have L1).
    assert facts["killed"] >= len(workload.roles) and facts["tracking_flag"], facts
    assert facts["back_at"] is not None, f"the invalidation connections did not come back: {facts}"
    assert workload.l1_hits_after("reader-0", facts["back_at"]) > 0, "L1 never served again after the kill"


def test_redis_restarted_mid_run(tmp_path, node, creds) -> None:
    """Redis stopped for half a second and started again on the same port (empty: no
    persistence): no stale read, reads work afterwards and L1 serves again."""
    workload = Workload(tmp_path, "spawn", settings_for(node.url, creds), one_writer(1, 60))
    workload.seed_with_fresh_cache()

    def restart(_: Workload) -> dict[str, Any]:
        node.stop()
        stopped_at = time.monotonic()
        time.sleep(0.5)  # long enough for writes and reads to meet a dead Redis
        node.restart()
        client = admin(node.port, creds)
        try:
            back_at = wait_for_invalidation_clients(client, len(workload.roles))
        finally:
            client.close()
        return {"stopped_at": stopped_at, "back_at": back_at,
                "back_after_s": None if back_at is None else round(back_at - stopped_at, 3)}

    workload.run(before=3, after=4, fault=restart)
    workload.check("Redis restarted")
    facts = workload.facts
    assert facts["back_at"] is not None, f"the invalidation connections did not come back: {facts}"
    reader = workload.results["reader-0"]
    answered = [read for read in reader["reads"] if read[1] >= facts["back_at"] and read[2] >= 0]
    assert len(answered) >= 100, f"only {len(answered)} reads found a value after the restart"
    assert workload.l1_hits_after("reader-0", facts["back_at"]) > 0, "L1 never served again after the restart"


# -- a real uvicorn app with two workers ------------------------------------------------------------


def _app_env(node, creds: Credentials) -> dict[str, str]:
    """The app's configuration, the way examples/app.py gets it: environment only. Inherited
    REDIS_* and environment-name variables are dropped so nothing else steers it."""
    ours = ("REDIS_", "ENFORCE_AUTH", "ENVIRONMENT", "NODE_ENV", "FLASK_ENV", "APP_ENV", "ENV", "DEPLOYMENT_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    package_root = str(Path(sr.__file__).resolve().parent.parent)
    env.update({
        "ENVIRONMENT": "testing",
        "REDIS_URL": node.url,
        "REDIS_PASSWORD": creds.password,
        "REDIS_ENCRYPTION_KEY": creds.encryption_key,
        "REDIS_TLS_CA_PATH": str(creds.pki.ca_cert),
        "PYTHONPATH": os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p),
    })
    return env


def _stop_group(process: subprocess.Popen) -> None:
    """uvicorn's supervisor and its workers: SIGTERM to the group, SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)
    except ProcessLookupError:
        pass


class HttpClientThread(threading.Thread):
    """Owns keys `indices`: writes one of them (set or delete, versioned), then reads all of
    them, over and over; a new TCP connection per request, so requests land on either worker."""

    def __init__(self, base: str, indices: list[int], acks: list[float], deadline: float, budget: list[int],
                 seed: int) -> None:
        super().__init__(daemon=True)
        self.base, self.indices, self.acks, self.deadline, self.budget = base, indices, acks, deadline, budget
        self.rng = random.Random(seed)
        self.reads: list[tuple[int, float, int]] = []
        self.read_pids: dict[int, int] = {}
        self.write_pids: dict[int, int] = {}
        self.error: str | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base, timeout=10,
                              limits=httpx.Limits(max_keepalive_connections=0)) as client:
                self._work(client)
        except Exception as error:  # reported by the test
            self.error = f"{type(error).__name__}: {error}"

    def _count(self, pids: dict[int, int], response: httpx.Response) -> dict[str, Any]:
        response.raise_for_status()
        body = response.json()
        pids[body["pid"]] = pids.get(body["pid"], 0) + 1
        self.budget[0] -= 1
        return body

    def _work(self, client: httpx.Client) -> None:
        versions = {index: 0 for index in self.indices}
        for index in self.indices:  # version 0, then a first read that fills a worker's L1
            self._count(self.write_pids, client.put(f"/kv/{key_name(index)}", json={"key": key_name(index), "v": 0}))
            self.acks[index * MAX_VERSIONS] = time.monotonic()
        step = 0
        while time.monotonic() < self.deadline and self.budget[0] > 0:
            index = self.indices[step % len(self.indices)]
            step += 1
            version = versions[index] + 1
            if version >= MAX_VERSIONS:
                return
            name = key_name(index)
            if self.rng.random() < 0.2:
                self._count(self.write_pids, client.delete(f"/kv/{name}"))
            else:
                self._count(self.write_pids, client.put(f"/kv/{name}", json={"key": name, "v": version}))
            self.acks[index * MAX_VERSIONS + version] = time.monotonic()  # the 200 is the acknowledgement
            versions[index] = version
            for read in self.indices:
                started = time.monotonic()
                value = self._count(self.read_pids, client.get(f"/kv/{key_name(read)}"))["value"]
                self.reads.append((read, started, -1 if value is None else value["v"]))


def test_uvicorn_two_workers_serve_no_stale_reads(tmp_path, node, creds) -> None:
    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    command = [sys.executable, "-m", "uvicorn", "coherence_app:app", "--app-dir", str(TESTS), "--workers", "2",
               "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
    base = f"http://127.0.0.1:{port}"
    threads_count, keys_per_thread = 4, 6
    acks = [0.0] * (threads_count * keys_per_thread * MAX_VERSIONS)
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, env=_app_env(node, creds), stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
    try:
        worker_pids = _wait_for_workers(base, server, timeout=30)
        budget = [8000]  # requests, shared by the threads (a bound, not exact)
        deadline = time.monotonic() + 15
        threads = [
            HttpClientThread(base, list(range(t * keys_per_thread, (t + 1) * keys_per_thread)), acks, deadline,
                             budget, seed=t)
            for t in range(threads_count)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        l1_hits = _l1_hits_per_worker(base, worker_pids)
    finally:
        _stop_group(server)
    output = log_path.read_text(errors="replace")
    assert not find_secrets(output), "a secret appeared in the app's output"
    errors = [t.error for t in threads if t.error]
    assert not errors, f"{errors}; app output: {output[-2000:]}"
    reads = [read for t in threads for read in t.reads]
    stale = stale_reads(reads, acks)
    strict = stale_reads(reads, acks, bound=0.0)
    read_pids, write_pids = {}, {}
    for t in threads:
        for pid, n in t.read_pids.items():
            read_pids[pid] = read_pids.get(pid, 0) + n
        for pid, n in t.write_pids.items():
            write_pids[pid] = write_pids.get(pid, 0) + n
    line = (f"[uvicorn --workers 2] stale reads: {len(stale)} of {len(reads)} reads "
            f"({sum(1 for r in reads if r[2] < 0)} misses; {len(strict)} older than the last acknowledged write, "
            f"no grace); writes per worker pid: {write_pids}; reads per worker pid: {read_pids}; "
            f"L1 hits per worker: {l1_hits}")
    print(line)
    assert len(stale) == 0, f"{line}; first stale reads: {stale[:5]}"
    assert len(reads) >= 1500, line  # thousands of requests: reads are 6 in 7 of them
    assert set(read_pids) == set(write_pids) == set(worker_pids), line  # both workers served both
    assert all(l1_hits[pid] >= 0.05 * read_pids[pid] for pid in worker_pids), line


def _wait_for_workers(base: str, server: subprocess.Popen, timeout: float) -> set[int]:
    """Both workers answer (each started its lifespan, so each has its cache)."""
    pids: set[int] = set()
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        while time.monotonic() < deadline and len(pids) < 2:
            assert server.poll() is None, "uvicorn exited"
            try:
                pids.add(client.get("/l1").json()["pid"])
            except httpx.HTTPError:
                time.sleep(0.1)
    assert len(pids) == 2, f"only workers {pids} answered"
    return pids


def _l1_hits_per_worker(base: str, pids: set[int]) -> dict[int, int]:
    """Asked until each worker has answered once (the kernel picks the worker)."""
    hits: dict[int, int] = {}
    with httpx.Client(base_url=base, timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        for _ in range(200):
            body = client.get("/l1").json()
            hits[body["pid"]] = body["l1_hits"]
            if set(hits) >= pids:
                break
    return hits


# -- Sentinel and Cluster ---------------------------------------------------------------------------


def test_sentinel_failover_mid_run(monkeypatch, tmp_path, creds) -> None:
    """Writes are quiesced and replicated, the primary is killed, the replica promoted, writes
    resume on it: the caches follow, and their invalidation connections with them."""
    sentinel_password = remember_secret(random_password(40))  # a local: pytest prints arguments, not locals
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", sentinel_password)  # for the seeding cache here
    pki = creds.pki
    running = RedisSentinelSet(tmp_path / "sentinel", password=creds.password, sentinel_password=sentinel_password,
                               cert=pki.server_cert, key=pki.server_key, ca=pki.ca_cert, down_after_ms=1000).start()
    try:
        settings = settings_for(
            "rediss://127.0.0.1:6380/0", creds,  # the address comes from the sentinels
            cache_kwargs={"sentinel_nodes": running.sentinel_urls, "sentinel_master": RedisSentinelSet.MASTER_NAME},
            env={"REDIS_SENTINEL_PASSWORD": sentinel_password},
        )
        workload = Workload(tmp_path, "spawn", settings, one_writer(1, 90))
        workload.seed_with_fresh_cache()

        def failover(w: Workload) -> dict[str, Any]:
            w.shared["pause"].set()
            deadline = time.monotonic() + 10
            while not w.shared["paused"].is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert w.shared["paused"].is_set(), "the writer did not pause"
            old_port = running.primary_port()
            primary = admin(old_port, creds)
            try:
                # Replication is asynchronous: without this, a write acknowledged just before the
                # kill could be lost with the primary, and an older value would look stale.
                primary.set("coherence:sync", 1)
                assert primary.execute_command("WAIT", 1, 5000) >= 1
            finally:
                primary.close()
            running.primary.kill()
            killed_at = time.monotonic()
            running.wait_for_failover(old_port, timeout=30)
            promoted_at = time.monotonic()
            w.shared["pause"].clear()
            client = admin(running.primary_port(), creds)
            try:
                back_at = wait_for_invalidation_clients(client, len(w.roles), timeout=6)
            finally:
                client.close()
            return {"failover_s": round(promoted_at - killed_at, 3), "back_at": back_at,
                    "back_after_s": None if back_at is None else round(back_at - killed_at, 3)}

        workload.run(before=2, after=3, fault=failover)
    finally:
        running.stop()
    workload.check("Sentinel failover", min_writes=200)
    facts = workload.facts
    assert facts["back_at"] is not None, f"no invalidation connections on the new primary: {facts}"
    assert workload.l1_hits_after("reader-0", facts["back_at"]) > 0, "L1 never served again after the failover"


def test_cluster_one_writer_one_reader(tmp_path, creds) -> None:
    """Keys spread over three primaries; each cache tracks every primary it reads from."""
    keys = 12
    pki = creds.pki
    with RedisCluster(tmp_path / "cluster", password=creds.password, cert=pki.server_cert, key=pki.server_key,
                      ca=pki.ca_cert, client_cert=pki.client_cert, client_key=pki.client_key) as cluster:
        settings = settings_for(cluster.seed_url, creds, cache_kwargs={"cluster": True})
        every = list(range(keys))
        workload = Workload(tmp_path, "spawn", settings, roles({"writer": every}, {"reader-0": every}, 60), keys=keys)
        workload.seed_with_fresh_cache()

        def look(_: Workload) -> dict[str, Any]:
            """Per primary that holds some of the keys: how many invalidation connections it has."""
            seen = {}
            for primary in cluster.primaries():
                client = admin(primary.port, creds)
                try:
                    if any(client.scan_iter("coherence:*")):
                        seen[primary.port] = len(invalidation_clients(client))
                finally:
                    client.close()
            return {"invalidation_connections_per_primary": seen}

        workload.run(before=3, after=3, fault=look)
    workload.check("Cluster", min_writes=200)
    per_primary = workload.facts["invalidation_connections_per_primary"]
    assert len(per_primary) >= 2 and all(n >= 1 for n in per_primary.values()), per_primary
