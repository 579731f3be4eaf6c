"""What a typed value costs: a 20-field pydantic model through secure_redis.typed, against
pydantic's own JSON round trip and against plain JSON of the same shape, side by side.

    python benches/typed_values.py [--rounds 15] [--ops 2000]

No Redis and no encryption: only the part that differs between the variants, in one process.

  pydantic  ``model_dump_json(by_alias=True)`` then ``Model.model_validate_json()``: the
            baseline (``by_alias``, since the model has an alias field, as the nested one here)
  typed     ``typed.encode`` -> ``_native.json_dumps`` -> ``_native.json_loads`` ->
            ``typed.decode(model=Model)``: what a cache does with the model
  plain     a dict of 20 JSON values of the model's JSON form through ``json_dumps`` and
            ``json_loads`` only: what the cache does with plain JSON today

``typed+stdlib`` is the typed trip with the standard library's ``json`` in place of
``_native``'s (to tell our Python from the extension's speed, which depends on how it was
built: a debug build of the extension is many times slower), and the typed trip's steps are
timed one by one. Last, the plain path's extra step: ``decode(plain)`` (the envelope test a
get adds for plain JSON) against calling a function that returns its argument. Each round runs every
variant ``--ops`` times in an order that reverses every round; the table shows the median over
rounds of each round's median per-operation time and each variant's ratio to the first of its
group.
"""

from __future__ import annotations

import argparse
import datetime as dt
import enum
import json
import statistics
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Optional

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python"))

import pydantic  # noqa: E402

from secure_redis import _native, typed  # noqa: E402


class Status(enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"


class Address(pydantic.BaseModel):
    street: str
    city: str
    zip_code: str = pydantic.Field(alias="zipCode")


class Order(pydantic.BaseModel):  # 20 fields of mixed types
    id: uuid.UUID
    customer: str
    email: str
    quantity: int
    weight: float
    price: Decimal
    tax: Decimal
    created: dt.datetime
    updated: dt.datetime
    ship_on: dt.date
    status: Status
    paid: bool
    gift: bool
    tags: list[str]
    scores: list[int]
    address: Address
    note: Optional[str] = None
    coupon: Optional[str] = None
    attempts: int = 0
    ratio: float = 0.0


def make_order() -> Order:
    now = dt.datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=dt.timezone.utc)
    return Order(
        id=uuid.UUID("12345678-1234-5678-1234-567812345678"), customer="Ada Lovelace",
        email="ada@example.com", quantity=3, weight=1.25, price=Decimal("19.90"), tax=Decimal("3.78"),
        created=now, updated=now + dt.timedelta(minutes=5), ship_on=dt.date(2024, 5, 8),
        status=Status.ACTIVE, paid=True, gift=False, tags=["books", "priority", "eu"],
        scores=[5, 4, 5], address=Address(street="1 Main St", city="London", zipCode="N1 9GU"),
        note="leave at door", coupon=None, attempts=1, ratio=0.5,
    )


def per_op_median(function: Callable[[], Any], ops: int) -> float:
    """Median of ``ops`` timed calls, in microseconds (batches of 10 so the clock is not the cost)."""
    samples = []
    for _ in range(ops // 10):
        started = time.perf_counter()
        for _ in range(10):
            function()
        samples.append((time.perf_counter() - started) / 10)
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=2000)
    args = parser.parse_args()

    order = make_order()
    plain = order.model_dump(mode="json")  # the same 20 values as plain JSON
    assert len(plain) == 20
    dumps, loads, encode, decode = _native.json_dumps, _native.json_loads, typed.encode, typed.decode

    def pydantic_trip() -> Any:
        return Order.model_validate_json(order.model_dump_json(by_alias=True))

    def typed_trip() -> Any:
        return decode(loads(dumps(encode(order))), model=Order)

    def typed_stdlib_trip() -> Any:
        return decode(json.loads(json.dumps(encode(order))), model=Order)

    envelope = encode(order)
    stored = dumps(envelope)
    loaded = loads(stored)

    def plain_trip() -> Any:
        return loads(dumps(plain))

    def identity(value: Any, model: Any = None) -> Any:
        return value

    def decode_plain() -> Any:
        return decode(plain)

    def call_identity() -> Any:
        return identity(plain)

    assert pydantic_trip() == order and typed_trip() == order and plain_trip() == plain
    assert decode_plain() is plain and typed_stdlib_trip() == order
    groups = {
        "round trip of a 20-field model": {"pydantic": pydantic_trip, "typed": typed_trip, "plain": plain_trip,
                                           "typed+stdlib": typed_stdlib_trip},
        "the typed trip's steps": {"encode": lambda: encode(order), "json_dumps": lambda: dumps(envelope),
                                   "json_loads": lambda: loads(stored),
                                   "decode(model=)": lambda: decode(loaded, model=Order)},
        "plain-path step on get": {"identity": call_identity, "decode(plain)": decode_plain},
    }
    results: dict[str, list[float]] = {name: [] for group in groups.values() for name in group}
    for round_ in range(args.rounds):
        for group in groups.values():
            names = list(group) if round_ % 2 == 0 else list(group)[::-1]
            for name in names:
                results[name].append(per_op_median(group[name], args.ops))
    sizes = {
        "pydantic": len(order.model_dump_json(by_alias=True)),
        "typed": len(dumps(encode(order))),
        "plain": len(dumps(plain)),
    }
    pydantic_version = pydantic.VERSION
    print(f"medians of {args.rounds} rounds x {args.ops} ops, pydantic {pydantic_version}, "
          f"Python {sys.version.split()[0]} (ratio to the first of each group)")
    for title, group in groups.items():
        print(f"{title}:")
        first = statistics.median(results[next(iter(group))])
        for name in group:
            median = statistics.median(results[name])
            unit = f"{median:8.2f} us" if median >= 1 else f"{median * 1000:8.1f} ns"
            size = f"  {sizes[name]:5d} B stored" if name in sizes else ""
            print(f"  {name:16} {unit}  ({median / first:5.2f}){size}")


if __name__ == "__main__":
    main()
