#!/usr/bin/env bash
# The contract suite: the committed OpenAPI document is checked as a client would use it.
#   1. openapi-python-client generates a client from it with no warning, and every example in
#      it validates against its own schema;
#   2. openapi-typescript + `tsc --noEmit` type-check a typed walkthrough (ts/walkthrough.ts);
#   3. against the real service (the debug build, a fresh database, Redis): the generated
#      Python client drives the README walkthrough (drive_client.py), and Schemathesis runs
#      every operation with every check and must find no failure.
# Run by scripts/test.sh after `cargo test` (which builds the binary); alone:
#   bash scripts/contract-tools.sh && cargo build && bash tests/contract/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TOOLS="${CONTRACT_TOOLS:-$ROOT/.tools}"
VENV="$TOOLS/venv"
BIN="${MC_BINARY:-$ROOT/target/debug/montecarlo-platform}"
SPEC="$ROOT/openapi/openapi.json"
WORK="$(mktemp -d)"
DB="contract_$(date +%s)_$$"
SERVICE_PID=""
cleanup() {
  [ -n "$SERVICE_PID" ] && kill "$SERVICE_PID" 2>/dev/null && wait "$SERVICE_PID" 2>/dev/null
  if [ "${CONTRACT_KEEP:-0}" = 1 ]; then
    echo "contract: kept $WORK (service.log) and database $DB (CONTRACT_KEEP=1)"
    return
  fi
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { echo; echo "== contract: $*"; }

step "examples validate against their schemas"
"$VENV/bin/python" tests/contract/validate_examples.py "$SPEC"

step "openapi-typescript + tsc --noEmit"
cp tests/contract/ts/walkthrough.ts tests/contract/ts/tsconfig.json "$WORK/"
"$TOOLS/node/node_modules/.bin/openapi-typescript" "$SPEC" -o "$WORK/api.d.ts" \
  --default-non-nullable false >/dev/null
"$TOOLS/node/node_modules/.bin/tsc" -p "$WORK"
echo "tsc: no errors"

step "start the service"
PORT=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export MC_BASE_URL="http://127.0.0.1:$PORT"
export MC_ADMIN_TOKEN="contract-admin-token-$(date +%s)-0123456789abcdef"
DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" BIND_ADDRESS="127.0.0.1:$PORT" \
  JWT_SECRET="contract-jwt-secret-0123456789abcdefghijklmnop" ADMIN_TOKEN="$MC_ADMIN_TOKEN" \
  REDIS_URL="redis://127.0.0.1:6379" REDIS_KEY_PREFIX="contract:$DB:" \
  LOGIN_ATTEMPTS_PER_MINUTE=100000 RUST_LOG="${CONTRACT_LOG:-warn}" \
  "$BIN" > "$WORK/service.log" 2>&1 &
SERVICE_PID=$!
for _ in $(seq 1 100); do curl -fsS -o /dev/null "$MC_BASE_URL/health" 2>/dev/null && break; sleep 0.2; done
curl -fsS -o /dev/null "$MC_BASE_URL/health" || { cat "$WORK/service.log"; exit 1; }

step "bootstrap the run's platform admin (ADMIN_TOKEN creates the first one only)"
export MC_ADMIN_EMAIL="ops@contract-run.example"
export MC_ADMIN_PASSWORD="contract admin password $$"
admin=$(curl -fsS -X POST "$MC_BASE_URL/api/v1/admin/bootstrap" -H 'content-type: application/json' \
  -H "Authorization: Bearer $MC_ADMIN_TOKEN" \
  -d "{\"email\":\"$MC_ADMIN_EMAIL\",\"password\":\"$MC_ADMIN_PASSWORD\"}")
export MC_ADMIN_TOTP_SECRET=$(printf '%s' "$admin" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["totp_secret"])')
# A second admin, made with the CLI, whose session the fuzzed adminLogout ends.
export MC_ADMIN2_EMAIL="ops2@contract-run.example"
MC_ADMIN2_TOTP_SECRET=$(DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" "$BIN" admin create \
  --email "$MC_ADMIN2_EMAIL" --password "$MC_ADMIN_PASSWORD" | sed -n 's/^TOTP secret (shown once): //p')
export MC_ADMIN2_TOTP_SECRET

step "the served document is the committed one"
curl -fsS "$MC_BASE_URL/openapi.json" | cmp -s - "$SPEC" || {
  echo "GET /openapi.json differs from openapi/openapi.json"; exit 1; }
echo "identical"

step "generated Python client drives the README walkthrough"
CONTRACT_VENV="$VENV" "$VENV/bin/python" tests/contract/drive_client.py --base-url "$MC_BASE_URL" --spec "$SPEC"

step "schemathesis (every operation, --checks all)"
# A fresh tenant for the run, with limits wide enough that the run tests the API rather than
# its rate limits (429s stay documented and checked, but rare).
export MC_TENANT="contract-$$"
export MC_EMAIL="owner@$MC_TENANT.example"
export MC_PASSWORD="contract run password $$"
signup=$(curl -fsS -X POST "$MC_BASE_URL/api/v1/signup" -H 'content-type: application/json' \
  -d "{\"organisation_name\":\"Contract run\",\"slug\":\"$MC_TENANT\",\"full_name\":\"Contract Run\",\"email\":\"$MC_EMAIL\",\"password\":\"$MC_PASSWORD\"}")
export MC_API_KEY=$(printf '%s' "$signup" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["api_keys"][0]["secret"])')
psql -h 127.0.0.1 -U postgres -d "$DB" -qc \
  "UPDATE platform.tiers SET burst_per_second = 10000, burst_size = 10000, monthly_simulations = 1000000, max_api_keys = NULL WHERE name = 'trial'" >/dev/null
sleep 0.5  # the tier change reaches the service through NOTIFY
export SCHEMATHESIS_HOOKS=hooks
export PYTHONPATH="$ROOT/tests/contract/schemathesis"
REPORT="${CONTRACT_REPORT:-$WORK/schemathesis}"
mkdir -p "$REPORT"
timeout --kill-after=30 "${CONTRACT_MAX_SECONDS:-900}" \
  "$VENV/bin/schemathesis" --config-file tests/contract/schemathesis/schemathesis.toml \
  run "$MC_BASE_URL/openapi.json" --url "$MC_BASE_URL" \
  --checks all --mode all --phases examples,coverage,fuzzing,stateful \
  --max-examples "${CONTRACT_MAX_EXAMPLES:-25}" --seed "${CONTRACT_SEED:-20261202}" \
  --workers 1 --generation-database none --no-color \
  --report junit --report-dir "$REPORT"
echo "contract suite: all checks passed"
