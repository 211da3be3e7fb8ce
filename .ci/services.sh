#!/usr/bin/env bash
# Throwaway services for the cluster tests: a PostgreSQL 15 cluster and a NATS server with JetStream, each on a
# free port of 127.0.0.1 with its data in one temporary directory.
#
#   eval "$(.ci/services.sh start)"    # starts both, prints the exports the tests read
#   deno test -A tests/store/          # the PostgreSQL and NATS tests run now instead of being skipped
#   .ci/services.sh stop               # stops both and removes the directory ($AUTHCHAT_TEST_SERVICES_DIR)
#
# Exports: AUTHCHAT_TEST_POSTGRES (URL of a role that may CREATE DATABASE), AUTHCHAT_TEST_NATS (nats://…),
# AUTHCHAT_TEST_NATS_MONITOR (http://… of its monitoring endpoint, which `deno task bench --cluster` reads
# message counts from), AUTHCHAT_TEST_HAPROXY (the haproxy binary, when installed) and
# AUTHCHAT_TEST_SERVICES_DIR (for stop).
# Needs Debian's postgresql (15) and nats-server; haproxy for the load-balancer tests. PostgreSQL refuses to run
# as root: run by root, the cluster runs as the postgres user; run by anyone else, as that user.
set -euo pipefail

PG_BIN=${AUTHCHAT_PG_BIN:-/usr/lib/postgresql/15/bin}

say() { echo "services: $*" >&2; }

# A port nothing listens on now (another process may take it before we do: the callers retry).
free_port() {
  local port
  for _ in $(seq 1 50); do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# Run a command as the user the cluster belongs to, in the services directory (the caller's working
# directory may be closed to that user).
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    (cd "$dir" && runuser -u postgres -- "$@")
  else
    (cd "$dir" && "$@")
  fi
}

wait_for_port() {
  local port=$1 pid=$2
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.1
  done
  return 1
}

start_postgres() {
  [ -x "$PG_BIN/initdb" ] || { say "no $PG_BIN/initdb: install Debian's postgresql (15)"; return 1; }
  mkdir -p "$dir/pg"
  local superpw rolepw
  superpw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  rolepw=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  printf '%s\n' "$superpw" >"$dir/pg/superuser-password"
  chmod 600 "$dir/pg/superuser-password"
  if [ "$(id -u)" -eq 0 ]; then chown -R postgres "$dir/pg"; fi
  # Password (SCRAM) logins over TCP, which only listens on 127.0.0.1; trust only on the cluster's own
  # socket, in a directory of this cluster's user. No fsync: a throwaway cluster, and the tests never crash it.
  as_pg "$PG_BIN/initdb" -D "$dir/pg/data" -U postgres -E UTF8 --no-locale --no-sync \
    --auth-local=trust --auth-host=scram-sha-256 --pwfile="$dir/pg/superuser-password" >"$dir/pg/initdb.log" 2>&1 ||
    { say "initdb failed:"; cat "$dir/pg/initdb.log" >&2; return 1; }
  local port
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    if as_pg "$PG_BIN/pg_ctl" -D "$dir/pg/data" -l "$dir/pg/server.log" -w -t 60 -o \
      "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir/pg -c fsync=off -c max_connections=300" \
      start >/dev/null 2>&1; then
      as_pg "$PG_BIN/psql" -h "$dir/pg" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
        -c "CREATE ROLE authchat LOGIN CREATEDB PASSWORD '$rolepw'" >&2
      echo "$port" >"$dir/pg/port"
      echo "export AUTHCHAT_TEST_POSTGRES=postgres://authchat:$rolepw@127.0.0.1:$port/postgres" >>"$dir/env"
      say "PostgreSQL 15 on 127.0.0.1:$port (data in $dir/pg/data)"
      return 0
    fi
  done
  say "PostgreSQL did not start:"
  tail -n 20 "$dir/pg/server.log" >&2 || true
  return 1
}

start_nats() {
  local nats
  nats=$(command -v nats-server || echo /usr/sbin/nats-server)
  [ -x "$nats" ] || { say "no nats-server: install Debian's nats-server"; return 1; }
  mkdir -p "$dir/nats"
  local port monitor pid
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    monitor=$(free_port)
    [ "$monitor" != "$port" ] || continue
    # setsid: the server outlives this script (and a Ctrl-C meant for the shell that ran it). -m: the
    # monitoring endpoint (/varz counts messages), on 127.0.0.1 like the server.
    setsid "$nats" -a 127.0.0.1 -p "$port" -m "$monitor" -js -sd "$dir/nats/jetstream" \
      >"$dir/nats/server.log" 2>&1 </dev/null &
    pid=$!
    if wait_for_port "$port" "$pid" && wait_for_port "$monitor" "$pid"; then
      echo "$pid" >"$dir/nats/pid"
      echo "export AUTHCHAT_TEST_NATS=nats://127.0.0.1:$port" >>"$dir/env"
      echo "export AUTHCHAT_TEST_NATS_MONITOR=http://127.0.0.1:$monitor" >>"$dir/env"
      say "NATS with JetStream on 127.0.0.1:$port, monitoring on :$monitor (pid $pid)"
      return 0
    fi
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  say "nats-server did not start:"
  tail -n 20 "$dir/nats/server.log" >&2 || true
  return 1
}

stop_all() {
  local target=$1
  [ -n "$target" ] && [ -d "$target" ] || return 0
  dir=$target
  if [ -f "$target/pg/port" ] || [ -f "$target/pg/data/postmaster.pid" ]; then
    as_pg "$PG_BIN/pg_ctl" -D "$target/pg/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  if [ -f "$target/nats/pid" ]; then
    local pid
    pid=$(cat "$target/nats/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -rf "$target"
}

case "${1:-}" in
  start)
    dir=$(mktemp -d "${TMPDIR:-/tmp}/authchat-services.XXXXXX")
    # The cluster's user must reach its directory inside this one.
    chmod 755 "$dir"
    : >"$dir/env"
    chmod 600 "$dir/env"
    if ! start_postgres || ! start_nats; then
      stop_all "$dir"
      exit 1
    fi
    haproxy=$(command -v haproxy || true)
    if [ -z "$haproxy" ] && [ -x /usr/sbin/haproxy ]; then haproxy=/usr/sbin/haproxy; fi
    if [ -n "$haproxy" ]; then
      echo "export AUTHCHAT_TEST_HAPROXY=$haproxy" >>"$dir/env"
    else
      say "no haproxy: the load-balancer tests will say so (install Debian's haproxy)"
    fi
    echo "export AUTHCHAT_TEST_SERVICES_DIR=$dir" >>"$dir/env"
    cat "$dir/env"
    ;;
  stop)
    stop_all "${2:-${AUTHCHAT_TEST_SERVICES_DIR:-}}"
    ;;
  *)
    echo "usage: eval \"\$($0 start)\"; ...; $0 stop [DIR]" >&2
    exit 2
    ;;
esac
