#!/usr/bin/env bash
# The browser tests: pytest + Playwright for Python driving Debian's Chromium against the real
# service (the debug build; see tests/browser/conftest.py). Run by scripts/test.sh after
# `cargo test` (which builds the binary); alone:
#   bash scripts/browser-tools.sh && cargo build && bash tests/browser/run.sh [pytest args]
# Screenshots: target/browser-artifacts/ (BROWSER_ARTIFACTS).
set -euo pipefail
cd "$(dirname "$0")/../.."
TOOLS="${CONTRACT_TOOLS:-$PWD/.tools}"
exec timeout --kill-after=30 "${BROWSER_MAX_SECONDS:-900}" \
  "$TOOLS/venv/bin/python" -m pytest -p no:cacheprovider -q tests/browser "$@"
