#!/usr/bin/env bash
# A throwaway PostgreSQL for the access-store tests, from Debian's `postgresql` package.
#
#   scripts/postgres.sh start   # initdb into a temp dir, listen on 127.0.0.1:<free port>
#   scripts/postgres.sh url     # print the connection URL (MESHGATE_TEST_POSTGRES_URL)
#   scripts/postgres.sh stop    # stop it and remove the temp dir
#
# State lives in $MESHGATE_POSTGRES_STATE (default target/postgres.state): the data dir and
# the port. The server listens on 127.0.0.1 only, its unix socket in the temp dir. As root
# (initdb refuses root) the binaries run as the package's `postgres` user.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${MESHGATE_POSTGRES_STATE:-$root/target/postgres.state}"

die() { echo "postgres.sh: $*" >&2; exit 1; }

bindir() {
  local initdb
  initdb="$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)"
  [[ -n "$initdb" ]] || die "PostgreSQL is not installed (apt-get install -y postgresql)"
  dirname "$initdb"
}

as_db_user() {
  if [[ "$(id -u)" -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

url() {
  [[ -f "$state" ]] || die "not started (no $state)"
  # shellcheck disable=SC1090
  source "$state"
  echo "postgresql://meshgate@127.0.0.1:${port}/meshgate?connect_timeout=3"
}

start() {
  if [[ -f "$state" ]]; then
    # shellcheck disable=SC1090
    source "$state"
    if as_db_user "$(bindir)/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
      return 0
    fi
    rm -f "$state"
  fi
  local bin dir port
  bin="$(bindir)"
  dir="$(mktemp -d /tmp/meshgate-postgres.XXXXXX)"
  if [[ "$(id -u)" -eq 0 ]]; then
    chown postgres: "$dir"
  fi
  port="$(free_port)"
  as_db_user "$bin/initdb" -D "$dir/data" -U meshgate --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  as_db_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >/dev/null \
    || { cat "$dir/server.log" >&2; die "the server did not start"; }
  as_db_user "$bin/createdb" -h 127.0.0.1 -p "$port" -U meshgate meshgate
  mkdir -p "$(dirname "$state")"
  printf 'dir=%q\nport=%q\n' "$dir" "$port" >"$state"
}

stop() {
  [[ -f "$state" ]] || return 0
  # shellcheck disable=SC1090
  source "$state"
  as_db_user "$(bindir)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  rm -f "$state"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) die "usage: scripts/postgres.sh start|stop|url" ;;
esac
