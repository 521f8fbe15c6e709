#!/usr/bin/env bash
# A private PgBouncer on loopback in transaction pooling mode, in front of a local PostgreSQL
# (trust authentication: development, tests and benchmarks only).
#
#   bash scripts/pgbouncer.sh install                 # apt-get install pgbouncer when missing
#   bash scripts/pgbouncer.sh start [PORT] [POOL]     # default 6432, 3 server connections
#   bash scripts/pgbouncer.sh stop [PORT]
#
# Environment: PG_HOST (127.0.0.1), PG_PORT (5432) of the PostgreSQL behind it; PGB_USERS
# (postgres montecarlo_app): the roles it lets through (trust still needs them in its auth
# file); PGB_DIR (/tmp/mc-pgbouncer-PORT): its private config, log and pid.
#
# Every database name is forwarded (`* =`); POOL is the server connections per database and
# role (`default_pool_size`), so the service's request role gets at most POOL of them however
# many client connections it opens. Debian's PgBouncer 1.18 refuses to run as root: as root it
# is started as the `postgres` user. Its log: $PGB_DIR/pgbouncer.log.
set -euo pipefail

cmd="${1:-start}"
port="${2:-6432}"
pool="${3:-3}"
dir="${PGB_DIR:-/tmp/mc-pgbouncer-$port}"

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

install() {
  command -v pgbouncer >/dev/null 2>&1 || [ -x /usr/sbin/pgbouncer ] && return 0
  echo "pgbouncer: installing the Debian package"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq pgbouncer >/dev/null
  # The package's own service is not ours: leave it stopped where a service manager started it.
  as_root systemctl disable --now pgbouncer >/dev/null 2>&1 || true
}

bin() { command -v pgbouncer 2>/dev/null || echo /usr/sbin/pgbouncer; }

stop() {
  if [ -f "$dir/pgbouncer.pid" ]; then
    local pid
    pid=$(cat "$dir/pgbouncer.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -rf "$dir"
}

start() {
  install
  stop
  mkdir -p "$dir"
  : >"$dir/userlist.txt"
  for u in ${PGB_USERS:-postgres montecarlo_app}; do echo "\"$u\" \"\"" >>"$dir/userlist.txt"; done
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=${PG_HOST:-127.0.0.1} port=${PG_PORT:-5432}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
admin_users = postgres
pool_mode = transaction
default_pool_size = $pool
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 2000
server_reset_query =
; sqlx sends extra_float_digits at start-up; PgBouncer 1.18 does not track it.
ignore_startup_parameters = extra_float_digits
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
log_connections = 0
log_disconnections = 0
EOF
  if [ "$(id -u)" -eq 0 ]; then
    chown -R postgres "$dir"
    su postgres -s /bin/sh -c "$(bin) -d -q $dir/pgbouncer.ini"
  else
    "$(bin)" -d -q "$dir/pgbouncer.ini"
  fi
  for _ in $(seq 1 50); do
    if psql -h 127.0.0.1 -p "$port" -U postgres -d pgbouncer -Atc 'SHOW VERSION' >/dev/null 2>&1; then
      echo "pgbouncer: 127.0.0.1:$port, transaction pooling, $pool server connections per database and role (config $dir)"
      return 0
    fi
    sleep 0.1
  done
  echo "pgbouncer: did not start; log:" >&2
  cat "$dir/pgbouncer.log" >&2 2>/dev/null || true
  return 1
}

case "$cmd" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install | start [PORT] [POOL] | stop [PORT]" >&2; exit 2 ;;
esac
