#!/usr/bin/env bash
# Starts localstripe (a stateful fake Stripe, PyPI) for the billing tests on 127.0.0.1:8420
# (LOCALSTRIPE_PORT), unless something already answers there. Installs it into the .tools venv
# (the one scripts/contract-tools.sh uses) when missing. Its log is .tools/localstripe.log.
# Idempotent; the tests use unique ids, so one localstripe serves every run.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${CONTRACT_TOOLS:-$PWD/.tools}"
VENV="$TOOLS/venv"
PORT="${LOCALSTRIPE_PORT:-8420}"
LOCALSTRIPE_VERSION=1.15.10

answers() { curl -s -o /dev/null -u sk_test_x: "http://127.0.0.1:$PORT/v1/customers?limit=1"; }

if answers; then
  echo "localstripe: already answering on 127.0.0.1:$PORT"
  exit 0
fi
if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$TOOLS"
  python3 -m venv "$VENV"
fi
if [ "$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("localstripe"))' 2>/dev/null)" != "$LOCALSTRIPE_VERSION" ]; then
  echo "localstripe: installing $LOCALSTRIPE_VERSION into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "localstripe==$LOCALSTRIPE_VERSION"
fi
# setsid: the server outlives this script (and the test run), like the database services.
setsid "$VENV/bin/localstripe" --port "$PORT" --from-scratch >"$TOOLS/localstripe.log" 2>&1 < /dev/null &
for _ in $(seq 1 100); do
  if answers; then
    echo "localstripe: started on 127.0.0.1:$PORT"
    exit 0
  fi
  sleep 0.1
done
echo "localstripe: did not answer on 127.0.0.1:$PORT within 10 s; see $TOOLS/localstripe.log" >&2
exit 1
