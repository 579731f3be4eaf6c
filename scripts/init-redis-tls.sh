#!/usr/bin/env bash
# Creates the TLS material for a Redis server and its clients:
#   ca.crt / ca.key          a 4096-bit RSA certificate authority (keep ca.key offline in production)
#   redis.crt / redis.key    the server certificate; SANs: the host name, localhost, 127.0.0.1, ::1
#   client.crt / client.key  a separate client certificate for mutual TLS (never the server's pair)
#   healthcheck.crt / .key   the Redis container's healthcheck's own client certificate, so the
#                            container never holds the application's client key
# Keys are 0600, certificates 0644; CSRs, serials and extension files are removed.
#
# Usage: scripts/init-redis-tls.sh [--force | --renew] [--out DIR] [--days N] [--ca-days N] [hostname]
#   hostname   the name clients use to reach Redis (default: redis)
#   --out DIR  where to write (default: $SECURE_REDIS_HOME/certs, or ./certs)
#   --days N   leaf certificate lifetime (default 365); --ca-days N: a new CA's (default 3650)
#   --force    replace everything, the CA included (otherwise the script refuses to overwrite)
#   --renew    new server, client and healthcheck certificates signed by the existing
#              ca.crt/ca.key in DIR (refused when either is missing); clients keep
#              trusting the same CA
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

HOST="redis"
FORCE=0
RENEW=0
DAYS=365
# The CA outlives its leaves so that --renew can issue new ones from it for years.
CA_DAYS=3650
OUT="${SECURE_REDIS_HOME:-.}/certs"
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --force) FORCE=1 ;;
        --renew) RENEW=1 ;;
        --out) OUT="${2:?--out needs a directory}"; shift ;;
        --days) DAYS="${2:?--days needs a number}"; shift ;;
        --ca-days) CA_DAYS="${2:?--ca-days needs a number}"; shift ;;
        -*) echo "init-redis-tls.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) HOST="$1" ;;
    esac
    shift
done

if ! command -v openssl >/dev/null 2>&1; then
    echo "init-redis-tls.sh: openssl is required (Debian/Ubuntu: sudo apt-get install openssl)" >&2
    exit 1
fi
if ! [[ "$HOST" =~ ^[A-Za-z0-9.-]+$ ]]; then
    echo "init-redis-tls.sh: '$HOST' is not a valid host name" >&2
    exit 2
fi

if [ "$RENEW" -eq 1 ] && [ "$FORCE" -eq 1 ]; then
    echo "init-redis-tls.sh: --renew keeps the CA and --force replaces it; choose one" >&2
    exit 2
fi

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
if [ "$RENEW" -eq 1 ]; then
    for file in ca.crt ca.key; do
        if [ ! -f "$OUT/$file" ]; then
            echo "init-redis-tls.sh: --renew needs the existing CA, but $OUT/$file is missing" >&2
            echo "  (put ca.crt and ca.key back in $OUT, or make a new CA with --force)" >&2
            exit 1
        fi
    done
else
    existing=$(ls "$OUT"/ca.crt "$OUT"/redis.crt "$OUT"/client.crt 2>/dev/null || true)
    if [ -n "$existing" ] && [ "$FORCE" -ne 1 ]; then
        echo "init-redis-tls.sh: certificates already exist in $OUT; use --renew for new leaf certificates" \
            "from the same CA, or --force to replace everything" >&2
        exit 1
    fi
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
umask 077

if [ "$RENEW" -eq 1 ]; then
    echo "==> reusing the CA in $OUT"
    cp "$OUT/ca.crt" "$OUT/ca.key" "$work/"
    # A CA that expires before the new leaves would make them useless: say so now.
    if ! openssl x509 -in "$work/ca.crt" -noout -checkend $((DAYS * 86400)) >/dev/null; then
        echo "init-redis-tls.sh: warning: the CA expires within $DAYS days; plan a new CA (--force)" >&2
    fi
else
    echo "==> CA (RSA 4096) in $OUT"
    openssl genrsa -out "$work/ca.key" 4096 2>/dev/null
    openssl req -x509 -new -key "$work/ca.key" -sha256 -days "$CA_DAYS" \
        -subj "/O=secure_redis/OU=Redis TLS/CN=secure_redis Redis CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$work/ca.crt"
fi

leaf() {  # name, common name, extended key usage, subjectAltName (or empty)
    local name="$1" cn="$2" eku="$3" san="$4"
    openssl genrsa -out "$work/$name.key" 2048 2>/dev/null
    openssl req -new -key "$work/$name.key" -subj "/O=secure_redis/OU=Redis TLS/CN=$cn" -out "$work/$name.csr"
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$eku"
        [ -n "$san" ] && echo "subjectAltName=$san"
    } > "$work/$name.ext"
    openssl x509 -req -in "$work/$name.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
        -CAserial "$work/ca.srl" -CAcreateserial -days "$DAYS" -sha256 \
        -extfile "$work/$name.ext" -out "$work/$name.crt" 2>/dev/null
    openssl verify -CAfile "$work/ca.crt" "$work/$name.crt" >/dev/null
}

echo "==> server certificate for $HOST, localhost, 127.0.0.1"
leaf redis "$HOST" serverAuth "DNS:$HOST,DNS:localhost,IP:127.0.0.1,IP:::1"
echo "==> client certificate (mutual TLS)"
leaf client "secure-redis-client" clientAuth ""
echo "==> healthcheck client certificate (the Redis container's own, never the application's)"
leaf healthcheck "secure-redis-healthcheck" clientAuth ""

names="ca redis client healthcheck"; [ "$RENEW" -eq 1 ] && names="redis client healthcheck"
for name in $names; do
    install -m 600 "$work/$name.key" "$OUT/$name.key"
    install -m 644 "$work/$name.crt" "$OUT/$name.crt"
done

cat <<NEXT
Done. Files in $OUT:
  ca.crt, ca.key          certificate authority (move ca.key somewhere safe)
  redis.crt, redis.key    server (tls-cert-file, tls-key-file; tls-ca-cert-file ca.crt)
  client.crt, client.key  client, for mutual TLS
  healthcheck.crt, .key   the Redis container's healthcheck (docker-compose.secure.yml)
Next steps:
  export REDIS_URL=rediss://$HOST:6380/0
  export REDIS_TLS_CA_PATH=$OUT/ca.crt
  export REDIS_TLS_CERT_PATH=$OUT/client.crt
  export REDIS_TLS_KEY_PATH=$OUT/client.key
  secure-redis check --connect
Or run scripts/setup-secure-redis.sh to do all of it, Redis included.
NEXT
