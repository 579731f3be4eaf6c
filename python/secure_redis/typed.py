"""Typed cache values: turning datetimes, UUIDs, Decimals, bytes, tuples, Enums, dataclasses and
pydantic v2 models into JSON and back, without pickle.

Caches store JSON only. :func:`encode` is called only for a value the plain-JSON check
rejected (so plain JSON costs nothing) and returns an *envelope*, a dict with the reserved
:data:`MARKER` key, around a tree in which every non-JSON leaf is a tagged object
(``{"\\u0000t": "datetime", "v": "2024-01-01T00:00:00+00:00"}``). :func:`decode` undoes it;
for a value that is not an envelope it is one ``type() is dict`` test and one dict lookup.

Why never pickle: unpickling runs code named by the stored bytes, so anyone who can write to
Redis (or replay an old entry) could run code in every reader. The same rule holds here in a
weaker form: a class name stored in Redis (``"cls": "app.models:User"``) is information only
and is **never imported**. The built-in leaf types come back on their own; a class (pydantic
model, dataclass, Enum, NamedTuple) comes back only when the caller names it
(``decode(stored, model=User)``, or ``@cached`` from the return annotation, see
:func:`model_from_annotation`); without it the caller gets the class's JSON form.

Invariants:
- The envelope is the only place :data:`MARKER` appears as a key; a user dict that carries
  :data:`TAG` (or, at the top level, :data:`MARKER`) is wrapped in a ``"dict"`` tag, so no
  user data is read as a tag. The caller that stores values must send a top-level dict holding
  :data:`MARKER` through :func:`encode` too (the plain-JSON check does not see the marker).
- What :func:`encode` rejects, it rejects as the Rust check does (non-``str`` dict keys, NaN and
  infinity, integers outside 64 bits, more than 100 levels), with a
  :class:`~secure_redis.ValidationError` naming the type and its path (``value["a"][3].when``)
  and ``.context`` holding ``path``, ``type`` and ``error_type``.
- A pydantic model is dumped by pydantic in Python mode, by field name, and its fields are
  encoded as any value (an ``Any`` field keeps its datetime); what only pydantic can serialize
  (``HttpUrl``, ``Path``, ``set``...) is stored in pydantic's JSON form, for the model's own
  validation (``TypeAdapter``, by alias or by name) to turn back. ``SecretStr`` is refused:
  pydantic would dump it masked.
- pydantic is optional: it is never imported by this module's import, and :func:`encode`
  only looks at it if the application already imported it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import enum
import math
import sys
import types
import typing
import uuid
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping, Protocol, Sequence, TypeAlias

from .exceptions import ErrorCode, ValidationError

MARKER = "\u0000secure_redis.typed"
"""The reserved key of the envelope; its value is the format version."""
VERSION = 1
TAG = "\u0000t"
"""The key naming a tagged leaf's type inside the envelope's tree."""

_MAX_DEPTH = 100  # as the Rust check (nesting deeper than 100 levels is rejected there)
_SCALARS = frozenset((str, bool, int, float))
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what the Rust check accepts (i64 or u64)
_ADAPTERS_MAX = 256
_UNSUPPORTED = ErrorCode.UNSUPPORTED_VALUE.value
# Typed aliases of builtins: the same objects (same behaviour; a module global is found before
# the builtins, so no slower). For ``value: Any`` pyright types ``type(value)`` as
# ``type[Unknown]`` and narrows ``type(value) is dict`` to ``dict[Unknown, Unknown]``, which its
# strict mode rejects; ``_type_of(value)`` is a ``type[Any]``, ``type(value) is _JSON_DICT`` a
# ``dict[str, Any]`` (JSON objects have str keys), ``type(value) is _JSON_LIST`` a ``list[Any]``.
_type_of: Callable[[object], type[Any]] = type
_JSON_DICT: type[dict[str, Any]] = dict
_JSON_LIST: type[list[Any]] = list
_STORABLE = (
    "cache values must be JSON (dict, list, str, int, float, bool, None) or datetime, date, time, "
    "UUID, Decimal, bytes, tuple, Enum, a dataclass or a pydantic model"
)


def _type_name(value: object) -> str:
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def _class_path(cls: type[Any]) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _key_path(path: str, key: object) -> str:
    import json

    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


# Where a part sits, built as (parent, kind, step) and written out only for an error:
# kind 0 is a list index, 1 a dict key, 2 an attribute; None is the value itself.
_Path: TypeAlias = "tuple[_Path, int, int | str] | None"


def _path_text(path: _Path) -> str:
    steps: list[str] = []
    while path is not None:
        path, kind, step = path
        steps.append(f"[{step}]" if kind == 0 else _key_path("", step) if kind == 1 else f".{step}")
    return "value" + "".join(reversed(steps))


def _reject(at: _Path, value: Any, why: str) -> ValidationError:
    path = _path_text(at)
    name = _type_name(value)
    return ValidationError(
        f"Cannot cache {path}: {why.format(type=name)}",
        {"type": name, "path": path, "error_type": _UNSUPPORTED},
    )


# ---------------------------------------------------------------------------------- encode


def encode(value: Any) -> Any:
    """Return a JSON-able envelope holding ``value`` with the type information to restore it.

    Call it only for a value the plain-JSON check rejected (and for a top-level dict holding
    :data:`MARKER`). Raises :class:`~secure_redis.ValidationError` naming the type and the path
    of the first part that cannot be stored (``value["items"][3].when: set is not storable``).
    """
    return {MARKER: VERSION, "v": _encode(value, None, 1)}


def _encode(value: Any, path: _Path, depth: int, loose: bool = False) -> Any:  # noqa: C901, PLR0911, PLR0912 - one dispatch
    cls = _type_of(value)
    # ``depth`` counts the containers above this value once stored (the envelope, and a tag's
    # dict around its items), so what passes here passes the Rust check on the envelope too.
    if depth >= _MAX_DEPTH and (depth > _MAX_DEPTH or not (value is None or cls in _SCALARS)):
        raise _reject(path, value, f"it nests deeper than {_MAX_DEPTH} levels (counting the tags it is stored with)")
    if cls is str or cls is bool or value is None:
        return value
    if cls is int:
        if _INT_MIN <= value <= _INT_MAX:
            return value
        raise _reject(path, value, "the integer does not fit in 64 bits; store it as a string")
    if cls is float:
        if math.isfinite(value):
            return value
        raise _reject(path, value, f"float {value!r} is not a JSON number (NaN and Infinity cannot be cached)")
    if cls is dict:
        return _encode_dict(value, path, depth, loose)
    if cls is list:
        return [
            item if type(item) is str else _encode(item, (path, 0, i), depth + 1, loose)
            for i, item in enumerate(value)
        ]
    if cls is tuple:
        return {TAG: "tuple", "v": [_encode(item, (path, 0, i), depth + 2, loose) for i, item in enumerate(value)]}
    if cls is _dt.datetime:
        return _encode_datetime(value)
    if cls is _dt.date:
        return {TAG: "date", "v": value.isoformat()}
    if cls is _dt.time:
        node: dict[str, Any] = {TAG: "time", "v": value.isoformat()}
        if value.fold:
            node["fold"] = 1
        return node
    if cls is uuid.UUID:
        return {TAG: "uuid", "v": str(value)}
    if cls is Decimal:
        return {TAG: "decimal", "v": str(value)}
    if cls is bytes:
        return {TAG: "bytes", "v": base64.b64encode(value).decode("ascii")}
    if isinstance(value, enum.Enum):
        # "v" holds the value itself, no list or dict between: one level
        return {TAG: "enum", "cls": _class_path(cls), "v": _encode(value.value, (path, 2, "value"), depth + 1, loose)}
    pydantic = sys.modules.get("pydantic")  # a model exists only if the application imported pydantic
    if pydantic is not None and isinstance(value, pydantic.BaseModel):
        return {TAG: "pydantic", "cls": _class_path(cls), "v": _encode_model(value, path, depth)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            field.name: _encode(getattr(value, field.name), (path, 2, field.name), depth + 2, loose)
            for field in dataclasses.fields(value)
        }
        return {TAG: "dataclass", "cls": _class_path(cls), "v": fields}
    # Subclasses the Rust check takes as their base type stay as they are, as on the plain path.
    if isinstance(value, (str, int, float, dict, list)) and not isinstance(value, bool):
        if isinstance(value, dict):
            # (cast: isinstance narrows an Any to dict[Unknown, Unknown]; a rare path, a subclass)
            return _encode_dict(typing.cast("Mapping[Any, Any]", value), path, depth, loose)
        if isinstance(value, list):
            entries = typing.cast("Sequence[Any]", value)
            return [_encode(item, (path, 0, i), depth + 1, loose) for i, item in enumerate(entries)]
        base = float if isinstance(value, float) else int if isinstance(value, int) else str
        _encode(base(value), path, depth)  # the range and finiteness rules of the base type
        return value
    if isinstance(value, tuple):  # a NamedTuple: the class is recorded, restored only by model=
        named = typing.cast("Sequence[Any]", value)  # (as above: isinstance narrows to Unknown)
        items = [_encode(item, (path, 0, i), depth + 2, loose) for i, item in enumerate(named)]
        return {TAG: "tuple", "cls": _class_path(cls), "v": items}
    if loose and not _is_pydantic_secret(cls):
        # inside a model's dump: a type pydantic serializes (Url, Path, set...) as pydantic
        # does. Not a secret: pydantic would store "**********" and the secret would be lost.
        try:
            jsonable = sys.modules["pydantic_core"].to_jsonable_python(value)
        except Exception:  # noqa: BLE001, S110 - pydantic cannot either: refused below
            pass
        else:
            return _encode(jsonable, path, depth)
    raise _reject(path, value, "{type} is not storable; " + _STORABLE)


def _is_pydantic_secret(cls: type[Any]) -> bool:
    return any(
        base.__module__.startswith("pydantic") and base.__name__ in ("SecretStr", "SecretBytes", "Secret", "_SecretBase")
        for base in cls.__mro__
    )


def _encode_dict(value: Mapping[Any, Any], path: _Path, depth: int, loose: bool) -> dict[str, Any]:
    escaped = TAG in value or MARKER in value  # user data that would read as a tag: wrapped
    below = depth + 2 if escaped else depth + 1
    out: dict[str, Any] = {}
    for key, item in value.items():
        if type(key) is not str and not isinstance(key, str):
            raise _reject(path, key, "dict keys must be str, found a key of type {type}")
        out[key] = _encode(item, (path, 1, key), below, loose)
    return {TAG: "dict", "v": out} if escaped else out


def _encode_datetime(value: _dt.datetime) -> dict[str, Any]:
    node: dict[str, Any] = {TAG: "datetime", "v": value.isoformat()}
    key = getattr(value.tzinfo, "key", None)  # a zoneinfo.ZoneInfo keeps its zone, not only the offset
    if isinstance(key, str):
        node["tz"] = key
    if value.fold:
        node["fold"] = 1
    return node


_dump_options: dict[str, Any] | None = None


def _encode_model(model: Any, path: _Path, depth: int) -> dict[str, Any]:
    """A pydantic model's fields, dumped by pydantic in Python mode and encoded as any value.

    Python mode keeps the types (a datetime in an ``Any`` field stays a datetime, bytes need
    not be UTF-8, NaN is refused as on the plain path); what only pydantic can serialize (a
    ``Url``, a ``Path``, a ``set``...) is stored in pydantic's JSON form, which the model's own
    validation turns back on the way out.
    """
    global _dump_options  # noqa: PLW0603 - found once, on the first model
    if _dump_options is None:
        import inspect

        model_class = _type_of(model)  # a pydantic.BaseModel subclass (pydantic is optional)
        accepted = inspect.signature(model_class.model_dump).parameters
        options: dict[str, Any] = {"mode": "python", "round_trip": True}
        # By name (validated with by_name=True) works whatever aliases say; an older pydantic
        # without by_name validation gets the aliases it validates by default.
        options["by_alias"] = not _validates_by_name(sys.modules["pydantic"])
        if "exclude_computed_fields" in accepted:  # computed fields are not inputs
            options["exclude_computed_fields"] = True
        _dump_options = options
    try:
        dumped: dict[str, Any] = model.model_dump(**_dump_options)
    except Exception as err:  # noqa: BLE001 - pydantic's serialization errors have no common base
        raise _reject(path, model, f"{{type}} could not be dumped: {err}") from None
    if TAG in dumped or MARKER in dumped:  # extra fields that would read as a tag
        return _encode_dict(dumped, path, depth + 1, True)
    out: dict[str, Any] = {}
    for name, item in dumped.items():  # most fields are strings, bools or None: no call for them
        cls = _type_of(item)
        out[name] = item if cls is str or cls is bool or item is None else _encode(item, (path, 2, name), depth + 2, True)
    return out


# ---------------------------------------------------------------------------------- decode


def decode(stored: Any, model: Any = None) -> Any:
    """Return the value :func:`encode` was given, from its stored (JSON-loaded) form.

    A value that is not an envelope comes back unchanged when ``model`` is None (the plain-JSON
    path). Datetimes, dates, times, UUIDs, Decimals, bytes and tuples come back on their own;
    classes only through ``model``, a class or a typing form (``User``, ``list[User]``,
    ``User | None``, ``dict[str, Item]``, ``tuple[int, str]``), which also converts a plain
    JSON value cached before types were stored. A value that does not fit ``model`` raises
    :class:`~secure_redis.ValidationError` naming it. Nothing is ever imported from a name found
    in the stored value.
    """
    if type(stored) is _JSON_DICT and MARKER in stored:
        version = stored[MARKER]
        if version != VERSION or "v" not in stored:
            raise ValidationError(
                f"Cannot read a typed cache value of format version {version!r}; this version reads {VERSION}",
                {"version": repr(version), "error_type": _UNSUPPORTED},
            )
        stored = _restore(stored["v"])
    if model is None:
        return stored
    return _convert(stored, model)


_FLAT = frozenset((str, int, float, bool, type(None)))  # what JSON gives back as it was stored


def _restore(node: Any) -> Any:
    cls = _type_of(node)
    if cls is list:
        return [item if type(item) in _FLAT else _restore(item) for item in node]
    if cls is not dict:
        return node
    tag = node.get(TAG)
    if tag is None:
        return _restore_dict(node)
    restore = _RESTORERS.get(tag) if type(tag) is str else None
    if restore is None:
        raise ValidationError(
            f"Cannot read a typed cache value: unknown tag {tag!r}",
            {"tag": repr(tag), "error_type": _UNSUPPORTED},
        )
    try:
        return restore(node)
    except ValidationError:
        raise
    except (KeyError, TypeError, ValueError, ArithmeticError) as err:
        raise ValidationError(
            f"Cannot read a typed cache value: a malformed {tag} ({type(err).__name__})",
            {"tag": tag, "error_type": _UNSUPPORTED},
        ) from None


def _restore_dict(node: dict[str, Any]) -> dict[str, Any]:
    return {key: item if type(item) in _FLAT else _restore(item) for key, item in node.items()}


def _restore_datetime(node: dict[str, Any]) -> _dt.datetime:
    value = _dt.datetime.fromisoformat(node["v"])
    zone = node.get("tz")
    if type(zone) is str:  # a zone name selects tz data, it imports nothing
        try:
            from zoneinfo import ZoneInfo

            value = value.astimezone(ZoneInfo(zone))
        except (ValueError, OSError, ImportError):  # unknown here: the stored offset stays
            pass
    if node.get("fold") == 1:
        value = value.replace(fold=1)
    return value


def _restore_time(node: dict[str, Any]) -> _dt.time:
    value = _dt.time.fromisoformat(node["v"])
    return value.replace(fold=1) if node.get("fold") == 1 else value


_RESTORERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "datetime": _restore_datetime,
    "date": lambda node: _dt.date.fromisoformat(node["v"]),
    "time": _restore_time,
    "uuid": lambda node: uuid.UUID(node["v"]),
    "decimal": lambda node: Decimal(node["v"]),
    "bytes": lambda node: base64.b64decode(node["v"], validate=True),
    "tuple": lambda node: tuple(item if type(item) in _FLAT else _restore(item) for item in node["v"]),
    "enum": lambda node: _restore(node["v"]),
    "dataclass": lambda node: _restore_dict(node["v"]),
    "pydantic": lambda node: _restore(node["v"]),  # a dict, or a "dict" tag around one
    "dict": lambda node: _restore_dict(node["v"]),
}


# ---------------------------------------------------------------------------- model= conversion

_PYDANTIC: Any = None  # the pydantic module, False when it is not installed, None before the first look
_ADAPTERS: dict[Any, Any] = {}


_VALIDATE_OPTIONS: dict[str, Any] = {}


def _pydantic() -> Any:
    global _PYDANTIC  # noqa: PLW0603 - looked up once, on the first decode with a model
    # Upper case though assigned here (pyright's reportConstantRedefinition): tests patch it so.
    if _PYDANTIC is None:
        try:
            import pydantic
        except ImportError:
            _PYDANTIC = False  # pyright: ignore[reportConstantRedefinition]
        else:
            _PYDANTIC = pydantic if int(pydantic.VERSION.split(".")[0]) >= 2 else False  # pyright: ignore[reportConstantRedefinition]
            if _PYDANTIC and _validates_by_name(pydantic):  # by alias (pydantic's default) and by name (ours)
                _VALIDATE_OPTIONS.update(by_alias=True, by_name=True)
    return _PYDANTIC


def _validates_by_name(pydantic: Any) -> bool:
    major, minor = (int(part) for part in pydantic.VERSION.split(".")[:2])
    return (major, minor) >= (2, 11)


def _model_name(model: Any) -> str:
    if isinstance(model, type):
        return model.__qualname__
    return repr(model).replace("typing.", "")


def _adapter(pydantic: Any, model: Any) -> Any:
    try:
        adapter = _ADAPTERS.get(model)
    except TypeError:  # an unhashable form: built each time
        return pydantic.TypeAdapter(model)
    if adapter is None:
        adapter = pydantic.TypeAdapter(model)
        if len(_ADAPTERS) >= _ADAPTERS_MAX:
            _ADAPTERS.pop(next(iter(_ADAPTERS)), None)
        _ADAPTERS[model] = adapter
    return adapter


def _convert(value: Any, model: Any) -> Any:
    if type(value) is model:  # restored already (a datetime, a tuple...): nothing to check
        return value
    pydantic = _pydantic()
    if pydantic:
        try:
            adapter = _adapter(pydantic, model)
        except pydantic.PydanticUserError as err:
            raise ValidationError(
                f"Cannot read a cached value as {_model_name(model)}: pydantic cannot validate it ({err})",
                {"model": _model_name(model), "error_type": _UNSUPPORTED},
            ) from None
        try:
            return adapter.validate_python(value, **_VALIDATE_OPTIONS)
        except pydantic.ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in problem['loc']) or 'value'}: {problem['msg']}"
                for problem in err.errors(include_url=False, include_input=False)[:3]
            )
            raise ValidationError(
                f"The cached value does not fit {_model_name(model)}: {problems}",
                {"model": _model_name(model), "errors": err.error_count(), "error_type": _UNSUPPORTED},
            ) from None
    try:
        return _by_hand(value, model, "value")
    except _Mismatch as err:
        raise ValidationError(
            f"The cached value does not fit {_model_name(model)}: {err.args[0]}",
            {"model": _model_name(model), "path": err.args[1], "error_type": _UNSUPPORTED},
        ) from None


class _NamedTupleClass(Protocol):
    _fields: tuple[str, ...]

    def __call__(self, *values: Any) -> tuple[Any, ...]: ...


class _Mismatch(Exception):
    """(what is wrong, path) inside the conversion without pydantic."""


def _by_hand(value: Any, model: Any, path: str) -> Any:  # noqa: C901, PLR0911, PLR0912 - one dispatch
    """Convert without pydantic: builtins, typing containers, Enums, dataclasses, NamedTuples."""
    if model is Any or model is object:
        return value
    if model is None or model is type(None):
        if value is None:
            return None
        raise _Mismatch(f"{path} should be None", path)
    origin = typing.get_origin(model)
    args = typing.get_args(model)
    if origin is typing.Annotated:
        return _by_hand(value, args[0], path)
    if origin is typing.Union or origin is types.UnionType:
        if value is None and type(None) in args:
            return None
        for arg in args:
            try:
                return _by_hand(value, arg, path)
            except _Mismatch:
                continue
        raise _Mismatch(f"{path} fits none of {_model_name(model)}", path)
    if origin is typing.Literal:
        if value in args:
            return value
        raise _Mismatch(f"{path} is not one of {args!r}", path)
    # (The casts below: isinstance and ``in`` narrow an Any to containers of Unknown.)
    if origin in (list, set, frozenset) or (origin is tuple and len(args) == 2 and args[1] is Ellipsis):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(f"{path} should be a list", path)
        item = args[0] if args else Any
        container = typing.cast("Callable[[Iterable[Any]], Any]", origin)
        entries = typing.cast("Sequence[Any]", value)
        return container(_by_hand(entry, item, f"{path}[{i}]") for i, entry in enumerate(entries))
    if origin is tuple:
        items = typing.cast("Sequence[Any]", value) if isinstance(value, (list, tuple)) else None
        if items is None or len(items) != len(args):
            raise _Mismatch(f"{path} should be a tuple of {len(args)}", path)
        return tuple(_by_hand(entry, arg, f"{path}[{i}]") for i, (entry, arg) in enumerate(zip(items, args)))
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch(f"{path} should be a dict", path)
        item = args[1] if args else Any
        mapping = typing.cast("Mapping[Any, Any]", value)
        return {key: _by_hand(entry, item, _key_path(path, key)) for key, entry in mapping.items()}
    if origin is not None:
        return _by_hand(value, origin, path)
    if not isinstance(model, type):
        raise _Mismatch(f"{_model_name(model)} cannot be converted without pydantic", path)
    return _class_by_hand(value, typing.cast("type[Any]", model), path)  # (isinstance: a bare type)


def _class_by_hand(value: Any, model: type[Any], path: str) -> Any:  # noqa: PLR0911 - one dispatch
    if isinstance(value, model) and not (model is int and isinstance(value, bool)) and not dataclasses.is_dataclass(model):
        return value
    if issubclass(model, enum.Enum):
        try:
            return model(value)
        except ValueError:
            raise _Mismatch(f"{path} is not a {model.__qualname__}", path) from None
    if dataclasses.is_dataclass(model):
        return _dataclass_by_hand(value, model, path)
    # NamedTuple. (``tuple in __mro__`` is what ``issubclass(model, tuple)`` checks, without
    # narrowing ``model`` to ``type[tuple[Unknown, ...]]`` for pyright.)
    if tuple in model.__mro__ and hasattr(model, "_fields"):
        if not isinstance(value, (list, tuple)):
            raise _Mismatch(f"{path} should be a list", path)
        named = typing.cast("_NamedTupleClass", model)  # the line above checked it
        entries = typing.cast("Sequence[Any]", value)
        hints = typing.get_type_hints(named)
        return named(*(_by_hand(entry, hints.get(name, Any), f"{path}[{i}]")
                       for i, (entry, name) in enumerate(zip(entries, named._fields))))
    if model is float and type(value) is int:
        return float(value)
    parse = _PARSERS.get(model)
    if parse is not None and type(value) is str:
        try:
            return parse(value)
        except (ValueError, ArithmeticError):
            raise _Mismatch(f"{path} is not a valid {model.__qualname__}", path) from None
    if model is tuple and type(value) is list:
        return tuple(typing.cast("Iterable[Any]", value))  # (narrowed to list[Unknown])
    raise _Mismatch(f"{path} should be {model.__qualname__}, found {_type_name(value)}", path)


def _dataclass_by_hand(value: Any, model: type[Any], path: str) -> Any:
    if isinstance(value, model):
        return value
    if not isinstance(value, dict):
        raise _Mismatch(f"{path} should be a dict of {model.__qualname__}'s fields", path)
    hints = typing.get_type_hints(model)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(model):
        if not field.init:
            continue
        if field.name in value:
            kwargs[field.name] = _by_hand(value[field.name], hints.get(field.name, Any), f"{path}.{field.name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise _Mismatch(f"{path}.{field.name} is missing", f"{path}.{field.name}")
    try:
        return model(**kwargs)
    except (TypeError, ValueError) as err:
        raise _Mismatch(f"{path}: {model.__qualname__}({err})", path) from None


def _parse_bytes(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


_PARSERS: dict[type[Any], Callable[[str], Any]] = {
    _dt.datetime: _dt.datetime.fromisoformat,
    _dt.date: _dt.date.fromisoformat,
    _dt.time: _dt.time.fromisoformat,
    uuid.UUID: uuid.UUID,
    Decimal: Decimal,
    bytes: _parse_bytes,
}


# ----------------------------------------------------------------------------------- @cached

_PLAIN = (str, int, float, bool, type(None))


def _is_plain_json(form: Any) -> bool:
    """True for a form whose values JSON already returns as they are (no conversion needed)."""
    if form is Any or form is object or form in _PLAIN or form is dict or form is list:
        return True
    origin = typing.get_origin(form)
    args = typing.get_args(form)
    if origin is list:
        return all(_is_plain_json(arg) for arg in args)
    if origin is dict:
        return (not args or args[0] is str) and all(_is_plain_json(arg) for arg in args[1:])
    if origin is typing.Union or origin is types.UnionType:
        return all(_is_plain_json(arg) for arg in args)
    return False


def model_from_annotation(func: Any) -> Any | None:
    """The type ``@cached`` restores ``func``'s results to: its resolved return annotation.

    None when there is nothing to restore: no annotation, ``-> None``, a plain JSON form
    (``dict``, ``dict[str, Any]``, ``list[str]``, ``str``, ``Any``...: returned as today), or an
    annotation that cannot be resolved at decoration time (a name imported only under
    ``TYPE_CHECKING``), in which case values come back as their JSON form.
    """
    try:
        hints = typing.get_type_hints(func)
    except (NameError, TypeError, AttributeError):
        return None
    form = hints.get("return")
    if form is None or _is_plain_json(form):
        return None
    return form


__all__ = ["MARKER", "TAG", "VERSION", "decode", "encode", "model_from_annotation"]
