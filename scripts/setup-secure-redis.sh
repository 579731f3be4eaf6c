#!/usr/bin/env bash
# One command to a working, secure Redis for development (or a production-shaped one):
# certificates (scripts/init-redis-tls.sh), a strong password, a Fernet key, a least-privilege
# ACL user, .env.secure, and a TLS-only Redis: `docker compose -f docker-compose.secure.yml`
# when a Docker engine answers, otherwise the system redis-server in the background with its
# data and log under .secure-redis/. Ends with `secure-redis check --connect` and a status report.
#
# Usage: scripts/setup-secure-redis.sh [--regenerate] [--production] [--stop] [--status] [--help]
#   --regenerate  new certificates and secrets (the old .env.secure is backed up), Redis restarted
#   --production  ENVIRONMENT=production: 48-character password, TLS 1.3 only, mutual TLS
#   --stop        stop the Redis this script started
#   --status      report on the running Redis (exit 0 when secure and reachable)
# Running it twice is safe: existing certificates, secrets and a running server are reused.
# Environment: SECURE_REDIS_HOME (where certs/, .env.secure and .secure-redis/ live; default:
# the project), SECURE_REDIS_PORT (default 6380, or a free port if that one is taken),
# SECURE_REDIS_NO_DOCKER=1 (use the system redis-server even when Docker answers).
set -euo pipefail

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }

REGENERATE=0; PRODUCTION=0; ACTION=setup
for arg in "$@"; do
    case "$arg" in
        --regenerate) REGENERATE=1 ;;
        --production) PRODUCTION=1 ;;
        --stop) ACTION=stop ;;
        --status) ACTION=status ;;
        -h|--help) usage; exit 0 ;;
        *) echo "setup-secure-redis.sh: unknown option $arg" >&2; usage >&2; exit 2 ;;
    esac
done

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOME_DIR="$(mkdir -p "${SECURE_REDIS_HOME:-$ROOT}" && cd "${SECURE_REDIS_HOME:-$ROOT}" && pwd)"
STATE="$HOME_DIR/.secure-redis"
CERTS="$HOME_DIR/certs"
ENV_FILE="$HOME_DIR/.env.secure"
REDIS_DIR="$STATE/redis"
PIDFILE="$REDIS_DIR/redis.pid"
COMPOSE_FILE="$ROOT/docker-compose.secure.yml"

say() { printf '==> %s\n' "$*"; }
fail() { printf 'setup-secure-redis.sh: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------------------
find_cli() {
    if [ -x "$ROOT/.venv/bin/secure-redis" ]; then echo "$ROOT/.venv/bin/secure-redis"
    elif command -v secure-redis >/dev/null 2>&1; then command -v secure-redis
    else return 1; fi
}
SR="$(find_cli)" || fail "the secure-redis command is missing: pip install secure_redis (or run scripts/demo.sh, which builds it)"
command -v openssl >/dev/null 2>&1 || fail "openssl is missing: sudo apt-get install openssl"

use_docker() {
    [ "${SECURE_REDIS_NO_DOCKER:-0}" != "1" ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

env_value() { grep -E "^$1=" "$ENV_FILE" 2>/dev/null | tail -n 1 | cut -d= -f2-; }

running_pid() {
    [ -f "$PIDFILE" ] || return 1
    local pid; pid="$(cat "$PIDFILE")"
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

stop_redis() {
    if pid="$(running_pid)"; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        say "stopped redis-server (pid $pid)"
    fi
    rm -f "$PIDFILE"
    if use_docker && [ -f "$COMPOSE_FILE" ]; then
        docker compose -f "$COMPOSE_FILE" --env-file "$ENV_FILE" down >/dev/null 2>&1 || true
    fi
}

report() {  # `secure-redis status`: environment, TLS version, certificate expiry, ACL user, round trip
    "$SR" status --env-file "$ENV_FILE" --save "$STATE/last-check.json"
}

# --- actions -------------------------------------------------------------------------------
case "$ACTION" in
    stop) stop_redis; exit 0 ;;
    status)
        [ -f "$ENV_FILE" ] || fail "no $ENV_FILE: run scripts/setup-secure-redis.sh first"
        mkdir -p "$STATE"
        report; exit $? ;;
esac

if use_docker; then MODE=docker; HOSTNAME_FOR_CERT=redis; else MODE=system; HOSTNAME_FOR_CERT=localhost
    command -v redis-server >/dev/null 2>&1 || fail "no Docker engine and no redis-server: sudo apt-get install redis-server (or start Docker)"
fi
mkdir -p "$STATE" "$REDIS_DIR"
chmod 700 "$STATE"
say "mode: $MODE; files in $HOME_DIR"

if [ "$REGENERATE" = 1 ] || [ ! -f "$CERTS/ca.crt" ]; then
    say "certificates"
    "$ROOT/scripts/init-redis-tls.sh" --force --out "$CERTS" "$HOSTNAME_FOR_CERT" >/dev/null
fi

ENVIRONMENT=development; [ "$PRODUCTION" = 1 ] && ENVIRONMENT=production
if [ "$REGENERATE" = 1 ] || [ ! -f "$ENV_FILE" ]; then
    PORT="${SECURE_REDIS_PORT:-6380}"
    if [ "$MODE" = system ] && ! running_pid >/dev/null && port_in_use "$PORT"; then
        PORT="$(free_port)"; say "port ${SECURE_REDIS_PORT:-6380} is taken; using $PORT"
    fi
    HOST=localhost; [ "$MODE" = docker ] && HOST=redis && PORT=6380
    [ "$REGENERATE" = 1 ] && [ "$MODE" = system ] && stop_redis
    say "secrets and $ENV_FILE ($ENVIRONMENT)"
    "$SR" generate-env --environment "$ENVIRONMENT" --output "$ENV_FILE" --force \
        --redis-url "rediss://$HOST:$PORT/0" --certs "$CERTS"
else
    say "reusing $ENV_FILE"
fi
PORT="$(env_value REDIS_URL | sed -E 's#.*:([0-9]+)/.*#\1#')"
APP_USER="$(env_value REDIS_ACL_USERNAME)"
PASSWORD_HASH="$(env_value REDIS_PASSWORD | tr -d '\n' | sha256sum | cut -d' ' -f1)"

# Least privilege: reads, writes and key-space commands (SCAN/UNLINK for invalidation), PING
# and SELECT; nothing administrative, dangerous (CONFIG, FLUSHALL, KEYS, ...) or scripting.
# Only the password's SHA-256 is stored. The default user is disabled.
umask 077
cat > "$STATE/users.acl" <<ACL
user default off
user $APP_USER on #$PASSWORD_HASH ~* &* -@all +@read +@write +@keyspace +ping +select -@admin -@dangerous -@scripting
ACL

if [ "$MODE" = docker ]; then
    say "starting Redis with docker compose"
    mkdir -p "$STATE/redis-data"
    SECURE_REDIS_STATE="$STATE" SECURE_REDIS_CERTS="$CERTS" SECURE_REDIS_UID="$(id -u)" SECURE_REDIS_GID="$(id -g)" \
        docker compose -f "$COMPOSE_FILE" --env-file "$ENV_FILE" up -d --wait redis
    say "checking from inside the internal network"
    SECURE_REDIS_STATE="$STATE" SECURE_REDIS_CERTS="$CERTS" SECURE_REDIS_UID="$(id -u)" SECURE_REDIS_GID="$(id -g)" \
        docker compose -f "$COMPOSE_FILE" --env-file "$ENV_FILE" run --rm backend secure-redis check --connect
    exit $?
fi

if pid="$(running_pid)"; then
    say "redis-server already running (pid $pid) on port $PORT"
else
    TLS_PROTOCOLS="TLSv1.2 TLSv1.3"; [ "$PRODUCTION" = 1 ] && TLS_PROTOCOLS="TLSv1.3"
    cat > "$REDIS_DIR/redis.conf" <<CONF
# Written by scripts/setup-secure-redis.sh: TLS only, ACL users only, loopback only.
bind 127.0.0.1
protected-mode yes
port 0
tls-port $PORT
tls-cert-file $CERTS/redis.crt
tls-key-file $CERTS/redis.key
tls-ca-cert-file $CERTS/ca.crt
tls-auth-clients yes
tls-protocols "$TLS_PROTOCOLS"
aclfile $STATE/users.acl
dir $REDIS_DIR
appendonly yes
logfile $REDIS_DIR/redis.log
pidfile $PIDFILE
daemonize yes
CONF
    say "starting redis-server (TLS only) on 127.0.0.1:$PORT; data and log in $REDIS_DIR"
    redis-server "$REDIS_DIR/redis.conf"
    for _ in $(seq 100); do port_in_use "$PORT" && break; sleep 0.1; done
    port_in_use "$PORT" || fail "redis-server did not start; see $REDIS_DIR/redis.log"
fi

say "secure-redis check --connect"
report
