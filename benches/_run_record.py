"""What a bench records about the run itself, beside its figures: the command line, the machine,
its load, and the JSON file a bench leaves behind.

Invariant: the load is read when asked for, never cached: on a shared machine the figures are
only comparable with the load they were taken under.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def load_average() -> list[str]:
    """The 1-, 5- and 15-minute load averages, as /proc/loadavg writes them."""
    with open("/proc/loadavg") as loadavg:
        return loadavg.read().split()[:3]


def machine() -> dict[str, Any]:
    """CPU count, Python version and the load now, for the end of a bench's JSON record."""
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "loadavg_at_end": load_average()}


def command_line() -> str:
    """How this bench was started, without the folder it was started from."""
    return " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])


def write_record(path: str, record: dict[str, Any]) -> None:
    """Writes ``record`` as indented JSON to ``path``, making its folder, and prints where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2))
    print(f"\nJSON: {out}")
