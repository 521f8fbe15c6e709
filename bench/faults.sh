#!/usr/bin/env bash
# Fault scenarios (issue 14), on loopback only, against a PRIVATE PostgreSQL cluster and a
# private Redis started for the run (other ports, a temporary directory, removed at the end):
# a developer's databases are never restarted. Every scenario is bounded in time; the script
# stops by itself and prints what was lost.
#
#   bash bench/faults.sh                      # release build; soak of 10 minutes
#   SOAK_SECONDS=120 bash bench/faults.sh     # a shorter soak
#   BIN=target/release/montecarlo-platform SCENARIOS="pg redis" bash bench/faults.sh
#
# Scenarios (SCENARIOS, default all four):
#   pg     PostgreSQL restarted (pg_ctl restart -m fast) under simulation load: failed requests
#          counted; every simulation answered 201 must be a row; the POST /simulations calls
#          answered 201 must all be in the usage log after a clean shutdown.
#   redis  Redis killed (SIGKILL) under load and restarted 5 s later: statuses during the outage,
#          the quota period's `used` after it against the simulations admitted.
#   term   SIGTERM to an instance with requests in flight (a new connection per request):
#          requests sent and never answered are "dropped" (must be 0); refused connections after
#          the listener closed are expected; rows and usage checked as for `pg`.
#   soak   SOAK_SECONDS of mixed load (keyed GET and small simulations over 20 tenants), resident
#          memory sampled every 5 s: first (after 10 s), last, max.
# Environment: FAULTS_PG_PORT (55432), FAULTS_REDIS_PORT (6390), LOAD_SECONDS (20), THREADS (16).
set -euo pipefail
cd "$(dirname "$0")/.."
SOAK_SECONDS="${SOAK_SECONDS:-600}"
LOAD_SECONDS="${LOAD_SECONDS:-20}"
THREADS="${THREADS:-16}"
PG_PORT="${FAULTS_PG_PORT:-55432}"
REDIS_PORT="${FAULTS_REDIS_PORT:-6390}"
SCENARIOS="${SCENARIOS:-pg redis term soak}"
ADMIN="faults-admin-token-$(date +%s)-0123456789abcdef"
PW="correct horse battery staple"
PG_BIN="/usr/lib/postgresql/$(ls /usr/lib/postgresql | sort -V | tail -n 1)/bin"

command -v redis-server >/dev/null && [ -x "$PG_BIN/initdb" ] || bash scripts/services.sh >/dev/null
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --locked
  BIN="${CARGO_TARGET_DIR:-target}/release/montecarlo-platform"
fi
BIN="$(realpath "$BIN")"
WORK="$(mktemp -d /tmp/mc-faults.XXXXXX)"
chmod 755 "$WORK"
PID=""
as_pg() { if [ "$(id -u)" -eq 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
pgctl() { as_pg "$PG_BIN/pg_ctl -D $WORK/pg -l $WORK/pg/server.log -w -t 60 $*" >/dev/null; }
cleanup() {
  [ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
  pgctl stop -m immediate 2>/dev/null || true
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- private PostgreSQL and Redis --------------------------------------------------------------
if pg_isready -q -h 127.0.0.1 -p "$PG_PORT" || redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  echo "port $PG_PORT or $REDIS_PORT is taken: set FAULTS_PG_PORT / FAULTS_REDIS_PORT"; exit 1
fi
mkdir -p "$WORK/pg"
[ "$(id -u)" -eq 0 ] && chown postgres "$WORK/pg"
as_pg "$PG_BIN/initdb -D $WORK/pg -U postgres --auth=trust -E UTF8" >/dev/null
pgctl start -o "'-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200'"
start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
    --dir "$WORK" --pidfile "$WORK/redis.pid" --logfile "$WORK/redis.log"
  for _ in $(seq 1 40); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && return; sleep 0.1; done
}
start_redis
PSQL=(psql -q -At -h 127.0.0.1 -p "$PG_PORT" -U postgres -d faults)
echo "private PostgreSQL 127.0.0.1:$PG_PORT ($WORK/pg), Redis 127.0.0.1:$REDIS_PORT; binary $BIN"

# --- the service -------------------------------------------------------------------------------
API=""
start() { # start NAME: a fresh instance on a free port -> $PID, $API
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  env DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/faults" BIND_ADDRESS="127.0.0.1:$port" \
    ADMIN_TOKEN="$ADMIN" TRUSTED_PROXIES=127.0.0.1/32 LOGIN_ATTEMPTS_PER_MINUTE=100000 \
    REDIS_URL="redis://127.0.0.1:$REDIS_PORT" REDIS_KEY_PREFIX="faults:" JOB_WORKERS=0 RUST_LOG=warn \
    "$BIN" >"$WORK/$1.log" 2>&1 &
  PID=$!
  API="http://127.0.0.1:$port"
  for _ in $(seq 1 300); do curl -sf "$API/health" >/dev/null && return 0; sleep 0.1; done
  echo "service did not start"; cat "$WORK/$1.log"; exit 1
}
stop() { # SIGTERM and wait: a clean shutdown flushes the usage log
  kill -TERM "$PID"; wait "$PID" 2>/dev/null || true; PID=""
}
signup() { # signup SLUG -> the two key secrets, appended to $2
  curl -s -X POST "$API/api/v1/signup" -H 'content-type: application/json' \
    -d '{"organisation_name":"Faults '"$1"'","slug":"'"$1"'","full_name":"Fault Bench","email":"bench@'"$1"'.example","password":"'"$PW"'"}' \
    | grep -o '"secret":"mk_live_[A-Za-z0-9]*"' | cut -d'"' -f4 >>"$2"
  curl -s -o /dev/null -X PATCH "$API/api/v1/admin/tenants/$1" -H "Authorization: Bearer $ADMIN" \
    -H 'content-type: application/json' -d '{"tier":"enterprise"}'
}
client() { # client OUT ARGS... (runs bench/faults/client.py against $API)
  local out=$1; shift
  python3 bench/faults/client.py --bases "$API" --out "$out" "$@"
}
field() { python3 -c "import json,sys; d=json.load(open('$1')); print(eval(sys.argv[1]))" "$2"; }
schema() { "${PSQL[@]}" -c "SELECT schema_name FROM platform.tenants WHERE slug = '$1'"; }
# rows_check OUT SLUG: simulations answered 201 and missing from the database; 201 calls of
# POST /simulations missing from the usage log.
rows_check() {
  local out=$1 s ids missing logged seen
  s=$(schema "$2")
  field "$out" "'\n'.join(i.split('_',1)[1] for i in d['ids'])" >"$WORK/ids.txt"
  "${PSQL[@]}" -c "SELECT id FROM \"$s\".simulations" | sort >"$WORK/rows.txt"
  missing=$(sort "$WORK/ids.txt" | comm -23 - "$WORK/rows.txt" | grep -c . || true)
  logged=$("${PSQL[@]}" -c "SELECT coalesce(sum(calls), 0) FROM \"$s\".api_call_logs WHERE method = 'POST' AND status = 201 AND endpoint LIKE '%simulations'")
  seen=$(field "$out" "len(d['ids'])")
  echo "  simulations answered 201: $seen; missing from the database: $missing; rows: $(wc -l <"$WORK/rows.txt")"
  echo "  POST /simulations 201 calls in the usage log: $logged of $seen (lost: $((seen - logged)))"
}
outcome() { # one line of what the client saw
  echo "  client: statuses $(field "$1" "d['status']"), refused $(field "$1" "d['refused']"), dropped $(field "$1" "d['dropped']") $(field "$1" "d['errors'][:2] or ''")"
}

# Tier limits high enough that only the faults refuse requests (tiers load at start-up).
start setup
"${PSQL[@]}" -c "UPDATE platform.tiers SET burst_per_second = 100000, burst_size = 100000, max_concurrent_simulations = 256 WHERE name = 'enterprise'"
stop

for scenario in $SCENARIOS; do
  case "$scenario" in
  pg)
    echo "== PostgreSQL restart under load ($LOAD_SECONDS s, $THREADS clients, restart at 1/3)"
    start pg; signup f-pg "$WORK/pg.keys"
    client "$WORK/pg.json" --keys "$WORK/pg.keys" --mode sim --seconds "$LOAD_SECONDS" --threads "$THREADS" &
    cpid=$!
    sleep $((LOAD_SECONDS / 3))
    t0=$(date +%s.%N); pgctl restart -m fast; t1=$(date +%s.%N)
    echo "  PostgreSQL restarted in $(printf '%.1f' "$(bc -l <<<"$t1 - $t0")") s"
    wait "$cpid"
    outcome "$WORK/pg.json"
    stop
    rows_check "$WORK/pg.json" f-pg
    ;;
  redis)
    echo "== Redis killed under load and restarted 5 s later ($LOAD_SECONDS s, $THREADS clients)"
    start redis; signup f-redis "$WORK/redis.keys"
    client "$WORK/redis.json" --keys "$WORK/redis.keys" --mode sim --seconds "$LOAD_SECONDS" --threads "$THREADS" &
    cpid=$!
    sleep $((LOAD_SECONDS / 3))
    kill -KILL "$(cat "$WORK/redis.pid")"; sleep 5; start_redis
    echo "  Redis killed and restarted empty (no persistence)"
    wait "$cpid"
    outcome "$WORK/redis.json"
    key=$(head -n 1 "$WORK/redis.keys")
    used=$(curl -s "$API/api/v1/usage" -H "X-API-Key: $key" | python3 -c 'import json,sys; print(json.load(sys.stdin)["period"]["used"])')
    echo "  quota period used after the outage: $used; simulations admitted: $(field "$WORK/redis.json" "len(d['ids'])")"
    stop
    rows_check "$WORK/redis.json" f-redis
    ;;
  term)
    echo "== SIGTERM with requests in flight (new connection per request, 20,000-path simulations)"
    start term; signup f-term "$WORK/term.keys"
    client "$WORK/term.json" --keys "$WORK/term.keys" --mode sim --paths 20000 --close --seconds 8 --threads "$THREADS" &
    cpid=$!
    sleep 4
    t0=$(date +%s.%N); kill -TERM "$PID"; wait "$PID" && code=0 || code=$?; t1=$(date +%s.%N); PID=""
    echo "  instance exited with $code, $(printf '%.2f' "$(bc -l <<<"$t1 - $t0")") s after SIGTERM"
    wait "$cpid"
    outcome "$WORK/term.json"
    echo "  requests in flight at SIGTERM and answered 2xx after it (drained): $(field "$WORK/term.json" "sum(1 for t in d['done_at'] if t > $t0)")"
    rows_check "$WORK/term.json" f-term
    ;;
  soak)
    echo "== Soak: $SOAK_SECONDS s of mixed load (keyed GET and small simulations, 20 tenants, 4 clients)"
    start soak
    for i in $(seq 1 20); do signup "f-soak-$i" "$WORK/soak.keys"; done
    client "$WORK/soak.json" --keys "$WORK/soak.keys" --mode mix --seconds "$SOAK_SECONDS" --threads 4 &
    cpid=$!
    : >"$WORK/rss.txt"
    elapsed=0
    while kill -0 "$cpid" 2>/dev/null; do
      sleep 5; elapsed=$((elapsed + 5))
      [ "$elapsed" -ge 10 ] && awk '/VmRSS/ {print $2}' "/proc/$PID/status" >>"$WORK/rss.txt"
    done
    wait "$cpid"
    outcome "$WORK/soak.json"
    python3 - "$WORK/rss.txt" <<'EOF'
import sys
s = [int(x) for x in open(sys.argv[1]) if x.strip()]
if s:
    half = s[len(s) // 2:]
    print(f"  RSS samples: {len(s)}; first {s[0] / 1024:.1f} MiB, last {s[-1] / 1024:.1f} MiB, "
          f"max {max(s) / 1024:.1f} MiB; second half min..max {min(half) / 1024:.1f}..{max(half) / 1024:.1f} MiB "
          f"({'flat' if s[-1] <= s[0] * 1.10 + 2048 else 'GREW'}: last within 10 % + 2 MiB of first)")
EOF
    stop
    ;;
  *) echo "unknown scenario $scenario" ;;
  esac
done
