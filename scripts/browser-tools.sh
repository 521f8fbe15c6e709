#!/usr/bin/env bash
# Installs what the browser tests need when missing: Debian's Chromium (apt; Playwright's own
# browser download is not used) and, into the .tools venv shared with the other test tools,
# Playwright for Python and pytest (pinned). Idempotent: a second run only checks versions.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${CONTRACT_TOOLS:-$PWD/.tools}"
VENV="$TOOLS/venv"
PLAYWRIGHT_VERSION=1.65.0
PYTEST_VERSION=8.4.2

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v chromium >/dev/null 2>&1; then
  echo "browser-tools: installing Debian's chromium"
  as_root apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$TOOLS"
  python3 -m venv "$VENV" 2>/dev/null || {
    echo "browser-tools: installing python3-venv"
    as_root apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  }
fi
if ! "$VENV/bin/python" - "$PLAYWRIGHT_VERSION" "$PYTEST_VERSION" <<'PY'
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    ok = version("playwright") == sys.argv[1] and version("pytest") == sys.argv[2]
except PackageNotFoundError:
    ok = False
sys.exit(0 if ok else 1)
PY
then
  echo "browser-tools: installing playwright $PLAYWRIGHT_VERSION, pytest $PYTEST_VERSION into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "playwright==$PLAYWRIGHT_VERSION" "pytest==$PYTEST_VERSION"
fi
echo "browser-tools: $(chromium --version 2>/dev/null | head -1), playwright $PLAYWRIGHT_VERSION ready in $VENV"
