#!/usr/bin/env bash
# The main job on a fresh machine: builds secure_redis, runs the one-command secure setup
# (certificates, secrets, .env.secure, a TLS-only Redis with an ACL user), then runs the
# example FastAPI backend against it and shows what it cached and the speed-up of hits.
# Redis keeps running afterwards; stop it with scripts/setup-secure-redis.sh --stop.
source "$(dirname "$0")/_env.sh"
echo "==> building secure_redis (release)"
maturin develop --release --locked --quiet
bash scripts/setup-secure-redis.sh "$@"
echo
echo "==> example backend (examples/app.py) against that Redis"
python examples/demo.py
echo
echo "Redis is still running: scripts/setup-secure-redis.sh --status | --stop"
