#!/usr/bin/env bash
# Throw-away PostgreSQL cluster for postroom's tests: initdb + pg_ctl as the `postgres`
# user in one directory, listening on a free loopback port. Debian 12 (PostgreSQL 15
# server binaries in /usr/lib/postgresql/15/bin; no system cluster runs). Run as root.
#
#   pgstack.sh install       apt-get postgresql-15 when the server binaries are missing
#                            (without the Debian default cluster)
#   pgstack.sh start DIR     initdb DIR/data when missing, start, write DIR/env, wait
#                            until it answers. A second `start` after `stop` reuses the
#                            data and the port (the database-outage test does that).
#   pgstack.sh stop DIR      stop (fast shutdown: open sessions are cut), keep the data
#   pgstack.sh status DIR    exit 0 when it answers
#   pgstack.sh destroy DIR   stop and delete DIR
#
# DIR/env exports POSTROOM_TEST_PG_URL (the server's `postgres` database, as the
# `postgres` superuser, no password: tests create a database per test from there),
# POSTROOM_TEST_POSTGRES_URL (the same, under the name tests/web_postgres.rs reads) and
# PGSTACK_DIR. PGSTACK_PORT=N pins the port; otherwise the first free one from 25432.
# PGSTACK_SHARED_BUFFERS=SIZE sets shared_buffers when the cluster is made (default 128MB;
# scripts/bench gives its cluster a quarter of the machine's memory, as for a real server).
#
# Facts that cost time:
# - initdb and postgres refuse to run as root: everything runs through `runuser -u
#   postgres`, and DIR must belong to postgres (mktemp makes it root's and 0700).
# - Only loopback TCP and a socket inside DIR: the server never touches /var/run/postgresql
#   (which may not exist without the Debian cluster tooling) or another cluster's port.
# - `pg_ctl start -w` returns non-zero when the port is taken; the log says "could not
#   bind": the next port is tried.
# - A stopped cluster keeps its port (the outage test starts it again and the daemon under
#   test still has the old URL), so a port is reserved for the directory's lifetime with an
#   atomic mkdir of /tmp/pgstack-port-N: a second cluster started meanwhile (tests run in
#   parallel) cannot take it while it is free.
# - The Debian package creates and starts a cluster `15/main` on 5432 from its postinst:
#   `create_main_cluster = false` in /etc/postgresql-common/createcluster.conf, written
#   before the install, prevents that (we never use it).
set -euo pipefail

BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
FIRST_PORT=25432

log() { echo "pgstack: $*" >&2; }
die() {
    echo "pgstack: ERROR: $*" >&2
    exit 1
}

as_pg() { runuser -u postgres -- "$@"; }

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

reserve_port() {
    mkdir "/tmp/pgstack-port-$1" 2>/dev/null
}

write_env() {
    local dir=$1 port=$2
    local url="postgres://postgres@127.0.0.1:$port/postgres"
    cat >"$dir/env" <<EOF
export POSTROOM_TEST_PG_URL=$url
export POSTROOM_TEST_POSTGRES_URL=$url
export PGSTACK_DIR=$dir
EOF
    chmod 0644 "$dir/env"
}

start_on() {
    local dir=$1 port=$2
    as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1" start >/dev/null
}

cmd_start() {
    local dir=$1
    [[ -x $BIN/initdb ]] || die "no PostgreSQL server binaries in $BIN (apt-get install postgresql-15)"
    id postgres >/dev/null 2>&1 || die "no postgres user (apt-get install postgresql-15)"
    mkdir -p "$dir"
    chown postgres: "$dir"
    chmod 0755 "$dir"
    if [[ ! -d $dir/data ]]; then
        as_pg "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
            >"$dir/initdb.log" 2>&1 || {
            cat "$dir/initdb.log" >&2
            die "initdb failed"
        }
        # Several postroom instances and parallel tests, each with a pool of connections.
        cat >>"$dir/data/postgresql.conf" <<EOF
max_connections = 300
shared_buffers = ${PGSTACK_SHARED_BUFFERS:-128MB}
EOF
    fi
    if [[ -f $dir/port ]]; then
        local port
        port=$(cat "$dir/port")
        start_on "$dir" "$port" || {
            tail -n 20 "$dir/postgres.log" >&2
            die "could not start again on port $port"
        }
    else
        local port=${PGSTACK_PORT:-$FIRST_PORT} tries=0
        while :; do
            if port_free "$port" && reserve_port "$port"; then
                if start_on "$dir" "$port"; then
                    break
                fi
                rmdir "/tmp/pgstack-port-$port" 2>/dev/null || true
            fi
            [[ -n ${PGSTACK_PORT:-} ]] && die "port $port is taken"
            tries=$((tries + 1))
            ((tries < 50)) || die "no free port from ${FIRST_PORT}"
            port=$((port + 1))
        done
        echo "$port" >"$dir/port"
    fi
    write_env "$dir" "$(cat "$dir/port")"
    cmd_status "$dir" || die "started, but does not answer (log: $dir/postgres.log)"
    log "PostgreSQL on 127.0.0.1:$(cat "$dir/port") ($dir)"
}

cmd_install() {
    if [[ -x $BIN/initdb && -x $BIN/pg_ctl ]]; then
        log "PostgreSQL server binaries present ($BIN)"
        return 0
    fi
    mkdir -p /etc/postgresql-common
    if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
        echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.conf
    fi
    log "installing postgresql-15"
    local -a apt=(apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300 postgresql-15)
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" || {
        DEBIAN_FRONTEND=noninteractive apt-get update -q || true
        DEBIAN_FRONTEND=noninteractive "${apt[@]}"
    } || die "apt-get install postgresql-15 failed"
    [[ -x $BIN/initdb ]] || die "still no $BIN/initdb after the install"
}

cmd_stop() {
    local dir=$1
    [[ -d $dir/data ]] || return 0
    as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}

cmd_status() {
    local dir=$1
    [[ -f $dir/port ]] || return 1
    "$BIN/pg_isready" -q -h 127.0.0.1 -p "$(cat "$dir/port")" -t 10
}

cmd_destroy() {
    local dir=$1
    cmd_stop "$dir"
    if [[ -f $dir/port ]]; then
        rmdir "/tmp/pgstack-port-$(cat "$dir/port")" 2>/dev/null || true
    fi
    rm -rf "$dir"
}

[[ $(id -u) -eq 0 ]] || die "run as root (the server runs as the postgres user)"
if [[ ${1:-} == install ]]; then
    cmd_install
    exit 0
fi
[[ $# -eq 2 ]] || die "usage: $0 install | start|stop|status|destroy DIR"
case $1 in
start) cmd_start "$2" ;;
stop) cmd_stop "$2" ;;
status) cmd_status "$2" ;;
destroy) cmd_destroy "$2" ;;
*) die "unknown command $1" ;;
esac
