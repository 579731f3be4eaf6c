#!/usr/bin/env bash
# The main job on a fresh machine: builds secure_redis, runs the one-command secure setup
# (certificates, secrets, .env.secure, a TLS-only Redis with an ACL user), then runs the
# example FastAPI backend against it and shows what it cached and the speed-up of hits.
# The demo runs where Redis is reachable: on this host without Docker, in a backend container
# on the compose network with Docker (setup-secure-redis.sh --demo chooses).
# Redis keeps running afterwards; stop it with scripts/setup-secure-redis.sh --stop.
source "$(dirname "$0")/_env.sh"
echo "==> building secure_redis (release): the first build compiles every Rust dependency and takes"
echo "    about 7 minutes on 2 cores (cargo lists each crate as it goes); later builds take seconds"
# Not --quiet: cargo's per-crate lines are the progress a first-time user needs to see.
maturin develop --release --locked
bash scripts/setup-secure-redis.sh "$@"
echo
echo "==> example backend (examples/app.py) against that Redis"
bash scripts/setup-secure-redis.sh --demo
echo
echo "Redis is still running: scripts/setup-secure-redis.sh --status | --stop"
