#!/usr/bin/env bash
# Load benchmark of the service (issue 14): wrk on this machine against a release build, with
# the load generator sharing the cores. Prints requests/s, p50/p99 latency and CPU per request
# (service and PostgreSQL) for each case, and each case's throughput as a ratio of `GET /health`
# measured in the same run (the baseline: what the machine can do through HTTP alone).
#
#   bash bench/load.sh                          # 1 tenant and 1,000 tenants, Redis and none
#   TENANTS=0 REDIS_MODES=none bash bench/load.sh   # only the one-tenant cases, no Redis
#   BIN=/path/to/montecarlo-platform bash bench/load.sh   # another build (an older commit)
#   DURATION=20 CONNECTIONS=32 bash bench/load.sh
#   PROFILE=/tmp/prof bash bench/load.sh          # also `perf record` (flat) the service in each simulation case
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-16}"
TENANTS="${TENANTS:-1000}"
KEYS="${KEYS:-500}"
REDIS_MODES="${REDIS_MODES:-none redis}"
BOOT="load-bench-admin-token-$(date +%s)-0123456789abcdef"
PW="correct horse battery staple"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
bash scripts/services.sh >/dev/null
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --locked
  BIN="${CARGO_TARGET_DIR:-target}/release/montecarlo-platform"
fi
WORK="$(mktemp -d)"
PID=""
DBS=()
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  wait 2>/dev/null
  for db in "${DBS[@]}"; do
    psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
pg_ticks() {
  local t=0 p
  for p in $(pgrep -x postgres); do t=$((t + $(ticks "$p"))); done
  echo "$t"
}

start() { # start MODE
  local db="load_bench_$$_$1" port redis=()
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1
  DBS+=("$db")
  [ "$1" = redis ] && redis=(REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="loadbench$$:")
  env DATABASE_URL="postgres://postgres@127.0.0.1:5432/$db" BIND_ADDRESS="127.0.0.1:$port" \
    ADMIN_TOKEN="$BOOT" TRUSTED_PROXIES=127.0.0.1/32 RUST_LOG=warn "${redis[@]}" \
    "$BIN" >"$WORK/service.log" 2>&1 &
  PID=$!
  API="http://127.0.0.1:$port"
  for _ in $(seq 1 300); do curl -sf "$API/health" >/dev/null && break; sleep 0.1; done
  curl -sf "$API/health" >/dev/null || { echo "service did not start"; cat "$WORK/service.log"; exit 1; }
  ADMIN=$(admin_token)
}

# The bootstrap secret creates the first platform admin; the admin API takes that admin's
# token (password + TOTP sign-in).
admin_token() {
  python3 - "$API" "$BOOT" <<'PY'
import base64, hashlib, hmac, json, struct, sys, time, urllib.request
api, boot = sys.argv[1], sys.argv[2]
def post(path, body, token=None):
    req = urllib.request.Request(api + path, json.dumps(body).encode(), {"content-type": "application/json"})
    if token:
        req.add_header("authorization", "Bearer " + token)
    return json.load(urllib.request.urlopen(req))
cred = {"email": "bench@platform.example", "password": "load bench admin passphrase"}
secret = post("/api/v1/admin/bootstrap", cred, boot)["totp_secret"]
key = base64.b32decode(secret + "=" * (-len(secret) % 8))
mac = hmac.new(key, struct.pack(">Q", int(time.time()) // 30), hashlib.sha1).digest()
o = mac[-1] & 15
code = "%06d" % ((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 1000000)
print(post("/api/v1/admin/auth/login", dict(cred, totp_code=code))["access_token"])
PY
}

signup() { # signup SLUG N -> prints the two key secrets
  curl -s -X POST "$API/api/v1/signup" -H 'content-type: application/json' \
    -H "X-Forwarded-For: 10.$(($2 / 62500 % 256)).$(($2 / 250 % 250)).$(($2 % 250 + 1))" \
    -d '{"organisation_name":"Load '"$1"'","slug":"'"$1"'","full_name":"Load Bench","email":"bench@'"$1"'.example","password":"'"$PW"'"}' \
    | grep -o '"secret":"mk_live_[A-Za-z0-9]*"' | cut -d'"' -f4
  curl -s -o /dev/null -X PATCH "$API/api/v1/admin/tenants/$1" -H "Authorization: Bearer $ADMIN" \
    -H 'content-type: application/json' -d '{"tier":"enterprise"}'
}
export -f signup
export PW ADMIN

setup_one() { # one enterprise tenant with $KEYS keys -> $WORK/one.keys
  signup load-one 0 >"$WORK/one.keys"
  local token
  token=$(curl -s -X POST "$API/api/v1/auth/login" -H 'X-Tenant-ID: load-one' -H 'content-type: application/json' \
    -d '{"email":"bench@load-one.example","password":"'"$PW"'"}' | grep -o '"access_token":"[^"]*"' | cut -d'"' -f4)
  for i in $(seq 3 "$KEYS"); do
    curl -s -X POST "$API/api/v1/keys" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
      -d '{"name":"bench '"$i"'"}' | grep -o '"secret":"mk_live_[A-Za-z0-9]*"' | cut -d'"' -f4 >>"$WORK/one.keys"
  done
}

setup_many() { # $TENANTS enterprise tenants, two keys each -> $WORK/many.keys
  local t0=$SECONDS
  seq 1 "$TENANTS" | API="$API" xargs -P 4 -I{} bash -c 'signup load-t{} {}' >"$WORK/many.keys"
  echo "  ($TENANTS signups at concurrency 4 in $((SECONDS - t0)) s, $(wc -l <"$WORK/many.keys") keys)"
}

row() { # row LABEL MODE(health|me|sim) KEYS-FILE
  local label=$1 mode=$2 keys=$3 s0 p0 s1 p1 out rps n
  s0=$(ticks "$PID"); p0=$(pg_ticks)
  local prof=""
  if [ -n "${PROFILE:-}" ] && [ "$mode" = sim ]; then
    mkdir -p "$PROFILE"
    perf record -q -F 499 -p "$PID" -o "$PROFILE/$(tr -c 'a-z0-9' _ <<<"$label$REDIS_MODE").data" \
      -- sleep "$DURATION" >/dev/null 2>&1 &
    prof=$!
  fi
  out=$(KEYS="$keys" MODE="$mode" wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s bench/load/keyed.lua "$API" 2>&1 || true)
  s1=$(ticks "$PID"); p1=$(pg_ticks)
  [ -n "$prof" ] && wait "$prof"
  out=$(grep '^RESULT' <<<"$out")
  rps=$(sed 's/.*rps=\([0-9]*\).*/\1/' <<<"$out")
  n=$((rps * DURATION))
  [ "$mode" = health ] && BASE_RPS=$rps
  printf '| %-34s | %7s | %6s | %6s | %6s | %5.2f | %5.2f | %5.3f |\n' "$label" "$rps" \
    "$(sed 's/.*p50_ms=\([0-9.]*\).*/\1/' <<<"$out")" "$(sed 's/.*p99_ms=\([0-9.]*\).*/\1/' <<<"$out")" \
    "$(sed 's/.*non2xx=\([0-9]*\).*/\1/' <<<"$out")" \
    "$(bc -l <<<"($s1 - $s0) * 10 / ($n + 1)")" "$(bc -l <<<"($p1 - $p0) * 10 / ($n + 1)")" \
    "$(bc -l <<<"$rps / $BASE_RPS")"
}

echo dummy >"$WORK/none.keys"
for mode in $REDIS_MODES; do
  REDIS_MODE=$mode
  start "$mode"
  echo "quota store: $mode; $DURATION s per case, $CONNECTIONS connections, wrk -t2; binary $BIN; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  setup_one
  [ "$TENANTS" -gt 0 ] && setup_many
  echo "| case | req/s | p50 ms | p99 ms | non-2xx | service CPU ms/req | PostgreSQL CPU ms/req | × /health |"
  echo "|---|---|---|---|---|---|---|---|"
  row "GET /health" health "$WORK/none.keys"
  row "GET /auth/me, 1 tenant ($KEYS keys)" me "$WORK/one.keys"
  [ "$TENANTS" -gt 0 ] && row "GET /auth/me, $TENANTS tenants" me "$WORK/many.keys"
  row "small simulation, 1 tenant" sim "$WORK/one.keys"
  [ "$TENANTS" -gt 0 ] && row "small simulation, $TENANTS tenants" sim "$WORK/many.keys"
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
done
