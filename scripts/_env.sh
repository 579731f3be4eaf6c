# Shared by scripts/test.sh and scripts/demo.sh: a project virtualenv with pinned tools,
# and a fixed PYO3_PYTHON so cargo and maturin never rebuild pyo3 for a changed PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON_BIN="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv with $($PYTHON_BIN --version)"
    "$PYTHON_BIN" -m venv .venv
fi
if ! cmp -s requirements-dev.txt .venv/.requirements-installed 2>/dev/null; then
    echo "==> installing pinned Python tools (requirements-dev.txt)"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
    cp requirements-dev.txt .venv/.requirements-installed
fi
export VIRTUAL_ENV="$ROOT/.venv"
export PATH="$ROOT/.venv/bin:$PATH"
export PYO3_PYTHON="$ROOT/.venv/bin/python"
if ! command -v redis-server >/dev/null 2>&1; then
    echo "redis-server is missing. Install it: sudo apt-get install redis-server (Debian/Ubuntu)" >&2
    exit 1
fi
