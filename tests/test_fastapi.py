"""A real FastAPI app: validation at startup, the cache on app.state, the dependency, health."""

from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

import secure_redis as sr
from conftest import find_secrets, remember_secret
from fastapi import Header

from secure_redis.fastapi import cache_health, get_cache, scoped_cache, secure_redis_lifespan


def make_app(**lifespan_options) -> FastAPI:
    app = FastAPI(lifespan=secure_redis_lifespan(**lifespan_options))

    @app.put("/items/{key}")
    async def put_item(key: str, body: dict, cache: sr.GenericRedisCache = Depends(get_cache)):
        await cache.set(f"items:{key}", body, ttl=60)
        return {"stored": key}

    @app.get("/items/{key}")
    async def get_item(key: str, cache: sr.GenericRedisCache = Depends(get_cache)):
        return {"value": await cache.get(f"items:{key}")}

    @app.get("/health/cache")
    async def health(cache: sr.GenericRedisCache = Depends(get_cache)):
        return await cache_health(cache)

    async def tenant(x_tenant: str = Header()) -> str:
        return x_tenant

    @app.put("/notes/{key}")
    async def put_note(key: str, body: dict, cache: sr.GenericRedisCache = Depends(scoped_cache(tenant))):
        await cache.set(key, body, ttl=60)
        return {"stored": key}

    @app.get("/notes/{key}/own-scope")
    async def get_note_scoping_itself(key: str, x_tenant: str = Header(),
                                      cache: sr.GenericRedisCache = Depends(get_cache)):
        return {"value": await cache.scope(x_tenant).get(key)}

    @app.get("/notes/{key}")
    async def get_note(key: str, cache: sr.GenericRedisCache = Depends(scoped_cache(tenant))):
        return {"value": await cache.get(key), "scoped": cache.is_scoped}

    return app


def test_scoped_cache_dependency_gives_each_tenant_its_own_entries(production_env, raw_redis) -> None:
    with TestClient(make_app(honor_cache_control=True)) as client:
        acme, globex = {"x-tenant": "acme"}, {"x-tenant": "globex"}
        assert client.put("/notes/n", json={"v": "acme's"}, headers=acme).json() == {"stored": "n"}
        assert client.get("/notes/n", headers=acme).json() == {"value": {"v": "acme's"}, "scoped": True}
        assert client.get("/notes/n", headers=globex).json() == {"value": None, "scoped": True}
        assert client.get("/notes/n").status_code == 422  # no tenant: no cache at all
        # Cache-Control is honoured on the scoped view too.
        assert client.get("/notes/n", headers={**acme, "cache-control": "no-cache"}).json()["value"] is None
        assert client.get("/notes/n/own-scope", headers={**acme, "cache-control": "no-cache"}).json() == {"value": None}
        assert client.get("/notes/n/own-scope", headers=acme).json() == {"value": {"v": "acme's"}}
        stored = [name.decode() for name in raw_redis.scan_iter("secure_redis:scope*")]
        assert len(stored) == 2 and not any("acme" in name for name in stored)
    raw_redis.flushdb()


def test_app_caches_through_tls_redis(production_env, raw_redis) -> None:
    with TestClient(make_app(test_connectivity=True)) as client:
        assert client.put("/items/answer", json={"text": "forty-two"}).json() == {"stored": "answer"}
        assert client.get("/items/answer").json() == {"value": {"text": "forty-two"}}
        assert raw_redis.get("items:answer").startswith(b"gAAAAA")
        health = client.get("/health/cache").json()
        assert health["status"] == "healthy" and health["cache_type"] == "GenericRedisCache"
        assert health["redis"]["tls_version"] == "TLSv1.3"  # production policy
        assert health["security"] == {
            "level": "HIGH", "tls": True, "mutual_tls": False, "authentication": True, "acl_user": False,
            "encryption": "Fernet",
        }
        assert not find_secrets(str(health))
        validation = client.app.state.secure_redis_validation
        assert validation.is_valid and validation.environment == "production"
    raw_redis.delete("items:answer")


def test_insecure_configuration_stops_startup(production_env) -> None:
    production_env.setenv("REDIS_URL", "redis://localhost:6379/0")
    served = []
    app = make_app()

    @app.get("/ping")
    async def ping():
        served.append(True)
        return "pong"

    with pytest.raises(sr.ConfigurationError) as info:
        with TestClient(app) as client:
            client.get("/ping")
    assert "rediss://" in info.value.message and not served


def test_wrong_password_stops_startup(production_env) -> None:
    production_env.setenv("REDIS_PASSWORD", remember_secret("Wrong-but-long-password-0123456789-xyz"))
    with pytest.raises(sr.ConfigurationError) as info:
        with TestClient(make_app()):
            pass
    assert "rejected the credentials" in info.value.message
    assert not find_secrets(str(info.value))


def test_unreachable_redis_starts_degraded_or_refuses(production_env) -> None:
    from secure_redis.testing import free_port

    production_env.setenv("REDIS_URL", f"rediss://127.0.0.1:{free_port()}/0")
    production_env.setenv("REDIS_MAX_RETRIES", "0")
    with TestClient(make_app()) as client:
        health = client.get("/health/cache").json()
        assert health["status"] == "degraded" and health["fallback"]
        client.put("/items/k", json={"v": 1})
        # Answered at once, as a miss: L1 cannot vouch for anything while Redis is unreachable.
        assert client.get("/items/k").json() == {"value": None}
    with pytest.raises(sr.InfrastructureError):
        with TestClient(make_app(require_redis=True)):
            pass
