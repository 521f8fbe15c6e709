#!/usr/bin/env bash
# The test command: services up, old per-test databases dropped, then every test of the
# workspace (unit, integration over HTTP, engine, doctests), then the OpenAPI contract suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/services.sh
# localstripe (a fake Stripe) for the billing tests; installed into .tools/venv when missing.
bash scripts/localstripe.sh
# aiosmtpd (an SMTP sink) for the mail tests, which start their own sink on a free port;
# installed into .tools/venv when missing.
bash scripts/mail-sink.sh
# PgBouncer for tests/api/pgbouncer.rs (each test starts its own on a free port); apt only when
# missing. The test says SKIPPED when it cannot be installed.
bash scripts/pgbouncer.sh install || echo "test: PgBouncer could not be installed; its test will be skipped"
# Each integration test creates its own database `test_<uuid>`; drop those of earlier runs
# (left by killed runs), but not those a run going on beside this one is connected to.
psql -h 127.0.0.1 -U postgres -d postgres -Atc \
  "select 'DROP DATABASE IF EXISTS \"' || datname || '\" WITH (FORCE);' from pg_database d where (datname like 'test\_%' or datname like 'quota\_test\_%' or datname like 'contract\_%') and not exists (select 1 from pg_stat_activity a where a.datname = d.datname)" \
  | psql -q -h 127.0.0.1 -U postgres -d postgres >/dev/null 2>&1 || true
cargo test --workspace --locked "$@"
# The contract suite: generated Python and TypeScript clients and Schemathesis against the
# real service (see tests/contract/run.sh). Skip with SKIP_CONTRACT=1 while iterating.
if [ "${SKIP_CONTRACT:-0}" != 1 ]; then
  bash scripts/contract-tools.sh
  bash tests/contract/run.sh
fi
# The browser tests: Playwright for Python driving Debian's Chromium against the real service
# (tests/browser/); chromium and playwright are installed when missing. Skip with SKIP_BROWSER=1.
if [ "${SKIP_BROWSER:-0}" != 1 ]; then
  bash scripts/browser-tools.sh
  bash tests/browser/run.sh
fi
