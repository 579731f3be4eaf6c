#!/usr/bin/env bash
# The one command that runs every check: formatting, lints, Rust tests, the Python suite
# against real TLS redis-server processes.
source "$(dirname "$0")/_env.sh"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo test"
cargo test --workspace --locked
echo "==> maturin develop (builds the extension into .venv)"
maturin develop --locked --quiet
echo "==> pytest"
python -m pytest -q "$@"
if [ "$#" -eq 0 ]; then
    echo "==> wheel: build the abi3 wheel and use it from a clean virtualenv"
    bash scripts/build-wheel.sh
fi
