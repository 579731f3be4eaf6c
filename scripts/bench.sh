#!/usr/bin/env bash
# The performance comparison (benches/bench.py) on a release build; every round also runs the
# Rust codec micro-benchmark (cargo bench --bench codec), built here first so no round pays for
# the compile. Arguments go to bench.py (e.g. --rounds 5, --quick, --soak 0, --no-codec).
source "$(dirname "$0")/_env.sh"
if ! python -c "import glide" 2>/dev/null; then
    echo "==> installing valkey-glide for the GLIDE comparison (optional)"
    python -m pip install --quiet valkey-glide==2.6.0 || echo "    (not available: GLIDE is skipped)"
fi
echo "==> building secure_redis (release)"
maturin develop --release --locked --quiet
echo "==> building the codec micro-benchmark"
cargo bench --locked --bench codec --no-run
echo "==> load before the run: $(cat /proc/loadavg)"
python benches/bench.py "$@"
