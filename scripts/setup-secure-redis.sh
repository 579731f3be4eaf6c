#!/usr/bin/env bash
# One command to a working, secure Redis for development (or a production-shaped one):
# certificates (scripts/init-redis-tls.sh), a strong password, a Fernet key, a least-privilege
# ACL user, a separate admin user and a PING-only healthcheck user, .env.secure, and a TLS-only
# Redis:
# `docker compose -f docker-compose.secure.yml` when a Docker engine answers, otherwise the
# system redis-server in the background with its data and log under .secure-redis/. Ends with
# `secure-redis check --connect` and a status report, run where Redis is reachable: on this
# host without Docker, inside the compose network (`docker compose run backend`) with it.
#
# Usage: scripts/setup-secure-redis.sh [--regenerate] [--production] [--stop] [--status]
#                                      [--check] [--demo] [--admin CMD...] [--help]
#   --regenerate  new certificates and secrets (the old .env.secure is backed up), Redis restarted
#   --production  ENVIRONMENT=production: 48-character password, TLS 1.3 only, mutual TLS
#   --stop        stop the Redis this script started
#   --status      report on the running Redis (exit 0 secure, 1 insecure, 3 not running or
#                 unreachable: the configuration is fine, start Redis as the report says)
#   --check       secure-redis check --connect against it
#   --demo        run examples/demo.py against it
#   --admin CMD.. run one Redis command as the admin user (ACL changes; docs/operations.md),
#                 e.g. --admin ACL LIST; the rest of the line is the command
# Running it twice is safe: existing certificates, secrets and a running server are reused.
# Environment: SECURE_REDIS_HOME (where certs/, .env.secure and .secure-redis/ live; default:
# the project), SECURE_REDIS_PORT (default 6380, or a free port if that one is taken),
# SECURE_REDIS_NO_DOCKER=1 (use the system redis-server even when Docker answers).
set -euo pipefail

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

REGENERATE=0; PRODUCTION=0; ACTION=setup; ADMIN_COMMAND=()
while [ $# -gt 0 ]; do
    arg="$1"; shift
    case "$arg" in
        --admin)
            ACTION=admin; ADMIN_COMMAND=("$@"); set --
            [ ${#ADMIN_COMMAND[@]} -gt 0 ] || { echo "setup-secure-redis.sh: --admin needs a command" >&2; exit 2; } ;;
        --regenerate) REGENERATE=1 ;;
        --production) PRODUCTION=1 ;;
        --stop) ACTION=stop ;;
        --status) ACTION=status ;;
        --check) ACTION=check ;;
        --demo) ACTION=demo ;;
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
MODE_FILE="$STATE/mode"
ADMIN_ENV="$STATE/admin.env"
ADMIN_USER=secure-redis-admin
HEALTH_PASSWORD_FILE="$STATE/healthcheck.password"
HEALTH_USER=secure-redis-health
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
require() {  # command, how to install it
    command -v "$1" >/dev/null 2>&1 || fail "$1 is missing: $2"
}
require openssl "sudo apt-get install openssl"
require python3 "sudo apt-get install python3"
require sha256sum "sudo apt-get install coreutils"
# The interpreter that has secure_redis (for examples/demo.py): the one beside the CLI.
PY="$(dirname "$SR")/python"; [ -x "$PY" ] || PY=python3

use_docker() {
    [ "${SECURE_REDIS_NO_DOCKER:-0}" != "1" ] && command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1
}

# The mode the last setup used: what --status, --check and --demo talk to.
saved_mode() { cat "$MODE_FILE" 2>/dev/null || echo system; }

env_value() { grep -E "^$1=" "$ENV_FILE" 2>/dev/null | tail -n 1 | cut -d= -f2-; }

# TLS 1.3 only for a production file (or --production), as the system redis.conf does.
tls_protocols() {
    if [ "$PRODUCTION" = 1 ] || [ "$(env_value REDIS_TLS_MIN_VERSION)" = 1.3 ]; then echo TLSv1.3
    else echo "TLSv1.2 TLSv1.3"; fi
}

# Every compose call gets the paths, the host user's ids (the containers run as the owner of
# the 0600 keys) and the TLS protocols; the secrets come from --env-file.
compose() {
    SECURE_REDIS_STATE="$STATE" SECURE_REDIS_CERTS="$CERTS" SECURE_REDIS_UID="$(id -u)" \
        SECURE_REDIS_GID="$(id -g)" SECURE_REDIS_TLS_PROTOCOLS="$(tls_protocols)" \
        docker compose -f "$COMPOSE_FILE" --env-file "$ENV_FILE" "$@"
}

need_compose() {
    docker compose version >/dev/null 2>&1 ||
        fail "the docker compose plugin is missing: sudo apt-get install docker-compose-plugin"
}

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
    if use_docker && [ -f "$COMPOSE_FILE" ] && [ -f "$ENV_FILE" ]; then
        compose down >/dev/null 2>&1 || true
    fi
}

# In Docker mode Redis has no published port and the certificate names the host `redis`, so
# the check, the report and the demo run in a one-off backend container on its network, with
# the variables compose gives the backend (container paths for the certificates).
in_network() {  # [--mount HOST:CONTAINER] command...
    local mount=()
    if [ "${1:-}" = --mount ]; then mount=(-v "$2"); shift 2; fi
    use_docker || fail "the last setup used Docker, but no Docker engine answers (start it, or rerun setup with SECURE_REDIS_NO_DOCKER=1)"
    need_compose
    compose run --rm -T "${mount[@]}" backend "$@"
}

report() {  # `secure-redis status`: environment, TLS version, certificate expiry, ACL user, round trip
    if [ "$(saved_mode)" = docker ]; then
        mkdir -p "$STATE/status"
        local rc=0
        in_network --mount "$STATE/status:/status" secure-redis status --save /status/last-check.json || rc=$?
        mv -f "$STATE/status/last-check.json" "$STATE/last-check.json" 2>/dev/null || true
        return "$rc"
    fi
    "$SR" status --env-file "$ENV_FILE" --save "$STATE/last-check.json"
}

check_connect() {
    if [ "$(saved_mode)" = docker ]; then in_network secure-redis check --connect
    else "$SR" check --env-file "$ENV_FILE" --connect; fi
}

# redis-cli as the admin user, beside the server: the password travels in REDISCLI_AUTH, never
# in argv; the client certificate satisfies tls-auth-clients.
admin() {
    [ -f "$ADMIN_ENV" ] || fail "no $ADMIN_ENV: run scripts/setup-secure-redis.sh first"
    local secret
    secret="$(grep -E '^REDIS_ADMIN_PASSWORD=' "$ADMIN_ENV" | cut -d= -f2-)"
    if [ "$(saved_mode)" = docker ]; then
        use_docker || fail "the last setup used Docker, but no Docker engine answers"
        need_compose
        # The Redis container holds the healthcheck's client pair, not the application's; the
        # certificate only opens the TLS session (tls-auth-clients), the admin user is the AUTH.
        REDISCLI_AUTH="$secret" compose exec -T -e REDISCLI_AUTH redis redis-cli --no-auth-warning --tls \
            --cacert /tls/ca.crt --cert /tls/healthcheck.crt --key /tls/healthcheck.key -h localhost -p 6380 \
            --user "$ADMIN_USER" "${ADMIN_COMMAND[@]}"
    else
        require redis-cli "sudo apt-get install redis-tools"
        REDISCLI_AUTH="$secret" redis-cli --no-auth-warning --tls --cacert "$CERTS/ca.crt" \
            --cert "$CERTS/client.crt" --key "$CERTS/client.key" -h localhost \
            -p "$(env_value REDIS_URL | sed -E 's#.*:([0-9]+)/.*#\1#')" --user "$ADMIN_USER" "${ADMIN_COMMAND[@]}"
    fi
}

demo() {
    if [ "$(saved_mode)" = docker ]; then in_network python examples/demo.py --no-env-file
    else "$PY" "$ROOT/examples/demo.py" "$ENV_FILE"; fi
}

# --- actions -------------------------------------------------------------------------------
case "$ACTION" in
    stop) stop_redis; exit 0 ;;
    status|check|demo|admin)
        [ -f "$ENV_FILE" ] || fail "no $ENV_FILE: run scripts/setup-secure-redis.sh first"
        mkdir -p "$STATE"
        rc=0
        case "$ACTION" in status) report || rc=$? ;; check) check_connect || rc=$? ;; demo) demo || rc=$? ;; admin) admin || rc=$? ;; esac
        # 3: secure-redis found the configuration secure and no Redis answering; say how this
        # script starts the one it set up (the URL it wrote is right, so no URL to change).
        if [ "$rc" = 3 ]; then
            if [ "$(saved_mode)" = docker ]; then
                say "Redis is not running: start it with scripts/setup-secure-redis.sh (docker compose up -d --wait redis)"
            else
                say "Redis is not running: start it with scripts/setup-secure-redis.sh (it reuses the certificates and secrets and runs redis-server $REDIS_DIR/redis.conf)"
            fi
        fi
        exit "$rc" ;;
esac

if use_docker; then MODE=docker; HOSTNAME_FOR_CERT=redis; need_compose
else MODE=system; HOSTNAME_FOR_CERT=localhost
    command -v redis-server >/dev/null 2>&1 || fail "no Docker engine and no redis-server: sudo apt-get install redis-server (or start Docker)"
fi
mkdir -p "$STATE" "$REDIS_DIR"
chmod 700 "$STATE"
say "mode: $MODE; files in $HOME_DIR"

if [ "$REGENERATE" = 1 ] || [ ! -f "$CERTS/ca.crt" ]; then
    say "certificates"
    "$ROOT/scripts/init-redis-tls.sh" --force --out "$CERTS" "$HOSTNAME_FOR_CERT" >/dev/null
elif [ ! -f "$CERTS/healthcheck.crt" ]; then
    # Certificates from before the healthcheck had a pair of its own: new leaves from the same
    # CA (clients keep trusting it). Without ca.key only Docker mode, whose healthcheck mounts
    # the pair, cannot go on.
    if [ -f "$CERTS/ca.key" ]; then
        say "certificates: adding the healthcheck's client pair (new leaves from the same CA)"
        "$ROOT/scripts/init-redis-tls.sh" --renew --out "$CERTS" "$HOSTNAME_FOR_CERT" >/dev/null
    elif [ "$MODE" = docker ]; then
        fail "$CERTS/healthcheck.crt is missing and so is ca.key to issue it: put ca.key back in $CERTS, or rerun with --regenerate"
    fi
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

# The admin user (ACL commands, for password rotation without a restart) has its own password
# in .secure-redis/admin.env, never in .env.secure: applications never hold it.
umask 077
if [ "$REGENERATE" = 1 ] || [ ! -f "$ADMIN_ENV" ]; then
    say "admin user $ADMIN_USER; its password in $ADMIN_ENV"
    {
        echo "# The Redis admin user for ACL changes (docs/operations.md). Not for applications."
        echo "REDIS_ADMIN_USERNAME=$ADMIN_USER"
        echo "REDIS_ADMIN_PASSWORD=$("$SR" generate-password --length 48)"
    } > "$ADMIN_ENV"
    chmod 600 "$ADMIN_ENV"
fi
ADMIN_HASH="$(grep -E '^REDIS_ADMIN_PASSWORD=' "$ADMIN_ENV" | cut -d= -f2- | tr -d '\n' | sha256sum | cut -d' ' -f1)"

# The healthcheck user's password, alone in a 0600 file that only the Redis container mounts:
# the container gets neither the application's password nor its client key.
if [ "$REGENERATE" = 1 ] || [ ! -s "$HEALTH_PASSWORD_FILE" ]; then
    say "healthcheck user $HEALTH_USER; its password in $HEALTH_PASSWORD_FILE"
    "$SR" generate-password --length 48 | tr -d '\n' > "$HEALTH_PASSWORD_FILE"
    chmod 600 "$HEALTH_PASSWORD_FILE"
fi
HEALTH_HASH="$(tr -d '\n' < "$HEALTH_PASSWORD_FILE" | sha256sum | cut -d' ' -f1)"

# Least privilege: the application user gets exactly the commands the cache sends
# (docs/infrastructure/redis-security.md#acl-users says why each is there), on every key (the
# default namespace is "", so any name may be a cache key) and no Pub/Sub channel (invalidations
# arrive as RESP3 pushes, not messages):
#   entries      GETRANGE PTTL STRLEN (reads never GET a value whole), SETEX, DEL, EXISTS
#   sweeps       SCAN, MGET (proving ownership), UNLINK: invalidate_pattern, clear, repair
#   live check   SET ... EX, GET and DEL of the probe key
#   statistics   DBSIZE, INFO (memory and clients, for a namespace or the AI cache)
#   connection   PING, SELECT (database N), HELLO (the RESP3 invalidation link), CLIENT ID,
#                TRACKING, SETNAME (L1 coherence) and KILL (fencing a connection given up).
# Nothing administrative, no KEYS, FLUSHALL, CONFIG or scripting. CLIENT KILL can close other
# clients' connections: less than the UNLINK of every key the user already has.
# The admin user may manage ACLs and connections, and read no data. The healthcheck user may
# PING and nothing else, on no key or channel. Only the passwords' SHA-256 is stored. The
# default user is disabled. Written in place (same inode), so the single-file bind mount under
# Docker sees the new content.
cat > "$STATE/users.acl" <<ACL
user default off
user $APP_USER on #$PASSWORD_HASH ~* resetchannels -@all +getrange +pttl +strlen +setex +set +del +exists +scan +mget +unlink +get +sadd +smembers +expire +eval +dbsize +info +ping +select +hello +client|id +client|tracking +client|setname +client|kill
user $ADMIN_USER on #$ADMIN_HASH resetkeys resetchannels -@all +@connection +acl +info
user $HEALTH_USER on #$HEALTH_HASH resetkeys resetchannels -@all +ping
ACL
echo "$MODE" > "$MODE_FILE"

if [ "$MODE" = docker ]; then
    say "starting Redis with docker compose"
    mkdir -p "$STATE/redis-data"
    # New certificates and ACL file: recreate the container so it reads them.
    if [ "$REGENERATE" = 1 ]; then compose down >/dev/null 2>&1 || true; fi
    compose up -d --wait redis
    say "building the backend image (examples/Dockerfile)"
    compose build backend
    say "secure-redis check --connect, from inside the internal network"
    check_connect
    report
    exit $?
fi

if pid="$(running_pid)"; then
    say "redis-server already running (pid $pid) on port $PORT"
else
    TLS_PROTOCOLS="$(tls_protocols)"
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
