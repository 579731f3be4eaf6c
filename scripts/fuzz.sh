#!/usr/bin/env bash
# Bounded fuzzing of the decode path and the URL/config parsers with cargo-fuzz (libFuzzer).
# Usage: scripts/fuzz.sh [seconds per target, default 60]
# Seeds live in fuzz/corpus/<target>/ (committed); new inputs libFuzzer finds are added there.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-60}"
if ! cargo fuzz --help >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked --quiet
fi
# cargo-fuzz passes sanitizer flags that need a nightly compiler; this lets the stable one accept them.
export RUSTC_BOOTSTRAP=1
export PYO3_PYTHON="${PYO3_PYTHON:-$(command -v python3)}"
for target in decode parse_config; do
    echo "==> fuzzing $target for ${SECONDS_PER_TARGET}s"
    cargo fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048
done
