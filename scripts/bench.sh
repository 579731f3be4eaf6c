#!/usr/bin/env bash
# The performance comparison (benches/bench.py) on a release build, then the Rust codec
# micro-benchmark. Arguments go to bench.py (e.g. --rounds 5, --quick, --soak 0).
source "$(dirname "$0")/_env.sh"
if ! python -c "import glide" 2>/dev/null; then
    echo "==> installing valkey-glide for the GLIDE comparison (optional)"
    python -m pip install --quiet valkey-glide==2.6.0 || echo "    (not available: GLIDE is skipped)"
fi
echo "==> building secure_redis (release)"
maturin develop --release --locked --quiet
python benches/bench.py "$@"
echo "==> cargo bench --bench codec"
cargo bench --locked --bench codec
