#!/usr/bin/env bash
# Installs the pinned contract-testing tools into .tools/ (git-ignored): a Python venv with
# openapi-python-client and schemathesis (every transitive version pinned by
# tests/contract/requirements.lock.txt), and openapi-typescript + typescript from
# tests/contract/package-lock.json. Idempotent: a second run only checks the versions.
# Only PyPI and the npm registry are used.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${CONTRACT_TOOLS:-$PWD/.tools}"
VENV="$TOOLS/venv"
NODE_DIR="$TOOLS/node"
OPENAPI_PYTHON_CLIENT_VERSION=0.29.1
SCHEMATHESIS_VERSION=4.32.5
OPENAPI_TYPESCRIPT_VERSION=7.13.0
TYPESCRIPT_VERSION=5.9.3   # openapi-typescript 7.13 needs typescript ^5

if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV" 2>/dev/null || {
    echo "contract-tools: installing python3-venv"
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq python3-venv >/dev/null; else sudo apt-get install -y -qq python3-venv >/dev/null; fi
    python3 -m venv "$VENV"
  }
fi
if ! "$VENV/bin/python" - "$OPENAPI_PYTHON_CLIENT_VERSION" "$SCHEMATHESIS_VERSION" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    ok = version("openapi-python-client") == sys.argv[1] and version("schemathesis") == sys.argv[2]
except PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PY
then
  echo "contract-tools: installing openapi-python-client $OPENAPI_PYTHON_CLIENT_VERSION, schemathesis $SCHEMATHESIS_VERSION"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c tests/contract/requirements.lock.txt \
    "openapi-python-client==$OPENAPI_PYTHON_CLIENT_VERSION" "schemathesis==$SCHEMATHESIS_VERSION"
fi

if ! command -v npm >/dev/null 2>&1; then
  echo "contract-tools: installing nodejs and npm"
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq nodejs npm >/dev/null; else sudo apt-get install -y -qq nodejs npm >/dev/null; fi
fi
mkdir -p "$NODE_DIR"
cat > "$NODE_DIR/package.json" <<JSON
{
  "name": "montecarlo-contract-tools",
  "private": true,
  "devDependencies": {
    "openapi-typescript": "$OPENAPI_TYPESCRIPT_VERSION",
    "typescript": "$TYPESCRIPT_VERSION"
  }
}
JSON
have() {
  node -e '
    const [d, a, b] = process.argv.slice(1);
    const v = p => { try { return require(d + "/node_modules/" + p + "/package.json").version; } catch { return ""; } };
    process.exit(v("openapi-typescript") === a && v("typescript") === b ? 0 : 1);
  ' "$NODE_DIR" "$OPENAPI_TYPESCRIPT_VERSION" "$TYPESCRIPT_VERSION"
}
if ! have; then
  echo "contract-tools: installing openapi-typescript $OPENAPI_TYPESCRIPT_VERSION, typescript $TYPESCRIPT_VERSION"
  cp tests/contract/package-lock.json "$NODE_DIR/package-lock.json"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi
echo "contract-tools: ready in $TOOLS"
