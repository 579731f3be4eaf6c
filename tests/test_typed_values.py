"""secure_redis.typed: typed values stored as tagged JSON and restored exactly, never by pickle.

Pure Python (no Redis): every value goes through ``_native.json_dumps``/``json_loads``, what
the caches store, between encode and decode.
"""

from __future__ import annotations

import builtins
import dataclasses
import datetime as dt
import enum
import importlib
import math
import sys
import typing
import uuid
from decimal import Decimal
from typing import Any, NamedTuple, Optional
from zoneinfo import ZoneInfo

import pydantic
import pytest

import secure_redis as sr
from secure_redis import _native, typed


def stored(value: Any) -> Any:
    """encode, then the JSON trip the cache makes."""
    return _native.json_loads(_native.json_dumps(typed.encode(value)))


def round_trip(value: Any, model: Any = None) -> Any:
    return typed.decode(stored(value), model=type(value) if model is None else model)


def assert_exact(value: Any, model: Any = None) -> None:
    back = round_trip(value, model)
    assert back == value
    assert type(back) is type(value)


# --------------------------------------------------------------------------- test types


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Pair(enum.Enum):  # an Enum whose values are themselves typed
    A = (1, "a")
    B = (2, "b")


@dataclasses.dataclass
class Tagged:
    color: Color
    level: Level
    when: dt.datetime
    note: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Frozen:
    id: uuid.UUID
    amount: Decimal
    raw: bytes
    pair: tuple[int, str]


@dataclasses.dataclass
class Outer:
    inner: Frozen
    items: list[Tagged]
    by_name: dict[str, Color]


class Point(NamedTuple):
    x: int
    y: int


class Address(pydantic.BaseModel):
    street: str
    zip_code: str = pydantic.Field(alias="zipCode")


class Event(pydantic.BaseModel):
    id: uuid.UUID
    at: dt.datetime
    price: Decimal
    color: Color
    tags: list[str]
    address: Address
    raw: bytes = b""
    maybe: Optional[int] = None


class WithComputed(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    a: int

    @pydantic.computed_field  # type: ignore[prop-decorator]
    @property
    def double(self) -> int:
        return self.a * 2


def make_event(n: int = 0) -> Event:
    return Event(
        id=uuid.UUID(int=n + 1),
        at=dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc),
        price=Decimal("19.90"),
        color=Color.BLUE,
        tags=["a", "b"],
        address=Address(street="Main", zipCode="12345"),
        raw=b"hello",
        maybe=n,
    )


@pytest.fixture(params=["pydantic", "by hand"])
def conversion(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with pydantic's TypeAdapter and with the conversion that needs no pydantic."""
    if request.param == "by hand":
        monkeypatch.setattr(typed, "_PYDANTIC", False)
    return request.param


# --------------------------------------------------------------------------- the plain path


def test_plain_json_is_returned_as_the_same_object() -> None:
    for value in ({"a": [1, 2.5, None, True]}, [1, 2], "text", 3, None, {}):
        assert typed.decode(value) is value


def test_plain_json_with_a_model_is_converted(conversion: str) -> None:
    """A value cached before types were stored still comes back as the model."""
    assert typed.decode({"color": "red", "level": 2, "when": "2024-01-02T03:04:05"}, model=Tagged) == Tagged(
        Color.RED, Level.HIGH, dt.datetime(2024, 1, 2, 3, 4, 5)
    )
    assert typed.decode("blue", model=Color) is Color.BLUE
    assert typed.decode([1, "a"], model=tuple[int, str]) == (1, "a")


def test_plain_json_into_a_pydantic_model() -> None:
    event = make_event()
    assert typed.decode(_native.json_loads(event.model_dump_json().encode()), model=Event) == event
    assert typed.decode(_native.json_loads(event.model_dump_json(by_alias=True).encode()), model=Event) == event


# --------------------------------------------------------------------------- built-in leaves


@pytest.mark.parametrize(
    "value",
    [
        dt.datetime(2024, 1, 2, 3, 4, 5),
        dt.datetime(2024, 1, 2, 3, 4, 5, 999999),
        dt.datetime(2024, 1, 2, 3, 4, 5, 1, tzinfo=dt.timezone.utc),
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-3, minutes=-30))),
        dt.datetime(1, 1, 1),
        dt.datetime.max,
        dt.date(2024, 2, 29),
        dt.time(23, 59, 59, 1),
        dt.time(1, 2, tzinfo=dt.timezone(dt.timedelta(hours=5))),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        Decimal("1.10"),
        Decimal("-0.000000000000000000000000000001"),
        Decimal("1E+30"),
        Decimal("123456789012345678901234567890.123456789"),
        Decimal("Infinity"),
        b"",
        b"\x00\xff binary \n",
        bytes(range(256)),
        (),
        (1,),
        (1, "a", None, 2.5, True),
        ((1, 2), [3, (4, (5,))]),
    ],
    ids=repr,
)
def test_builtin_leaves_restore_exactly_without_a_model(value: Any) -> None:
    back = typed.decode(stored(value))
    assert back == value and type(back) is type(value)
    assert_exact(value)


def test_microseconds_and_offsets_are_kept() -> None:
    value = dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    back = typed.decode(stored(value))
    assert back.microsecond == 6 and back.utcoffset() == dt.timedelta(hours=9)


def test_a_zoneinfo_datetime_keeps_its_zone_and_fold() -> None:
    paris = ZoneInfo("Europe/Paris")
    value = dt.datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=paris)  # the second 02:30 of that night
    back = typed.decode(stored(value))
    assert back == value and back.tzinfo == paris and back.fold == 1
    assert back.utcoffset() == value.utcoffset() == dt.timedelta(hours=1)


def test_decimal_nan_keeps_its_string_form() -> None:
    back = typed.decode(stored(Decimal("NaN")))
    assert type(back) is Decimal and back.is_nan()


def test_nested_typed_values_inside_plain_containers() -> None:
    value = {"when": [dt.date(2024, 1, 1), {"id": uuid.UUID(int=5)}], "n": 1, "t": (Decimal("2.5"), b"x")}
    assert typed.decode(stored(value)) == value
    assert_exact(value, dict[str, Any])


# --------------------------------------------------------------------------- classes


def test_enums_restore_only_with_the_model(conversion: str) -> None:
    for member in (Color.RED, Level.HIGH, Pair.B):
        assert typed.decode(stored(member)) == member.value  # the class is named in Redis, never imported
        assert typed.decode(stored(member), model=type(member)) is member
    assert typed.decode(stored([Color.RED, Color.BLUE]), model=list[Color]) == [Color.RED, Color.BLUE]


def test_dataclasses(conversion: str) -> None:
    tagged = Tagged(Color.BLUE, Level.LOW, dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), "n")
    assert_exact(tagged)
    assert typed.decode(stored(tagged)) == {"color": "blue", "level": 1, "when": tagged.when, "note": "n"}
    frozen = Frozen(uuid.UUID(int=7), Decimal("0.30"), b"\x00\x01", (1, "x"))
    assert_exact(frozen)
    outer = Outer(frozen, [tagged, Tagged(Color.RED, Level.HIGH, dt.datetime(2020, 2, 2))], {"c": Color.RED})
    assert_exact(outer)
    back = round_trip(outer)
    assert type(back.inner) is Frozen and type(back.items[1]) is Tagged and back.by_name["c"] is Color.RED


def test_named_tuples_restore_with_the_model(conversion: str) -> None:
    assert typed.decode(stored(Point(1, 2))) == (1, 2)
    assert_exact(Point(1, 2))


def test_pydantic_models() -> None:
    event = make_event()
    assert_exact(event)
    back = round_trip(event)
    assert type(back.address) is Address and back.color is Color.BLUE and back.at == event.at
    assert back.price == Decimal("19.90") and str(back.price) == "19.90"
    without_model = typed.decode(stored(event))  # the fields by name, built-in types restored
    assert without_model["address"] == {"street": "Main", "zip_code": "12345"}
    assert without_model["at"] == event.at and without_model["id"] == event.id and without_model["raw"] == b"hello"
    assert without_model["color"] == "blue"


class Loose(pydantic.BaseModel):
    anything: Any = None
    blob: bytes = b""
    link: Optional[pydantic.HttpUrl] = None
    labels: set[str] = set()
    span: dt.timedelta = dt.timedelta(0)


def test_pydantic_fields_keep_their_types_beyond_pydantic_json() -> None:
    """Any fields keep datetimes, bytes need not be UTF-8, pydantic-only types come back."""
    value = Loose(
        anything={"when": dt.datetime(2024, 1, 1, 12), "ids": (uuid.UUID(int=1), Decimal("1.5"))},
        blob=b"\xff\x00",
        link="https://example.com/a?b=c",  # type: ignore[arg-type]
        labels={"x", "y"},
        span=dt.timedelta(days=1, microseconds=5),
    )
    assert_exact(value)
    assert round_trip(value).anything["ids"][0] == uuid.UUID(int=1)


def test_a_pydantic_secret_is_refused_not_stored_masked() -> None:
    class Login(pydantic.BaseModel):
        password: pydantic.SecretStr

    with pytest.raises(sr.ValidationError) as caught:
        typed.encode(Login(password="hunter2hunter2"))  # type: ignore[arg-type]
    assert caught.value.context["path"] == "value.password" and "SecretStr" in caught.value.context["type"]
    assert "hunter2" not in str(caught.value)


def test_a_pydantic_extra_field_that_looks_like_a_tag() -> None:
    class Extra(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="allow")
        a: int

    value = Extra(a=1, **{typed.TAG: "uuid"})
    assert_exact(value)


def test_pydantic_models_inside_lists_inside_tuples() -> None:
    value = ([make_event(1), make_event(2)], "label", (Decimal("1"), dt.date(2024, 1, 1)))
    form = tuple[list[Event], str, tuple[Decimal, dt.date]]
    back = typed.decode(stored(value), model=form)
    assert back == value and type(back) is tuple and type(back[0][1]) is Event
    assert typed.decode(stored({"e": make_event()}), model=dict[str, Event]) == {"e": make_event()}


def test_model_forms() -> None:
    assert typed.decode(stored(make_event()), model=Optional[Event]) == make_event()
    assert typed.decode(None, model=Event | None) is None
    assert typed.decode(stored([make_event()]), model=list[Event]) == [make_event()]
    assert typed.decode(stored((1, "a")), model=tuple[int, str]) == (1, "a")
    assert typed.decode(stored((1, 2, 3)), model=tuple[int, ...]) == (1, 2, 3)


def test_model_forms_by_hand(conversion: str) -> None:
    tagged = Tagged(Color.RED, Level.LOW, dt.datetime(2024, 1, 1))
    assert typed.decode(stored([tagged]), model=list[Tagged]) == [tagged]
    assert typed.decode(stored({"a": tagged}), model=dict[str, Tagged]) == {"a": tagged}
    assert typed.decode(stored(tagged), model=Tagged | None) == tagged
    assert typed.decode(None, model=Optional[Tagged]) is None
    assert typed.decode(stored((1, "a")), model=typing.Tuple[int, str]) == (1, "a")


def test_a_pydantic_model_with_computed_fields_and_extra_forbid() -> None:
    assert_exact(WithComputed(a=2))


def test_a_value_that_does_not_fit_the_model_names_it(conversion: str) -> None:
    with pytest.raises(sr.ValidationError, match="Tagged") as caught:
        typed.decode(stored(Point(1, 2)), model=Tagged)
    assert caught.value.context["model"] == "Tagged"
    with pytest.raises(sr.ValidationError, match="Color"):
        typed.decode("green", model=Color)


def test_a_pydantic_mismatch_names_the_model_and_not_the_input() -> None:
    with pytest.raises(sr.ValidationError, match="Event") as caught:
        typed.decode({"id": "secret-looking-input"}, model=Event)
    assert "secret-looking-input" not in str(caught.value)
    assert caught.value.context["model"] == "Event"


def test_adapters_are_bounded() -> None:
    for n in range(typed._ADAPTERS_MAX + 20):
        typed.decode([n], model=list[typing.Literal[n]])  # type: ignore[valid-type]
    assert len(typed._ADAPTERS) <= typed._ADAPTERS_MAX


# --------------------------------------------------------------------------- what is refused


class _Unknown:
    pass


@pytest.mark.parametrize(
    ("value", "path", "type_name"),
    [
        ({"items": [1, 2, 3, Tagged(Color.RED, Level.LOW, {1})]}, 'value["items"][3].when', "set"),  # type: ignore[arg-type]
        ({1, 2}, "value", "set"),
        (frozenset(), "value", "frozenset"),
        ((1, object()), "value[1]", "object"),
        ([len], "value[0]", "builtin_function_or_method"),
        ((lambda: 1,), "value[0]", "function"),
        ((_Unknown(),), "value[0]", f"{_Unknown.__module__}._Unknown"),
        ((bytearray(b"x"),), "value[0]", "bytearray"),
        ((dt.timedelta(1),), "value[0]", "datetime.timedelta"),
        ((Color,), "value[0]", "enum.EnumType"),
        ({"a": (1, {2: "x"})}, 'value["a"][1]', "int"),
        ((1, float("nan")), "value[1]", "float"),
        ((float("inf"),), "value[0]", "float"),
        ((2**64,), "value[0]", "int"),
        ((-(2**63) - 1,), "value[0]", "int"),
        ({"e": Pair.A, "x": (1, {3})}, 'value["x"][1]', "set"),
    ],
    ids=lambda item: item if isinstance(item, str) else None,
)
def test_unsupported_values_name_type_and_path(value: Any, path: str, type_name: str) -> None:
    with pytest.raises(sr.ValidationError) as caught:
        typed.encode(value)
    assert caught.value.context["path"] == path
    assert caught.value.context["type"] == type_name
    assert caught.value.context["error_type"] == sr.ErrorCode.UNSUPPORTED_VALUE.value
    assert f"Cannot cache {path}: " in caught.value.message and type_name in caught.value.message


def test_refusals_match_the_rust_check() -> None:
    """What the native check refuses for plain JSON, encode refuses inside typed values."""
    for plain in ({1: "x"}, {"a": math.nan}, {"a": -math.inf}, 2**64, -(2**63) - 1, {None: 1}, {True: 1}):
        with pytest.raises(sr.ValidationError) as native:
            _native.GenericCacheCore.check_entry("k", plain)
        with pytest.raises(sr.ValidationError) as ours:
            typed.encode(plain)
        assert ours.value.context == native.value.context
    for accepted in (2**64 - 1, -(2**63), 1e308, Level.HIGH):
        _native.GenericCacheCore.check_entry("k", accepted)
        assert typed.decode(stored((accepted,))) == (accepted,)


def test_too_deep_is_refused_as_in_the_rust_check() -> None:
    deep: Any = (1,)
    for _ in range(150):
        deep = [deep]
    with pytest.raises(sr.ValidationError, match="deeper than 100"):
        typed.encode(deep)


@pytest.mark.parametrize("shape", ["lists", "tuples", "dataclasses", "escaped dicts", "enums"])
def test_what_encode_accepts_at_any_depth_the_rust_check_accepts(shape: str) -> None:
    """Tags add levels; encode counts them, so its output never fails the cache's own check."""
    for levels in range(30, 110):
        value: Any = (dt.date(2024, 1, 1), 1.5)
        for _ in range(levels):
            if shape == "lists":
                value = [value]
            elif shape == "tuples":
                value = (value,)
            elif shape == "dataclasses":
                value = Tagged(Color.RED, Level.LOW, dt.datetime(2024, 1, 1), value)  # type: ignore[arg-type]
            elif shape == "escaped dicts":
                value = {typed.TAG: value}
            else:
                value = Pair.A if levels < 0 else [value, Color.RED]
        try:
            envelope = typed.encode(value)
        except sr.ValidationError as err:
            assert "deeper than 100" in err.message
            continue
        assert typed.decode(_native.json_loads(_native.json_dumps(envelope))) is not None


def test_a_pydantic_field_outside_the_rust_limits_names_its_path() -> None:
    class Big(pydantic.BaseModel):
        n: int

    with pytest.raises(sr.ValidationError) as caught:
        typed.encode([Big(n=2**70)])
    assert caught.value.context["path"] == "value[0].n"

    class Floaty(pydantic.BaseModel):
        values: list[float]

    with pytest.raises(sr.ValidationError, match="NaN") as caught:
        typed.encode(Floaty(values=[1.0, math.nan]))
    assert caught.value.context["path"] == 'value.values[1]'


def test_a_pydantic_model_pydantic_cannot_dump_is_refused_at_its_path() -> None:
    with pytest.raises(sr.ValidationError) as caught:
        typed.encode({"m": Loose(anything=[_Unknown()])})
    assert caught.value.context["path"] == 'value["m"].anything[0]' and "_Unknown" in caught.value.context["type"]


# --------------------------------------------------------------------------- the envelope


def test_user_dicts_that_look_like_tags_or_envelopes_round_trip() -> None:
    tricky = {typed.TAG: "datetime", "v": "not a date", typed.MARKER: 99}
    assert typed.decode(stored((tricky,))) == (tricky,)
    assert typed.decode(stored(tricky)) == tricky  # the top-level rule for the caller
    model_data = {typed.TAG: "bytes"}

    class Holder(pydantic.BaseModel):
        data: dict[str, str]

    assert round_trip(Holder(data=model_data)) == Holder(data=model_data)


def test_unknown_versions_and_tags_are_errors() -> None:
    with pytest.raises(sr.ValidationError, match="version"):
        typed.decode({typed.MARKER: 2, "v": 1})
    with pytest.raises(sr.ValidationError, match="unknown tag"):
        typed.decode({typed.MARKER: 1, "v": {typed.TAG: "pickle", "v": "..."}})
    with pytest.raises(sr.ValidationError, match="malformed uuid"):
        typed.decode({typed.MARKER: 1, "v": {typed.TAG: "uuid", "v": "nope"}})


@pytest.mark.parametrize("cls", ["os:system", "no_such_module_xyz.sub:Evil", "subprocess:Popen"])
def test_no_class_is_imported_from_a_stored_name(cls: str, monkeypatch: pytest.MonkeyPatch) -> None:
    typed.decode([1], model=list[int])  # pydantic and the adapter machinery are loaded before watching
    module = cls.split(":")[0]
    requested: list[str] = []
    real_import, real_import_module = builtins.__import__, importlib.import_module

    def watching_import(name: str, *args: Any, **kwargs: Any) -> Any:
        requested.append(name)
        return real_import(name, *args, **kwargs)

    def watching_import_module(name: str, *args: Any, **kwargs: Any) -> Any:
        requested.append(name)
        return real_import_module(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", watching_import)
    monkeypatch.setattr(importlib, "import_module", watching_import_module)
    before = set(sys.modules)
    for tag in ("pydantic", "dataclass"):
        envelope = {typed.MARKER: 1, "v": {typed.TAG: tag, "cls": cls, "v": {"command": "echo owned"}}}
        assert typed.decode(envelope) == {"command": "echo owned"}
        assert typed.decode(envelope, model=dict[str, str]) == {"command": "echo owned"}
    envelope = {typed.MARKER: 1, "v": {typed.TAG: "enum", "cls": cls, "v": "x"}}
    assert typed.decode(envelope) == "x"
    envelope = {typed.MARKER: 1, "v": {typed.TAG: "tuple", "cls": cls, "v": [1]}}
    assert typed.decode(envelope) == (1,)
    assert not [name for name in requested if name.split(".")[0] in (module.split(".")[0], "os", "subprocess")]
    assert set(sys.modules) - before == set()


# --------------------------------------------------------------------------- @cached


async def returns_event() -> Event:
    return make_event()


async def returns_events() -> list[Event] | None:
    return None


async def returns_dict() -> dict[str, Any]:
    return {}


async def returns_nothing() -> None:
    return None


async def returns_unannotated():  # type: ignore[no-untyped-def]
    return 1


async def returns_unresolvable() -> "NotDefinedAnywhere":  # type: ignore[name-defined]  # noqa: F821
    return 1


async def returns_plain() -> list[dict[str, int | str | None]]:
    return []


async def returns_tagged() -> tuple[Tagged, dt.datetime]:
    raise NotImplementedError


def test_model_from_annotation() -> None:
    assert typed.model_from_annotation(returns_event) is Event
    assert typed.model_from_annotation(returns_events) == list[Event] | None
    assert typed.model_from_annotation(returns_tagged) == tuple[Tagged, dt.datetime]
    for plain in (returns_dict, returns_nothing, returns_unannotated, returns_unresolvable, returns_plain):
        assert typed.model_from_annotation(plain) is None, plain.__name__


# --------------------------------------------------------------------------- optional pydantic


def test_the_module_imports_without_pydantic() -> None:
    import subprocess

    code = (
        "import sys, builtins\n"
        "real = builtins.__import__\n"
        "def block(name, *a, **k):\n"
        "    if name.split('.')[0] in ('pydantic', 'pydantic_core'): raise ImportError(name)\n"
        "    return real(name, *a, **k)\n"
        "builtins.__import__ = block\n"
        "import dataclasses, datetime, enum\n"
        "from secure_redis import typed, _native\n"
        "class C(enum.Enum):\n    A = 1\n"
        "@dataclasses.dataclass\nclass D:\n    c: C\n    when: datetime.date\n"
        "v = [D(C.A, datetime.date(2024, 1, 1))]\n"
        "s = _native.json_loads(_native.json_dumps(typed.encode(v)))\n"
        "assert typed.decode(s, model=list[D]) == v\n"
        "assert 'pydantic' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
