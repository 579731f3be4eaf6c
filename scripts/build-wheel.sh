#!/usr/bin/env bash
# Builds the installable abi3 wheel (CPython 3.10+) into dist/, then proves it installs into a
# fresh virtualenv and caches an encrypted value through a real TLS redis-server from there.
source "$(dirname "$0")/_env.sh"
rm -rf dist
echo "==> maturin build --release (abi3 wheel)"
maturin build --release --locked --quiet --out dist
python scripts/check-wheel.py dist/*.whl
