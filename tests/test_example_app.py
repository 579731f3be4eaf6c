"""examples/app.py, the backend docker-compose.secure.yml runs, against a real TLS redis-server
that requires client certificates (as the compose Redis does)."""

from __future__ import annotations

import importlib
import ssl
import sys
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from conftest import find_secrets

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def example_app():
    sys.path.insert(0, str(ROOT))
    try:
        return importlib.import_module("examples.app").app
    finally:
        sys.path.remove(str(ROOT))


@pytest.fixture
def mtls_server(make_server):
    return make_server("example-app", tls_auth_clients="yes")


@pytest.fixture
def app_env(monkeypatch, mtls_server, pki, encryption_key):
    for name in ("ENFORCE_AUTH", "REDIS_INSECURE_ALLOW_PLAINTEXT", "REDIS_TLS_MIN_VERSION", "REDIS_ACL_USERNAME"):
        monkeypatch.delenv(name, raising=False)
    values = {
        "ENVIRONMENT": "production",
        "REDIS_URL": mtls_server.url,
        "REDIS_PASSWORD": mtls_server.password,
        "REDIS_ENCRYPTION_KEY": encryption_key,
        "REDIS_TLS_CA_PATH": str(pki.ca_cert),
        "REDIS_TLS_CERT_PATH": str(pki.client_cert),
        "REDIS_TLS_KEY_PATH": str(pki.client_key),
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def _raw_client(server, pki) -> redis.Redis:
    return redis.Redis(
        host=server.host, port=server.port, password=server.password, ssl=True, ssl_ca_certs=str(pki.ca_cert),
        ssl_certfile=str(pki.client_cert), ssl_keyfile=str(pki.client_key), ssl_cert_reqs=ssl.CERT_REQUIRED,
    )


def test_example_app_validates_caches_and_reports_health(example_app, app_env, mtls_server, pki) -> None:
    with TestClient(example_app) as client:
        validation = client.app.state.secure_redis_validation
        assert validation.is_valid and validation.environment == "production"

        request = {"text": "Quarterly revenue rose 12% while costs fell.", "operation": "summarize"}
        first = client.post("/process", json=request)
        second = client.post("/process", json=request)
        assert first.status_code == second.status_code == 200
        first, second = first.json(), second.json()
        assert first["source"] == "model" and second["source"] == "cache"
        assert {k: v for k, v in first.items() if k not in ("source", "elapsed_ms")} == {
            k: v for k, v in second.items() if k not in ("source", "elapsed_ms")
        }
        assert first["result"].startswith("summarize of 7 words") and first["model"] == "demo-llm-1"
        assert first["elapsed_ms"] >= 400 > second["elapsed_ms"]  # the fake model sleeps 0.4 s

        # What examples/demo.py does first, so that a rerun against Redis's saved data starts cold.
        assert client.post("/process/forget", json=request).json() == {"deleted": True}
        assert client.post("/process/forget", json=request).json() == {"deleted": False}
        again = client.post("/process", json=request).json()
        assert again["source"] == "model"

        stats = client.get("/cache/stats").json()
        assert stats["performance"]["hits"] >= 1 and stats["performance"]["sets"] >= 1
        assert stats["encryption"]["stored_bytes"] > stats["encryption"]["plaintext_bytes"] > 0

        response = client.get("/health")
        assert response.status_code == 200
        health = response.json()
        assert health["status"] == "healthy" and health["redis"]["connected"] is True
        assert health["redis"]["tls_version"] == "TLSv1.3"
        assert health["security"]["tls"] is True and health["security"]["mutual_tls"] is True
        assert health["security"]["authentication"] is True and health["security"]["encryption"] == "Fernet"
        for secret in (app_env["REDIS_PASSWORD"], app_env["REDIS_ENCRYPTION_KEY"]):
            assert secret not in response.text
        assert not find_secrets(response.text)

    # What the app wrote is Fernet ciphertext in Redis, never the model's answer.
    raw = _raw_client(mtls_server, pki)
    try:
        keys = list(raw.scan_iter())
        assert keys
        for key in keys:
            stored = raw.get(key)
            assert stored.startswith(b"gAAAAA") and b"demo-llm-1" not in stored
        raw.flushall()
    finally:
        raw.close()


def test_tenant_endpoints_keep_tenants_apart_and_forget_one(example_app, app_env, mtls_server, pki) -> None:
    app_module = sys.modules["examples.app"]
    body = {"text": "Our quarterly revenue, in one line?", "operation": "qa"}
    acme, globex = {"x-tenant": "acme"}, {"x-tenant": "globex"}
    with TestClient(example_app) as client:
        before = app_module.MODEL_CALLS["count"]
        assert client.post("/tenant/answer", json=body, headers=acme).json()["source"] == "model"
        assert client.post("/tenant/answer", json=body, headers=acme).json()["source"] == "cache"
        assert client.post("/tenant/answer", json=body, headers=globex).json()["source"] == "model"
        assert client.post("/tenant/answer", json=body).status_code == 422
        assert app_module.MODEL_CALLS["count"] - before == 2
        assert client.post("/tenant/forget", headers=acme).json() == {"forgotten": True}
        assert client.post("/tenant/answer", json=body, headers=acme).json()["source"] == "model"
        assert client.post("/tenant/answer", json=body, headers=globex).json()["source"] == "cache"
    raw = _raw_client(mtls_server, pki)
    try:
        names = [name.decode() for name in raw.keys("*")]
        assert names and all(name.startswith("secure_redis:scope") for name in names)
        assert not any("acme" in name or "globex" in name for name in names)
        raw.flushdb()
    finally:
        raw.close()


def test_answer_endpoint_calls_the_model_once_for_concurrent_requests(example_app, app_env, mtls_server, pki) -> None:
    """Sixteen concurrent HTTP requests for one uncached prompt: one model call, sixteen answers;
    the tag endpoint then forgets it."""
    from concurrent.futures import ThreadPoolExecutor

    app_module = sys.modules["examples.app"]
    body = {"text": "What is a stampede, in one line?", "operation": "qa"}
    with TestClient(example_app) as client:
        before = app_module.MODEL_CALLS["count"]
        with ThreadPoolExecutor(max_workers=16) as pool:
            responses = list(pool.map(lambda _: client.post("/answer", json=body), range(16)))
        assert all(r.status_code == 200 for r in responses)
        assert len({r.json()["result"] for r in responses}) == 1
        assert app_module.MODEL_CALLS["count"] - before == 1
        assert client.post("/answer", json=body).json()["source"] == "cache"
        assert client.post("/answer/forget", params={"operation": "qa"}).json() == {"deleted": 1}
        assert client.post("/answer", json=body).json()["source"] == "model"
    raw = _raw_client(mtls_server, pki)
    try:
        names = [name.decode() for name in raw.keys("*")]
        ours = [name for name in names if name.startswith("secure_redis:")]
        assert ours and not any("operation" in name or "qa" in name for name in ours)  # digests only
        raw.flushdb()
    finally:
        raw.close()
