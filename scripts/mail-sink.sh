#!/usr/bin/env bash
# Installs the SMTP sink the mail tests use (aiosmtpd from PyPI, pinned) into the .tools venv
# (the one scripts/contract-tools.sh and scripts/localstripe.sh use). The tests start their own
# sink (tests/mail/sink.py) on a free port when they need one. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS="${CONTRACT_TOOLS:-$PWD/.tools}"
VENV="$TOOLS/venv"
AIOSMTPD_VERSION=1.4.6

if [ ! -x "$VENV/bin/python" ]; then
  mkdir -p "$TOOLS"
  python3 -m venv "$VENV" 2>/dev/null || {
    echo "mail-sink: installing python3-venv"
    if [ "$(id -u)" -eq 0 ]; then apt-get install -y -qq python3-venv >/dev/null; else sudo apt-get install -y -qq python3-venv >/dev/null; fi
    python3 -m venv "$VENV"
  }
fi
if [ "$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("aiosmtpd"))' 2>/dev/null)" != "$AIOSMTPD_VERSION" ]; then
  echo "mail-sink: installing aiosmtpd $AIOSMTPD_VERSION into $VENV"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "aiosmtpd==$AIOSMTPD_VERSION"
fi
echo "mail-sink: aiosmtpd $AIOSMTPD_VERSION ready in $VENV"
