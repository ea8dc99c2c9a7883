#!/usr/bin/env bash
# A throw-away PostgreSQL 15 server for the distributed-sweep tests and benchmark, started and stopped by them.
#   eng/postgres.sh install        installs Debian's postgresql, python3-optuna and python3-psycopg2 when missing
#   eng/postgres.sh start DIR      creates a cluster in DIR (as the postgres user when run as root), starts it on a
#                                  Unix socket in DIR and a free local port, and prints its Npgsql connection string
#   eng/postgres.sh stop DIR       stops it and removes DIR
# Nothing is left running: the cluster lives in DIR only, and "stop" is called by whoever called "start".
set -euo pipefail

command=${1:-}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)

as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$command" in
  install)
    if [ -n "$bin" ] && /usr/bin/python3 -c "import optuna, psycopg2" 2>/dev/null; then
      exit 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "postgres: PostgreSQL 15, python3-optuna or python3-psycopg2 is missing and apt-get is not available." >&2
      exit 1
    fi
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "postgres: installing Debian's postgresql, python3-optuna and python3-psycopg2" >&2
    # Another apt (the data or fixture step) may hold the lock for a moment.
    for attempt in 1 2 3 4 5 6; do
      if DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends postgresql python3-optuna python3-psycopg2 >/dev/null 2>&1; then
        exit 0
      fi
      [ "$attempt" -eq 1 ] && $sudo apt-get update -qq || sleep 10
    done
    echo "postgres: apt-get could not install postgresql python3-optuna python3-psycopg2." >&2
    exit 1
    ;;
  start)
    dir=${2:?"usage: eng/postgres.sh start DIR"}
    [ -n "$bin" ] || { echo "postgres: no PostgreSQL server in /usr/lib/postgresql; run eng/postgres.sh install" >&2; exit 1; }
    mkdir -p "$dir"
    [ "$(id -u)" -ne 0 ] || chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
    port=$(/usr/bin/python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    # Enough connections for many worker processes, each with a small pool.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=on" start >/dev/null
    echo "Host=127.0.0.1;Port=$port;Username=postgres;Database=postgres"
    ;;
  stop)
    dir=${2:?"usage: eng/postgres.sh stop DIR"}
    if [ -n "$bin" ] && [ -f "$dir/data/postmaster.pid" ]; then
      as_owner "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: eng/postgres.sh install | start DIR | stop DIR" >&2
    exit 2
    ;;
esac
