"""EncryptedCacheLayer: standard Fernet tokens, interoperable with `cryptography`, no passthrough."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet, MultiFernet

import secure_redis as sr
from conftest import remember_secret

VALUES = [
    {"a": 1, "nested": {"list": [1, 2.5, None, True, False, "é ✓ 漢字"]}},
    [],
    {},
    "plain string",
    "",
    0,
    -17,
    2**63 - 1,
    2**64 - 1,
    3.14159,
    True,
    None,
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_tokens_are_standard_fernet_of_the_json(encryption_key: str, value) -> None:
    layer = sr.EncryptedCacheLayer(encryption_key)
    token = layer.encrypt_cache_data(value)
    assert isinstance(token, bytes) and token.startswith(b"gAAAAA")
    assert json.loads(Fernet(encryption_key).decrypt(token)) == value
    assert layer.decrypt_cache_data(token) == value


def test_accepts_tokens_made_by_cryptography(encryption_key: str) -> None:
    layer = sr.EncryptedCacheLayer(encryption_key.encode())
    token = Fernet(encryption_key).encrypt(json.dumps({"from": "python", "n": [1, 2]}).encode())
    assert layer.decrypt_cache_data(token) == {"from": "python", "n": [1, 2]}
    assert layer.decrypt_cache_data(token.decode()) == {"from": "python", "n": [1, 2]}


@pytest.mark.parametrize("length", [0, 1, 13, 14, 15, 16, 29, 30, 31, 2046, 50 * 1024])
def test_our_fernet_and_cryptography_agree_at_every_padding_length(encryption_key: str, length: int) -> None:
    """Our own Fernet (not the `fernet` crate any more): every PKCS7 padding length and base64
    tail, both directions. A JSON string of `length` characters is `length + 2` bytes."""
    layer = sr.EncryptedCacheLayer(encryption_key)
    value = "".join(chr(0x61 + i % 26) for i in range(length))
    ours = layer.encrypt_cache_data(value)
    assert Fernet(encryption_key).decrypt(ours) == json.dumps(value).encode()
    assert ours != layer.encrypt_cache_data(value), "every token has a fresh IV"
    theirs = Fernet(encryption_key).encrypt(json.dumps(value).encode())
    assert layer.decrypt_cache_data(theirs) == value


async def test_stored_entries_of_every_size_open_with_cryptography(cache, raw_redis, encryption_key) -> None:
    """The cache path seals in place (envelope and LZ4 written into the Fernet buffer)."""
    cases = [("", b"j"), ("x" * 14, b"j"), ("compress me " * 200, b"l"), ("y" * 60_000, b"l")]
    for n, (text, codec) in enumerate(cases):
        await cache.set(f"sized:{n}", {"text": text})
        plaintext = Fernet(encryption_key).decrypt(raw_redis.get(f"sized:{n}"))
        assert plaintext[:4] == b"SR\x02" + codec
        assert await cache.get(f"sized:{n}") == {"text": text}


def test_there_is_no_passthrough_mode() -> None:
    for bad in (None, "", "too-short", b"\xff\xfe"):
        with pytest.raises(sr.ConfigurationError) as info:
            sr.EncryptedCacheLayer(bad)
        assert info.value.context["error_type"] == "invalid_encryption_key"
    layer = sr.EncryptedCacheLayer(sr.generate_encryption_key())
    assert layer.is_enabled is True


def test_rotation_first_key_encrypts_all_keys_decrypt() -> None:
    old = remember_secret(sr.generate_encryption_key())
    new = remember_secret(sr.generate_encryption_key())
    old_token = sr.EncryptedCacheLayer(old).encrypt_cache_data({"v": "old"})
    rotated = sr.EncryptedCacheLayer(f"{new},{old}")
    assert rotated.key_count == 2
    assert rotated.decrypt_cache_data(old_token) == {"v": "old"}
    fresh = rotated.encrypt_cache_data({"v": "new"})
    assert json.loads(Fernet(new).decrypt(fresh)) == {"v": "new"}
    with pytest.raises(Exception):
        Fernet(old).decrypt(fresh)
    # Same semantics as cryptography's MultiFernet:
    multi = MultiFernet([Fernet(new), Fernet(old)])
    assert json.loads(multi.decrypt(old_token)) == {"v": "old"}


def test_tampered_foreign_and_plain_data_are_refused(encryption_key: str) -> None:
    layer = sr.EncryptedCacheLayer(encryption_key)
    token = bytearray(layer.encrypt_cache_data({"a": 1}))
    token[40] = ord("A") if token[40] != ord("A") else ord("B")
    foreign = Fernet(Fernet.generate_key()).encrypt(b'{"a": 1}')
    for bad in (bytes(token), foreign, b'{"a": 1}', b"", b"\x80\x04pickle"):
        with pytest.raises(sr.ConfigurationError) as info:
            layer.decrypt_cache_data(bad)
        assert info.value.context["error_type"] == "decryption_failure"


@pytest.mark.parametrize(
    "value,type_name",
    [((1, 2), "tuple"), ({1, 2}, "set"), (b"raw", "bytes"), (object(), "object"), ({"k": {1: "int key"}}, "int"),
     (float("nan"), "float"), (float("inf"), "float"), (2**70, "int")],
    ids=["tuple", "set", "bytes", "object", "int-key", "nan", "inf", "bigint"],
)
def test_non_json_values_raise_validation_error_naming_the_type(encryption_key: str, value, type_name) -> None:
    layer = sr.EncryptedCacheLayer(encryption_key)
    with pytest.raises(sr.ValidationError) as info:
        layer.encrypt_cache_data(value)
    assert info.value.context["type"] == type_name


def test_deep_nesting_is_refused_not_crashing(encryption_key: str) -> None:
    layer = sr.EncryptedCacheLayer(encryption_key)
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(sr.ValidationError) as info:
        layer.encrypt_cache_data(deep)
    assert "nests deeper" in info.value.message
    ok: list = []
    for _ in range(90):
        ok = [ok]
    assert layer.decrypt_cache_data(layer.encrypt_cache_data(ok)) == ok


def test_stats_and_repr(encryption_key: str) -> None:
    layer = sr.EncryptedCacheLayer(encryption_key)
    layer.decrypt_cache_data(layer.encrypt_cache_data([1]))
    stats = layer.get_performance_stats()
    assert stats["encryption_operations"] == 1 and stats["decryption_operations"] == 1
    assert stats["total_operations"] == 2
    layer.reset_performance_stats()
    assert layer.get_performance_stats()["total_operations"] == 0
    assert encryption_key not in repr(layer)
    assert sr.EncryptedCacheLayer(encryption_key, performance_monitoring=False).get_performance_stats() == {
        "error": "Performance monitoring is disabled"
    }


def test_create_encryption_layer_from_env(monkeypatch, encryption_key: str) -> None:
    monkeypatch.delenv("REDIS_ENCRYPTION_KEY", raising=False)
    with pytest.raises(sr.ConfigurationError):
        sr.create_encryption_layer_from_env()
    monkeypatch.setenv("REDIS_ENCRYPTION_KEY", encryption_key)
    assert sr.create_encryption_layer_from_env().is_enabled


def _random_json(rng, depth: int = 0):
    kinds = ["null", "bool", "int", "float", "str"] + (["list", "dict"] if depth < 6 else [])
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 2**63 - 1, -(2**63), 2**64 - 1, rng.randint(-10**12, 10**12)])
    if kind == "float":
        return rng.choice([0.0, -0.0, 1e-308, 1.7976931348623157e308, rng.uniform(-1e6, 1e6)])
    if kind == "str":
        alphabet = "ab\"\\\n\t\u0000é漢😀/"
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))
    if kind == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {"".join(rng.choice("kéy\"") for _ in range(rng.randint(0, 6))): _random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 5))}


def test_json_conversion_round_trips_random_values(encryption_key: str) -> None:
    import random

    rng = random.Random(20261127)
    layer = sr.EncryptedCacheLayer(encryption_key)
    for _ in range(500):
        value = _random_json(rng)
        encoded = sr._native.json_dumps(value)
        assert json.loads(encoded) == value  # what Python's json reads back
        assert sr._native.json_loads(encoded) == value
        assert layer.decrypt_cache_data(layer.encrypt_cache_data(value)) == value


def test_json_strings_are_written_exactly_as_json_dumps_writes_them() -> None:
    """Long strings take a no-escape fast path: every character class that must be escaped,
    at every position of a 32-byte chunk and in the tail, still is, byte for byte."""
    for special in ['"', "\\", "\n", "\t", "\x00", "\x1f", "\x7f", "é", "😀"]:
        for at in range(0, 70):
            text = "a" * at + special + "b" * (69 - at)
            expected = json.dumps({"t": text, "l": [text]}, separators=(",", ":"), ensure_ascii=False).encode()
            assert sr._native.json_dumps({"t": text, "l": [text]}) == expected
    plain = "plain text " * 300
    assert sr._native.json_dumps(plain) == json.dumps(plain, ensure_ascii=False).encode()



def _next_ivs_of_parent_and_child(encryption_key: str, fork) -> tuple[bytes, bytes]:
    """Warms the layer up, forks with `fork`, and returns the IV of the next token the parent
    and the child each make of the same value (the child's token is checked to open here)."""
    import base64
    import os

    layer = sr.EncryptedCacheLayer(encryption_key)
    layer.encrypt_cache_data("warm the generator up")
    read_end, write_end = os.pipe()
    pid = fork()
    if pid == 0:  # pragma: no cover - the child: no Python-level cleanup, straight out
        try:
            os.write(write_end, layer.encrypt_cache_data("same"))
        finally:
            os._exit(0)
    os.close(write_end)
    ours = layer.encrypt_cache_data("same")
    with os.fdopen(read_end, "rb") as pipe:
        theirs = pipe.read()
    os.waitpid(pid, 0)
    assert len(theirs) == len(ours)
    assert layer.decrypt_cache_data(theirs) == "same"
    iv = lambda token: base64.urlsafe_b64decode(token)[9:25]  # noqa: E731
    return iv(ours), iv(theirs)


def test_a_forked_child_draws_other_ivs_than_its_parent(encryption_key: str) -> None:
    """Parent and child do not produce the same next IV after os.fork()."""
    import os

    ours, theirs = _next_ivs_of_parent_and_child(encryption_key, os.fork)
    assert theirs != ours


def test_a_raw_fork_without_at_fork_hooks_still_draws_other_ivs(encryption_key: str) -> None:
    """libc fork() called directly skips Python's at-fork hooks (so nothing is reseeded in the
    child). IVs come from the OS for every token, so the child's next IV still differs from
    the parent's; with a process-local generator both wrote the same one."""
    import ctypes
    import os

    libc = ctypes.CDLL(None, use_errno=True)

    def raw_fork() -> int:
        pid = libc.fork()
        assert pid >= 0, os.strerror(ctypes.get_errno())
        return pid

    ours, theirs = _next_ivs_of_parent_and_child(encryption_key, raw_fork)
    assert theirs != ours


def _standard_alphabet_key() -> tuple[str, str]:
    """A key as `openssl rand -base64 32` prints it (with '+' or '/'), and the same 32 bytes in
    the url-safe alphabet that generate_encryption_key uses."""
    import base64
    import os

    while True:
        raw = os.urandom(32)
        standard = base64.b64encode(raw).decode()
        if "+" in standard or "/" in standard:
            return remember_secret(standard), remember_secret(base64.urlsafe_b64encode(raw).decode())


async def test_a_standard_base64_key_works_like_its_url_safe_twin(redis_server, pki, password, raw_redis) -> None:
    standard, url_safe = _standard_alphabet_key()
    Fernet(standard)  # cryptography accepts it too
    token = sr.EncryptedCacheLayer(standard).encrypt_cache_data({"a": 1})
    assert sr.EncryptedCacheLayer(url_safe).decrypt_cache_data(token) == {"a": 1}
    assert Fernet(url_safe).decrypt(token) == Fernet(standard).decrypt(token)

    def cache(key: str) -> sr.AIResponseCache:
        config = sr.SecurityConfig(redis_auth=password, encryption_key=key, tls_ca_path=pki.ca_cert)
        return sr.AIResponseCache(redis_server.url, security_config=config, share_connection=False)

    writer, reader = cache(standard), cache(url_safe)
    key = writer.build_key("a prompt", "summarize", {})
    assert reader.build_key("a prompt", "summarize", {}) == key, "entries are named alike"
    await writer.set(key, {"summary": "short"})
    assert await reader.get(key) == {"summary": "short"}
    assert Fernet(standard).decrypt(raw_redis.get(key))[:2] == b"SR"
    await writer.disconnect()
    await reader.disconnect()


@pytest.mark.parametrize("length", [31, 33, 16])
def test_keys_of_other_lengths_are_refused_in_either_alphabet(length: int) -> None:
    import base64

    raw = bytes([0xFB]) * length  # 0xFB encodes to '+' and '/' in the standard alphabet
    for text in (base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
        with pytest.raises(sr.ConfigurationError) as info:
            sr.EncryptedCacheLayer(text)
        assert text not in str(info.value)


def test_the_documentation_sample_key_is_refused_in_the_standard_alphabet_too() -> None:
    import base64

    sample = "osh2GKJFHvhPf2CHBp-FwXc3S-nC7srqvqTmMnSnxMs="
    standard = base64.b64encode(base64.urlsafe_b64decode(sample)).decode()
    assert standard != sample
    result = sr.RedisSecurityValidator().validate_encryption_key(standard)
    assert not result["valid"] and any("sample key" in error for error in result["errors"])


def test_the_monitoring_choice_is_readable_as_in_the_replaced_layer() -> None:
    assert sr.EncryptedCacheLayer.create_with_generated_key(performance_monitoring=False).performance_monitoring is False
    assert sr.EncryptedCacheLayer.create_with_generated_key().performance_monitoring is True
    layer = sr.EncryptedCacheLayer(sr.generate_encryption_key(), performance_monitoring=False)
    assert layer.performance_monitoring is False
    assert layer.get_performance_stats() == {"error": "Performance monitoring is disabled"}
