#!/usr/bin/env bash
# The main job on a fresh machine: builds secure_redis, starts a TLS-only redis-server with
# fresh certificates and secrets, and caches through it (examples/demo.py).
source "$(dirname "$0")/_env.sh"
echo "==> building secure_redis (release)"
maturin develop --release --locked --quiet
python examples/demo.py
