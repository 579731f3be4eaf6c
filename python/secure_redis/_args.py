"""Constructor arguments the public cache classes share (private: not part of the API).

Owns three things, all about what a cache constructor is given:

* ``_is_int`` / ``_require_int``: an ``int`` that is not a ``bool``, else ``ConfigurationError``
  naming the parameter;
* ``_check_keywords``: what becomes of a keyword argument no signature in the class's chain
  takes. A name the replaced layer accepted gets its answer from ``REFUSED_CACHE_KEYWORDS``
  (refused, saying why); any other name is a typo, refused naming the closest valid name
  (difflib). Invariant: no name the replaced layer's caches took ends in a bare ``TypeError``
  or is silently dropped;
* ``_warn_deprecated_once``: a deprecated alias is announced once per process (a logger warning
  and a ``DeprecationWarning``), however many caches are built with it; its value is still used.

This is Python-surface policy: the Rust core never sees keyword arguments (it takes typed
options), and the valid names are the Python signatures, read here with ``inspect``.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import logging
import threading
import warnings
from typing import Any, Mapping

from .exceptions import ConfigurationError, ErrorCode


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_int(name: str, value: Any) -> None:  # pyright: ignore[reportUnusedFunction]  # used by generic.py, memory.py
    if not _is_int(value):
        raise ConfigurationError(f"{name} must be an integer", {name: value})


def _security_setting(name: str, field: str) -> str:
    return (
        f"security settings are given only through security_config=SecurityConfig({field}=...) or the "
        f"REDIS_* environment, so every cache of the process connects the same way (the replaced "
        f"AIResponseCache dropped {name} with a warning, and GenericRedisCache ignored it: it never "
        f"took effect there)"
    )


# The replaced caches' security keywords (AIResponseCache listed and dropped them; GenericRedisCache
# swallowed them in **kwargs), each refused with where it goes instead. A value of None asks for
# nothing and is accepted, so a settings dict with unset entries still builds a cache.
REFUSED_CACHE_KEYWORDS: dict[str, str] = {
    name: _security_setting(name, field)
    for name, field in (
        ("redis_password", "redis_auth"),
        ("redis_auth", "redis_auth"),
        ("acl_username", "acl_username"),
        ("acl_password", "acl_password"),
        ("use_tls", "use_tls"),
        ("tls_cert_path", "tls_cert_path"),
        ("tls_key_path", "tls_key_path"),
        ("tls_ca_path", "tls_ca_path"),
        ("verify_certificates", "verify_certificates"),
        ("connection_timeout", "connection_timeout"),
        ("socket_timeout", "socket_timeout"),
        ("min_tls_version", "min_tls_version"),
        ("cipher_suites", "cipher_suites"),
    )
}


@functools.lru_cache(maxsize=None)
def _parameter_names(cls: type) -> tuple[str, ...]:
    """Every named parameter of the ``__init__`` methods along ``cls``'s chain."""
    names: list[str] = []
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        for parameter in inspect.signature(init).parameters.values():
            if parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL) or parameter.name == "self":
                continue
            if parameter.name not in names:
                names.append(parameter.name)
    return tuple(names)


def _check_keywords(  # pyright: ignore[reportUnusedFunction]  # used by the cache classes
    cls: type, kwargs: Mapping[str, Any], refused: Mapping[str, str] = REFUSED_CACHE_KEYWORDS
) -> None:
    """Raises ``ConfigurationError`` for the first keyword (sorted) no ``__init__`` of ``cls``'s chain takes;
    ``refused`` holds the replaced layer's names for ``cls`` and why each is refused."""
    for name in sorted(kwargs):
        if name in _parameter_names(cls):  # a subclass forwards its parent's keywords
            continue
        if name in refused:
            if kwargs[name] is None:
                continue
            raise ConfigurationError(
                f"{cls.__name__} does not take {name}: {refused[name]}.",
                {"error_type": ErrorCode.UNSUPPORTED_PARAMETER.value, "parameter": name},
            )
        close = difflib.get_close_matches(name, _parameter_names(cls), n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; it takes {', '.join(sorted(_parameter_names(cls)))}"
        raise ConfigurationError(
            f"{cls.__name__} got an unknown parameter {name!r}{hint}",
            {"error_type": ErrorCode.UNKNOWN_PARAMETER.value, "parameter": name, "suggestion": close[0] if close else None},
        )


_warned: set[str] = set()
_warned_lock = threading.Lock()


def _warn_deprecated_once(  # pyright: ignore[reportUnusedFunction]  # used by ai.py
    alias: str, replacement: str, logger: logging.Logger, stacklevel: int = 2
) -> None:
    """A logger warning and a DeprecationWarning the first time ``alias`` is used in this process."""
    with _warned_lock:
        if alias in _warned:
            return
        _warned.add(alias)
    message = f"{alias} is deprecated; use {replacement} (its value is used; this is said once per process)"
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel + 1)
    logger.warning("%s", message)
