#!/usr/bin/env bash
# Scale-out benchmark (issue 14), release build, wrk on this machine:
#  1. one instance: direct with `DATABASE_STATEMENTS=prepared` (the default), direct with
#     `unnamed`, and `unnamed` through PgBouncer (transaction pooling, PGB_POOL server
#     connections; scripts/pgbouncer.sh);
#  2. 1, 2 and 3 instances on one database and one Redis, the load spread over their ports
#     (one wrk per instance, CONNECTIONS split between them; req/s summed, the worst p99);
#  3. the monthly quota across 3 instances: a tier quota of QUOTA, 3 × QUOTA simulations sent
#     round-robin over the three ports, exactly QUOTA must succeed and the rest answer 429.
# Keyed GET is `GET /api/v1/auth/me`; the small simulation is 1 asset, 10 annual steps, 1,000
# paths (bench/load/keyed.lua). One tenant with KEYS keys, enterprise tier with its burst and
# concurrency limits raised so only capacity limits throughput.
#
#   bash bench/scale.sh
#   DURATION=20 CONNECTIONS=32 INSTANCES="1 2 3" BIN=target/release/montecarlo-platform bash bench/scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-16}"
KEYS="${KEYS:-40}"
INSTANCES="${INSTANCES:-1 2 3}"
QUOTA="${QUOTA:-30}"
PGB_PORT="${PGB_PORT:-6433}"
PGB_POOL="${PGB_POOL:-8}"
ADMIN="scale-bench-admin-token-$(date +%s)-0123456789abcdef"
PW="correct horse battery staple"
DB="scale_bench_$$"
OWNER_URL="postgres://postgres@127.0.0.1:5432/$DB"

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
bash scripts/services.sh >/dev/null
if [ -z "${BIN:-}" ]; then
  cargo build --release --quiet --locked
  BIN="${CARGO_TARGET_DIR:-target}/release/montecarlo-platform"
fi
WORK="$(mktemp -d)"
chmod 755 "$WORK" # PgBouncer runs as postgres and reads its config under it
PIDS=()
PORTS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  PGB_DIR="$WORK/pgb" bash scripts/pgbouncer.sh stop "$PGB_PORT" >/dev/null 2>&1 || true
  psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT

start() { # start NAME [ENV=VALUE...]: one more instance -> PIDS, PORTS
  local name=$1 port; shift
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  env DATABASE_URL="$OWNER_URL" BIND_ADDRESS="127.0.0.1:$port" ADMIN_TOKEN="$ADMIN" \
    TRUSTED_PROXIES=127.0.0.1/32 LOGIN_ATTEMPTS_PER_MINUTE=100000 JOB_WORKERS=0 RUST_LOG=warn \
    REDIS_URL=redis://127.0.0.1:6379 REDIS_KEY_PREFIX="scalebench$$:" "$@" \
    "$BIN" >"$WORK/$name.log" 2>&1 &
  PIDS+=($!)
  PORTS+=("$port")
  for _ in $(seq 1 300); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && return 0; sleep 0.1; done
  echo "instance $name did not start"; cat "$WORK/$name.log"; exit 1
}
stop_all() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PIDS=(); PORTS=()
}

# Set-up on a first instance: the tenant, its keys, the tier limits.
start setup
API="http://127.0.0.1:${PORTS[0]}"
curl -s -X POST "$API/api/v1/signup" -H 'content-type: application/json' \
  -d '{"organisation_name":"Scale","slug":"scale-one","full_name":"Scale Bench","email":"bench@scale.example","password":"'"$PW"'"}' \
  | grep -o '"secret":"mk_live_[A-Za-z0-9]*"' | cut -d'"' -f4 >"$WORK/keys"
curl -s -o /dev/null -X PATCH "$API/api/v1/admin/tenants/scale-one" -H "Authorization: Bearer $ADMIN" \
  -H 'content-type: application/json' -d '{"tier":"enterprise"}'
token=$(curl -s -X POST "$API/api/v1/auth/login" -H 'X-Tenant-ID: scale-one' -H 'content-type: application/json' \
  -d '{"email":"bench@scale.example","password":"'"$PW"'"}' | grep -o '"access_token":"[^"]*"' | cut -d'"' -f4)
for i in $(seq 3 "$KEYS"); do
  curl -s -X POST "$API/api/v1/keys" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d '{"name":"bench '"$i"'"}' | grep -o '"secret":"mk_live_[A-Za-z0-9]*"' | cut -d'"' -f4 >>"$WORK/keys"
done
psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "UPDATE platform.tiers SET burst_per_second = 1000000, burst_size = 1000000, max_concurrent_simulations = 256 WHERE name = 'enterprise'"
APP_ROLE_URL="postgres://montecarlo_app@127.0.0.1"
stop_all

row() { # row LABEL MODE: wrk on every running instance at once, CONNECTIONS split
  local label=$1 mode=$2 n=${#PORTS[@]} c i rps=0 p99=0 p50=0 non=0 out wrks=()
  c=$((CONNECTIONS / n)); [ "$c" -lt 1 ] && c=1
  for i in "${!PORTS[@]}"; do
    KEYS="$WORK/keys" MODE="$mode" wrk -t1 -c"$c" -d"${DURATION}s" -s bench/load/keyed.lua \
      "http://127.0.0.1:${PORTS[$i]}" >"$WORK/wrk.$i" 2>&1 &
    wrks+=($!)
  done
  wait "${wrks[@]}" || true
  for i in "${!PORTS[@]}"; do
    out=$(grep "^RESULT" "$WORK/wrk.$i") || { echo "wrk failed:"; cat "$WORK/wrk.$i"; exit 1; }
    rps=$((rps + $(sed 's/.*rps=\([0-9]*\).*/\1/' <<<"$out")))
    non=$((non + $(sed 's/.*non2xx=\([0-9]*\).*/\1/' <<<"$out")))
    p99=$(python3 -c "print(max($p99, $(sed 's/.*p99_ms=\([0-9.]*\).*/\1/' <<<"$out")))")
    p50=$(python3 -c "print(max($p50, $(sed 's/.*p50_ms=\([0-9.]*\).*/\1/' <<<"$out")))")
  done
  printf '| %-44s | %7s | %6s | %6s | %7s |\n' "$label" "$rps" "$p50" "$p99" "$non"
  eval "RPS_$3=$rps"
}

echo "$(date -u '+%F %H:%M') UTC, $(nproc) cores shared with the load generator; $DURATION s per case, $CONNECTIONS connections in all; binary $BIN"
echo "| case | req/s | p50 ms (worst instance) | p99 ms (worst instance) | non-2xx |"
echo "|---|---|---|---|---|"
# 1. PgBouncer against direct, one instance.
PGB_DIR="$WORK/pgb" bash scripts/pgbouncer.sh start "$PGB_PORT" "$PGB_POOL" >/dev/null
for variant in direct-prepared direct-unnamed pgbouncer-unnamed; do
  case $variant in
    direct-prepared) start one DATABASE_STATEMENTS=prepared ;;
    direct-unnamed) start one DATABASE_STATEMENTS=unnamed ;;
    pgbouncer-unnamed) start one DATABASE_STATEMENTS=unnamed \
      DATABASE_APP_URL="$APP_ROLE_URL:$PGB_PORT/$DB" DATABASE_LISTEN_URL="$APP_ROLE_URL:5432/$DB" ;;
  esac
  row "1 instance, $variant: GET /auth/me" me "${variant//-/_}_me"
  row "1 instance, $variant: small simulation" sim "${variant//-/_}_sim"
  stop_all
done
echo "(PgBouncer: $PGB_POOL server connections; through it / direct, both unnamed: GET $(python3 -c "print(round($RPS_pgbouncer_unnamed_me / $RPS_direct_unnamed_me, 2))"), simulation $(python3 -c "print(round($RPS_pgbouncer_unnamed_sim / $RPS_direct_unnamed_sim, 2))"); unnamed / prepared, direct: GET $(python3 -c "print(round($RPS_direct_unnamed_me / $RPS_direct_prepared_me, 2))"), simulation $(python3 -c "print(round($RPS_direct_unnamed_sim / $RPS_direct_prepared_sim, 2))"))"

# 2. 1, 2, 3 instances.
for n in $INSTANCES; do
  for i in $(seq 1 "$n"); do start "n$n-$i"; done
  row "$n instance(s), Redis: GET /auth/me" me "n${n}_me"
  row "$n instance(s), Redis: small simulation" sim "n${n}_sim"
  [ "$n" = "$(echo "$INSTANCES" | awk '{print $NF}')" ] || stop_all
done

# 3. Exact monthly quota over the instances still running.
API="http://127.0.0.1:${PORTS[0]}"
curl -s -X POST "$API/api/v1/signup" -H 'content-type: application/json' \
  -d '{"organisation_name":"Quota","slug":"scale-quota","full_name":"Scale Bench","email":"bench@quota.example","password":"'"$PW"'"}' \
  | grep -o '"secret":"mk_live_[A-Za-z0-9]*"' | cut -d'"' -f4 >"$WORK/quota.keys"
curl -s -o /dev/null -X PATCH "$API/api/v1/admin/tenants/scale-quota" -H "Authorization: Bearer $ADMIN" \
  -H 'content-type: application/json' -d '{"tier":"starter"}'
psql -q -h 127.0.0.1 -U postgres -d "$DB" -c "UPDATE platform.tiers SET monthly_simulations = $QUOTA, overage_cents_per_simulation = NULL, burst_per_second = 100000, burst_size = 100000, max_concurrent_simulations = 256 WHERE name = 'starter'"
sleep 2 # the tier change reaches every instance by NOTIFY
n=${#PORTS[@]}
for i in $(seq 0 $((3 * QUOTA - 1))); do
  echo "http://127.0.0.1:${PORTS[$((i % n))]} $(sed -n "$((i % 2 + 1))p" "$WORK/quota.keys")"
done | xargs -P 12 -L 1 sh -c 'curl -s -o /dev/null -w "%{http_code}\n" -X POST "$0/api/v1/simulations" -H "X-API-Key: $1" -H "content-type: application/json" -d "{\"assets\":[{\"weight\":1,\"drift\":0.05,\"volatility\":0.2}],\"initial_value\":1000,\"horizon_years\":1,\"steps_per_year\":1,\"paths\":100}"' \
  | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}' >"$WORK/quota.out"
echo
echo "monthly quota $QUOTA over $n instances, $((3 * QUOTA)) simulations round-robin, 12 at a time: $(cat "$WORK/quota.out")"
grep -q "^$QUOTA×201 $((2 * QUOTA))×429 $" "$WORK/quota.out" && echo "exact: $QUOTA admitted, $((2 * QUOTA)) refused" || { echo "NOT EXACT"; exit 1; }
