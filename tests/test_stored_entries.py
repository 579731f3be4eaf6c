"""What is really stored in Redis, and what happens when someone else writes there."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import pickle
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

import secure_redis as sr
from conftest import remember_secret


async def test_raw_bytes_are_a_fernet_token_cryptography_opens(cache, raw_redis, encryption_key) -> None:
    await cache.set("user:1", {"name": "Ada Lovelace", "private": "diagnosis"})
    stored = raw_redis.get("user:1")
    assert stored.startswith(b"gAAAAA")
    # Needles of eight bytes or more: a three-letter one such as "Ada" turns up in random base64
    # by chance (it did, in a CI run). Neither the token nor its decoded bytes may hold them.
    for needle in (b"diagnosis", b"Lovelace", b'"private"'):
        assert needle not in stored and needle not in base64.urlsafe_b64decode(stored)
    plaintext = Fernet(encryption_key).decrypt(stored)
    # The documented envelope: "SR", version 2, codec 'j', 16-byte binding digest, 8-byte expiry, JSON.
    assert plaintext[:4] == b"SR\x02j"
    assert plaintext[4:20] == _binding("user:1", db=0)
    expires_at = int.from_bytes(plaintext[20:28], "big")
    assert abs(expires_at - (time.time() + 3600)) < 5
    assert json.loads(plaintext[28:]) == {"name": "Ada Lovelace", "private": "diagnosis"}


def _binding(name: str, db: int, namespace: str = "") -> bytes:
    """The version 2 binding digest, as the README's "What is stored in Redis" gives it."""
    assert name.startswith(namespace)
    fields = [b"secure_redis/entry-binding/v2\0", db.to_bytes(8, "big"), (0).to_bytes(8, "big"),
              len(namespace).to_bytes(8, "big"), namespace.encode(), name[len(namespace):].encode()]
    return hashlib.sha256(b"".join(fields)).digest()[:16]


def _raw_client_on(server, pki, password: str, db: int):
    """A plain redis-py client over TLS on database ``db`` of ``server``."""
    import redis

    return redis.Redis(host=server.host, port=server.port, db=db, password=password, ssl=True,
                       ssl_ca_certs=str(pki.ca_cert), ssl_cert_reqs=ssl.CERT_REQUIRED)


async def _read_fresh(cache, key):
    fresh = sr.GenericRedisCache(cache.redis_url, security_config=cache.security_config, enable_l1_cache=False)
    return await fresh.get(key)


def _tamper_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "secure_redis.tamper" and r.levelno == logging.WARNING]


async def test_token_copied_to_another_key_reads_as_miss(cache, raw_redis, caplog) -> None:
    await cache.set("account:alice", {"balance": 100})
    raw_redis.set("account:mallory", raw_redis.get("account:alice"))
    assert await _read_fresh(cache, "account:mallory") is None
    warnings = _tamper_warnings(caplog)
    assert len(warnings) == 1 and "another key" in warnings[0].getMessage()
    assert await _read_fresh(cache, "account:alice") == {"balance": 100}


async def test_token_copied_to_another_database_reads_as_miss(cache, raw_redis, redis_server, config, pki,
                                                              password, encryption_key, caplog) -> None:
    """A genuine token copied under the same name into another database (SELECT 1) is bound to
    database 0: a cache on /1 reads a miss through get and get_many and counts each as a
    rejection, while the same name written by that cache opens there. (Before entries were
    bound to their database, the copy opened on /1.)"""
    await cache.set("account:alice", {"balance": 100})
    on_db1_raw = _raw_client_on(redis_server, pki, password, db=1)
    on_db1 = sr.GenericRedisCache(redis_server.url.rsplit("/", 1)[0] + "/1", security_config=config,
                                  enable_l1_cache=False)
    try:
        on_db1_raw.set("account:alice", raw_redis.get("account:alice"))
        caplog.clear()
        assert await on_db1.get("account:alice") is None
        assert await on_db1.get_many(["account:alice"]) == {}
        warnings = _tamper_warnings(caplog)
        assert len(warnings) == 1 and "another database" in warnings[0].getMessage()
        performance = (await on_db1.get_cache_stats())["performance"]
        assert performance["rejected_by_kind"]["foreign_key"] == 2 and performance["rejected_entries"] == 2
        # The copy is not this cache's entry either: a pattern invalidation leaves it alone.
        assert await on_db1.invalidate_pattern("account:*") == 0
        assert on_db1_raw.get("account:alice") == raw_redis.get("account:alice")
        # Written on /1 by the cache on /1, the same name opens there, and on /0 the original still does.
        await on_db1.set("account:alice", {"balance": 1})
        assert Fernet(encryption_key).decrypt(on_db1_raw.get("account:alice"))[4:20] == _binding(
            "account:alice", db=1)
        assert await on_db1.get("account:alice") == {"balance": 1}
        assert await _read_fresh(cache, "account:alice") == {"balance": 100}
    finally:
        on_db1_raw.delete("account:alice")
        on_db1_raw.close()
        await on_db1.disconnect()


async def test_version_1_entries_stay_readable_until_rewritten(cache, raw_redis, redis_server, pki, password,
                                                               encryption_key, config) -> None:
    """An entry written before entries were bound to their database (format version 1, bound to
    its name alone) still opens through get and get_many, in any database, as documented; once
    the cache rewrites it, it is a version 2 entry, bound to its database too."""
    name = "legacy:1"
    raw_redis.set(name, Fernet(encryption_key).encrypt(_sealed(name, b"j", b'{"written":"before"}')))
    on_db1_raw = _raw_client_on(redis_server, pki, password, db=1)
    on_db1 = sr.GenericRedisCache(redis_server.url.rsplit("/", 1)[0] + "/1", security_config=config,
                                  enable_l1_cache=False)
    try:
        assert await _read_fresh(cache, name) == {"written": "before"}
        assert await cache.get_many([name]) == {name: {"written": "before"}}
        on_db1_raw.set(name, raw_redis.get(name))
        assert await on_db1.get(name) == {"written": "before"}  # version 1: bound to the name only
        await cache.set(name, {"written": "after"})
        rewritten = raw_redis.get(name)
        assert Fernet(encryption_key).decrypt(rewritten)[:3] == b"SR\x02"
        on_db1_raw.set(name, rewritten)
        assert await on_db1.get(name) is None  # now bound to database 0 as well
        assert await _read_fresh(cache, name) == {"written": "after"}
    finally:
        on_db1_raw.delete(name)
        on_db1_raw.close()
        await on_db1.disconnect()


class _Exploit:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _sealed(key: str, codec: bytes, payload: bytes, expires_in: int = 3600) -> bytes:
    """A plaintext in our envelope, as only a holder of the Fernet key could make it."""
    digest = hashlib.sha256(key.encode()).digest()[:16]
    return b"SR\x01" + codec + digest + (int(time.time()) + expires_in).to_bytes(8, "big") + payload


HOSTILE_KINDS = ["plain_json", "pickle_rce", "tampered", "foreign_key", "truncated", "garbage", "lz4_bomb",
                 "zstd_bomb", "absurd_timestamp", "unknown_codec", "malformed_json", "copied_token"]


def _hostile_payload(kind: str, genuine: bytes, other_genuine: bytes, marker, encryption_key: str) -> bytes:
    """What an attacker with write access to Redis (but not, mostly, the key) puts under "victim"."""
    if kind == "plain_json":
        return b'{"real": false, "injected": true}'
    if kind == "pickle_rce":
        exploit = _Exploit()
        exploit.marker = marker
        return pickle.dumps(exploit)
    if kind == "tampered":
        mutable = bytearray(genuine)
        mutable[len(mutable) // 2] ^= 0x01
        return bytes(mutable)
    if kind == "foreign_key":
        other = remember_secret(Fernet.generate_key().decode())
        return Fernet(other).encrypt(Fernet(encryption_key).decrypt(genuine))
    if kind == "truncated":
        return genuine[: len(genuine) // 2]
    if kind == "lz4_bomb":  # claims 4 GiB of output
        return Fernet(encryption_key).encrypt(_sealed("victim", b"l", (2**32 - 1).to_bytes(4, "little") + b"\x00"))
    if kind == "zstd_bomb":  # a zstd frame header declaring 1 TiB of content
        frame = b"\x28\xb5\x2f\xfd" + b"\xe0" + (2**40).to_bytes(8, "little") + b"\x00" * 8
        return Fernet(encryption_key).encrypt(_sealed("victim", b"z", frame))
    if kind == "absurd_timestamp":  # a valid token from the year 584 billion
        return Fernet(encryption_key).encrypt_at_time(_sealed("victim", b"j", b"1"), 2**64 - 1)
    if kind == "malformed_json":  # genuine token, broken JSON inside
        return Fernet(encryption_key).encrypt(_sealed("victim", b"j", b'{"half": '))
    if kind == "unknown_codec":
        return Fernet(encryption_key).encrypt(_sealed("victim", b"x", b"1"))
    if kind == "copied_token":  # a genuine token of another key
        return other_genuine
    return os.urandom(300)


async def _plant(kind: str, cache, raw_redis, marker, encryption_key: str) -> None:
    await cache.set("victim", {"real": True})
    await cache.set("bystander", {"innocent": True})
    payload = _hostile_payload(kind, raw_redis.get("victim"), raw_redis.get("bystander"), marker, encryption_key)
    raw_redis.set("victim", payload)


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
async def test_untrusted_entries_read_as_miss_with_one_warning(
    kind, cache, raw_redis, caplog, tmp_path, encryption_key
) -> None:
    marker = tmp_path / "pwned"
    await _plant(kind, cache, raw_redis, marker, encryption_key)
    caplog.clear()
    assert await _read_fresh(cache, "victim") is None
    assert len(_tamper_warnings(caplog)) == 1
    assert not marker.exists(), "a pickle payload was executed"


@pytest.mark.parametrize("l1", [False, True], ids=["no-l1", "l1"])
@pytest.mark.parametrize("kind", HOSTILE_KINDS)
async def test_untrusted_entries_read_through_get_many(
    kind, l1, cache, raw_redis, caplog, tmp_path, encryption_key
) -> None:
    """The batch path (with PTTL in its pipeline when there is L1, without when not) rejects
    exactly the same entries, and one bad entry does not spoil the good ones read with it."""
    marker = tmp_path / "pwned"
    await _plant(kind, cache, raw_redis, marker, encryption_key)
    fresh = sr.GenericRedisCache(cache.redis_url, security_config=cache.security_config, enable_l1_cache=l1,
                                  share_connection=False)  # a reader in another process
    caplog.clear()
    found = await fresh.get_many(["victim", "bystander", "absent"])
    assert found == {"bystander": {"innocent": True}}
    assert len(_tamper_warnings(caplog)) == 1
    assert not marker.exists(), "a pickle payload was executed"
    if l1:  # the rejected entry was not remembered either (its warning is not repeated)
        caplog.clear()
        assert await fresh.get("victim") is None and _tamper_warnings(caplog) == []
        performance = (await fresh.get_cache_stats())["performance"]
        assert performance["rejected_entries"] == 2 and performance["tamper_warnings_suppressed"] == 1


async def test_oversized_raw_value_is_a_miss_through_get_and_get_many(cache, raw_redis, caplog) -> None:
    """40 MiB of random bytes, past the 32 MiB value cap, written directly with redis-py: still
    short enough to be a genuine token (which is up to 4/3 of the cap, in base64), so it is read
    whole, in a second round trip, and refused as not ours."""
    await cache.set("bystander", {"innocent": True})
    raw_redis.set("huge", os.urandom(40 * 2**20))
    for l1 in (False, True):
        fresh = sr.GenericRedisCache(cache.redis_url, security_config=cache.security_config, enable_l1_cache=l1,
                                  share_connection=False)  # a reader in another process
        caplog.clear()
        assert await fresh.get("huge") is None
        assert len(_tamper_warnings(caplog)) == 1
        caplog.clear()
        assert await fresh.get_many(["huge", "bystander"]) == {"bystander": {"innocent": True}}
        assert _tamper_warnings(caplog) == []  # the same key and kind: warned about already
        performance = (await fresh.get_cache_stats())["performance"]
        assert performance["rejected_by_kind"]["not_ours"] == 2 and performance["redis_failures"] == 0
    raw_redis.delete("huge")


READER = Path(__file__).parent / "scripts" / "read_oversized.py"


async def test_a_value_planted_past_the_cap_is_never_read_whole(cache, raw_redis, pki, password,
                                                                encryption_key) -> None:
    """64 MiB planted under a key, longer than any token the cache writes: get and get_many
    (with and without L1) read it as a miss with one warning per cache, the genuine entry read
    beside it and with it still arrives, the shared connection survives (socket_timeout=1), and
    the reading process's peak RSS grows by less than the 32 MiB cap. Measured in a fresh
    process; before the fix the same reads grew it by hundreds of MB and broke the connection."""
    await cache.set("bystander", {"innocent": True})
    raw_redis.set("planted", os.urandom(64 * 2**20))
    env = dict(os.environ, SR_TEST_URL=cache.redis_url, SR_TEST_PASSWORD=password, SR_TEST_KEY=encryption_key,
               SR_TEST_CA=str(pki.ca_cert))
    try:
        done = subprocess.run([sys.executable, str(READER), "planted", "bystander"], env=env, capture_output=True,
                              text=True, timeout=300)
    finally:
        raw_redis.delete("planted")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["peak_growth_mb"] < 32, result
    for name, seen in result["caches"].items():
        assert seen["get"] is None, name
        assert seen["get_many"] == {"bystander": {"innocent": True}}, name
        assert seen["bystander_beside"] == 20 and seen["bystander_after"] == {"innocent": True}, name
        assert seen["warnings"] == 1 and seen["redis_failures"] == 0, (name, seen)
        assert seen["rejected_by_kind"]["oversized"] == 2, (name, seen)
    assert result["other_warnings"] == []


async def test_one_warning_per_poisoned_key_and_kind_every_read_counted(cache, raw_redis, caplog,
                                                                        encryption_key) -> None:
    """11,200 warnings for 11,200 poisoned reads was a flood: now one per key and kind a minute,
    with every rejected read counted, and the warnings held back counted too."""
    fresh = sr.GenericRedisCache(cache.redis_url, security_config=cache.security_config, enable_l1_cache=False)
    await cache.set("genuine", {"real": True})
    raw_redis.set("victim", b'{"injected": true}')
    caplog.clear()
    for _ in range(30):
        assert await fresh.get("victim") is None
        assert await fresh.get_many(["victim", "genuine"]) == {"genuine": {"real": True}}
    assert len(_tamper_warnings(caplog)) == 1
    # Another kind under the same key warns once more; so does malformed JSON in a genuine token.
    raw_redis.set("victim", raw_redis.get("genuine"))
    raw_redis.set("bad-json", Fernet(encryption_key).encrypt(_sealed("bad-json", b"j", b'{"half": ')))
    caplog.clear()
    for _ in range(10):
        assert await fresh.get("victim") is None and await fresh.get("bad-json") is None
    messages = [record.getMessage() for record in _tamper_warnings(caplog)]
    assert len(messages) == 2 and any("another key" in m for m in messages), messages
    # Distinct poisoned keys warn once each.
    names = [f"poisoned:{n}" for n in range(25)]
    raw_redis.mset({name: os.urandom(100) for name in names})
    caplog.clear()
    for _ in range(3):
        assert await fresh.get_many(names) == {}
    assert len(_tamper_warnings(caplog)) == 25
    performance = (await fresh.get_cache_stats())["performance"]
    assert performance["rejected_by_kind"] == {
        "not_ours": 60 + 75, "foreign_key": 10, "malformed": 0, "too_large": 0, "expired": 0, "oversized": 0,
        "malformed_json": 10,
    }
    assert performance["rejected_entries"] == 155
    assert performance["tamper_warnings_suppressed"] == 155 - 1 - 2 - 25
    raw_redis.delete("victim", "bad-json", *names)


@pytest.mark.parametrize("l1", [False, True], ids=["no-l1", "l1"])
async def test_a_key_holding_another_type_is_a_miss_that_spoils_nothing(l1, cache, raw_redis) -> None:
    """A hash under a cache key (someone else's data): a miss through get and get_many, while the
    entries read with it still arrive and the connection stays up. (The GET+PTTL pipeline used
    to fail as a whole on its WRONGTYPE, so every key of the batch missed.)"""
    await cache.set("bystander", {"innocent": True})
    raw_redis.hset("hashed", mapping={"field": "value"})
    fresh = sr.GenericRedisCache(cache.redis_url, security_config=cache.security_config, enable_l1_cache=l1,
                                  share_connection=False)  # a reader in another process
    assert await fresh.get("hashed") is None
    assert await fresh.get_many(["hashed", "bystander", "absent"]) == {"bystander": {"innocent": True}}
    assert await fresh.get("bystander") == {"innocent": True} and await fresh.ping()
    stats = await fresh.get_cache_stats()
    assert stats["redis"]["status"] == "connected" and stats["redis"]["reconnects"] == 0
    raw_redis.delete("hashed")


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
async def test_nan_and_infinity_are_refused_before_anything_is_stored(number, cache, raw_redis) -> None:
    """JSON has no NaN or Infinity: cache.set refuses them (nested too) rather than store a
    token other readers cannot parse."""
    for value in (number, {"score": number}, [1, [2, number]]):
        with pytest.raises(sr.ValidationError):
            await cache.set("not-json", value)
        with pytest.raises(sr.ValidationError):
            await cache.set_many({"fine": 1, "not-json": value})
    assert raw_redis.exists("not-json", "fine") == 0
    assert await cache.get("not-json") is None and await cache.get("fine") is None


async def test_rotated_keys_still_read_old_entries(redis_server, pki, password, encryption_key, raw_redis) -> None:
    def make(keys: str) -> sr.GenericRedisCache:
        config = sr.SecurityConfig(redis_auth=password, encryption_key=keys, tls_ca_path=pki.ca_cert)
        return sr.GenericRedisCache(redis_server.url, security_config=config, enable_l1_cache=False)

    old_cache = make(encryption_key)
    await old_cache.set("rotating", {"written": "before rotation"})
    new_key = remember_secret(sr.generate_encryption_key())
    rotated = make(f"{new_key},{encryption_key}")
    assert await rotated.get("rotating") == {"written": "before rotation"}
    await rotated.set("rotating", {"written": "after rotation"})
    stored = raw_redis.get("rotating")
    assert Fernet(new_key).decrypt(stored)[:2] == b"SR"
    assert await old_cache.get("rotating") is None  # the old key alone can no longer read new writes
    await rotated.delete("rotating")


async def test_replayed_entry_past_its_sealed_expiry_reads_as_miss(cache, raw_redis, encryption_key, caplog) -> None:
    """Someone with Redis write access but no key puts back an old token with no TTL."""
    key = "session:42"
    old_expiry = int(time.time()) - 3600  # written long ago, meant to expire an hour ago
    plaintext = b"SR\x01j" + hashlib.sha256(key.encode()).digest()[:16] + old_expiry.to_bytes(8, "big") + b'"stale"'
    raw_redis.set(key, Fernet(encryption_key).encrypt(plaintext))  # no TTL on the server
    caplog.clear()
    assert await _read_fresh(cache, key) is None
    warnings = _tamper_warnings(caplog)
    assert len(warnings) == 1 and "past the expiry" in warnings[0].getMessage()
    fresh = b"SR\x01j" + hashlib.sha256(key.encode()).digest()[:16] + (old_expiry + 7200).to_bytes(8, "big")
    raw_redis.set(key, Fernet(encryption_key).encrypt(fresh + b'"current"'))
    assert await _read_fresh(cache, key) == "current"
