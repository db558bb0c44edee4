#!/usr/bin/env bash
# Throw-away OpenLDAP directory for postroom's integration tests: a private slapd
# (OpenLDAP 2.5, Debian 12) with its own cn=config, one mdb database and the ppolicy
# overlay, on loopback ports, everything in one directory. Must be run as root.
#
#   ldapstack.sh install              apt-get slapd, ldap-utils, dovecot-ldap (only what is
#                                     missing; the system slapd is never configured/started)
#   ldapstack.sh start DIR            make the directory (first time), start slapd, write
#                                     DIR/env, wait until it answers
#   ldapstack.sh stop DIR             stop slapd (the data stays)
#   ldapstack.sh status DIR           exit 0 when it answers
#   ldapstack.sh stop-slapd|start-slapd|restart-slapd DIR
#                                     for fault tests: same data, same ports
#   ldapstack.sh logs DIR             last lines of DIR/slapd.log
#
# The tree (base dc=nhs,dc=example, after the helpdesk's mail domain nhs.example):
#   ou=people    inetOrgPerson, RDN uid=NAME, `mail` = the account's email address
#                (Dovecot finds an account by mail=ADDRESS; tests use @test.example ones)
#   ou=groups    one groupOfNames per shared mailbox: RDN cn=MAILBOX-ADDRESS,
#                `member` = people who read it, `owner` = people who may change it
#                (owners are listed as members too; groupOfNames needs >= 1 member)
#   ou=services  cn=postroom (the manager: writes everything below the base, sets
#                passwords, pwdReset, pwdAccountLockedTime) and cn=dovecot (read-only,
#                Dovecot's search account); both under the lax cn=services policy
#   ou=policies  cn=default (every other entry): pwdMustChange, pwdAllowUserChange,
#                pwdLockout after pwdMaxFailure 5 failed binds, pwdLockoutDuration 0
#                (locked until unlocked), pwdInHistory 3, no quality checks
# The database's rootdn cn=admin,dc=nhs,dc=example has no password: root reaches it
# over DIR/run/ldapi with SASL EXTERNAL (LDAPSTACK_LDAPI_URL, `ldapmodify -Y EXTERNAL`),
# for tests that must get past ACLs and ppolicy. Root there also manages cn=config.
#
# DIR/env exports LDAPSTACK_URL (ldap://127.0.0.1:PORT), LDAPSTACK_LDAPS_URL
# (ldaps://127.0.0.1:PORT+1, certificate for 127.0.0.1/localhost signed by
# LDAPSTACK_CA), LDAPSTACK_LDAPI_URL, LDAPSTACK_BASE, LDAPSTACK_PEOPLE, LDAPSTACK_GROUPS,
# LDAPSTACK_POLICY (the default policy's DN), LDAPSTACK_BIND_DN +
# LDAPSTACK_BIND_PASSWORD_FILE (the manager), LDAPSTACK_READER_DN +
# LDAPSTACK_READER_PASSWORD_FILE (Dovecot's), LDAPSTACK_PORT, LDAPSTACK_LDAPS_PORT,
# LDAPSTACK_PID, LDAPSTACK_DIR, LDAPSTACK_SCRIPT. Password files are 0600 root.
# LDAPSTACK_PORT=N pins the ports (N, N+1); otherwise the first free pair from 26389 (step 10).
#
# Hooking Dovecot to it: `MAILSTACK_LDAP_ENV=DIR/env mailstack.sh start MAILDIR` adds
# a passdb ldap (auth_bind) after the passwd-file one (see tests/mailstack/mailstack.sh).
#
# Facts that cost time (Debian 12, OpenLDAP 2.5.13), kept here so nobody pays twice:
# - The ppolicy schema is compiled into the ppolicy module since 2.5: loading
#   /etc/ldap/schema/ppolicy.ldif as well fails ("Duplicate attributeType"). The module
#   must be loaded before slapadd reads entries with pwd* attributes, so the data is
#   slapadd'ed with -F DIR/slapd.d (modules come from there).
# - pwdPolicy is an AUXILIARY class in 2.5: a policy entry needs a structural class
#   too (organizationalRole here).
# - slapadd bypasses the overlays: olcPPolicyHashCleartext does not hash what slapadd
#   loads, so the service accounts' passwords are hashed with slappasswd first.
# - slapd runs as openldap (-u/-g): DIR must be traversable (0755) and slapd.d, data,
#   run and the TLS key must belong to openldap. slapadd runs as root, so it is
#   followed by a chown -R; otherwise slapd dies at once ("could not open ... Permission
#   denied" in the log, nothing on the terminal).
# - With `-d LEVEL` slapd stays in the foreground and logs to stderr (there is no syslog
#   here): `start` backgrounds it under setsid with stderr in DIR/slapd.log. It still
#   writes olcPidFile.
# - Debian's slapd is linked with GnuTLS: olcTLSProtocolMin 3.3 did not stop a TLS 1.1
#   handshake (seen with `openssl s_client -tls1_1`); the GnuTLS priority string in
#   olcTLSCipherSuite (NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2) does ("TLS: can't
#   accept: ... unsupported version" in the log). Clients (ldapsearch) trust the
#   throw-away CA with LDAPTLS_CACERT=$LDAPSTACK_CA; the certificate names IP:127.0.0.1,
#   so ldaps://127.0.0.1 verifies. StartTLS on the plain port works too (ldapsearch -ZZ).
# - A bind to a locked account (pwdAccountLockedTime set) answers 49 invalidCredentials,
#   exactly as a wrong password does (olcPPolicyUseLockout FALSE): the lock shows only in
#   the entry. Unlocking = deleting pwdAccountLockedTime; ppolicy then drops
#   pwdFailureTime too, so the next wrong password does not lock again at once. Any
#   password change, the manager's included, also unlocks (ppolicy deletes
#   pwdAccountLockedTime and pwdFailureTime with it).
# - pwdMustChange does NOT make slapd set pwdReset when the manager sets a password
#   (not by ldapadd, ldappasswd nor a replace of userPassword; checked): the manager
#   must write `pwdReset: TRUE` itself, in the same modify as userPassword or after an
#   ldappasswd (a later password change without it deletes it again). The person can
#   still bind ("Password must be changed"; Dovecot's auth_bind succeeds, so IMAP LOGIN
#   works), but that LDAP connection may do nothing but change its own password
#   (50 insufficientAccess). A person's own change clears pwdReset; pwdInHistory 3
#   refuses the last three ("Password is in history of old passwords", 19).
# - The ACL gives the manager `=w` on userPassword: it can set passwords but not read
#   the hashes (a plain `write` would include read). A person needs `=wx`: without the
#   auth right a Password Modify that gives the old password (ldappasswd -a OLD) fails
#   with 53 "unwilling to verify old password".
# - Root on ldapi:// is mapped to the rootdn by olcAuthzRegexp, so the cn=config ACL
#   must name the rootdn, not the peercred DN (else "No such object" on cn=config).
# - Dovecot with slapd stopped: LOGIN of a directory user answers "[UNAVAILABLE]
#   Temporary authentication failure" after ~2-4 s, and LMTP defers (4xx) mail to
#   addresses that are not in the passwd-file; passwd-file users are not affected.
#   After start-slapd Dovecot reconnects by itself at the next lookup.
# - The distribution's postinst would configure a dc=nodomain database in
#   /etc/ldap/slapd.d and start it: `install` preseeds slapd/no_configuration and keeps
#   invoke-rc.d quiet with a temporary policy-rc.d, as mailstack.sh does.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
PACKAGES=(slapd ldap-utils dovecot-ldap)
SLAPD=/usr/sbin/slapd
BASE=dc=nhs,dc=example
ROOT_DN=cn=admin,$BASE
MANAGER_DN=cn=postroom,ou=services,$BASE
READER_DN=cn=dovecot,ou=services,$BASE
FIRST_PORT=26389

log() { echo "ldapstack: $*" >&2; }
die() {
    echo "ldapstack: ERROR: $*" >&2
    exit 1
}

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (slapd drops to the openldap user itself)"; }

# ---------------------------------------------------------------------------- install

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
            echo "$p"
        fi
    done
}

pidfile_alive() { [[ -s $1 ]] && kill -0 "$(head -n1 "$1" | tr -d ' ')" 2>/dev/null; }

system_slapd_running() { pidfile_alive /run/slapd/slapd.pid || pidfile_alive /var/run/slapd/slapd.pid; }

cmd_install() {
    need_root
    local missing
    mapfile -t missing < <(missing_packages)
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "packages already installed: ${PACKAGES[*]}"
        return 0
    fi
    log "installing: ${missing[*]}"
    local slapd_before=0
    if system_slapd_running; then slapd_before=1; fi
    # No dc=nodomain database of the distribution's: we only run private instances.
    debconf-set-selections <<'EOF'
slapd slapd/no_configuration boolean true
slapd slapd/dump_database select when needed
slapd slapd/move_old_database boolean true
EOF
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# temporary, from postroom ldapstack.sh install\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    local -a apt=(apt-get install -y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}")
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" || rc=$?
    if [[ $rc -ne 0 ]]; then
        log "apt-get install failed ($rc); running apt-get update and retrying"
        rc=0
        DEBIAN_FRONTEND=noninteractive apt-get update -q || true
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" || rc=$?
    fi
    if [[ $made_policy -eq 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
    [[ $rc -eq 0 ]] || die "apt-get install ${missing[*]} failed ($rc)"

    if [[ $slapd_before -eq 0 ]]; then
        if [[ -d /run/systemd/system ]]; then systemctl disable --now slapd.service >/dev/null 2>&1 || true; fi
        if system_slapd_running; then
            log "stopping the distribution's slapd that the package started"
            kill "$(head -n1 /run/slapd/slapd.pid 2>/dev/null || head -n1 /var/run/slapd/slapd.pid)" 2>/dev/null || true
        fi
    fi
    mapfile -t missing < <(missing_packages)
    [[ ${#missing[@]} -eq 0 ]] || die "still missing after install: ${missing[*]}"
    log "installed"
}

# ------------------------------------------------------------------------------ helpers

abs_dir() {
    [[ -n ${1:-} ]] || die "missing DIR argument"
    case $1 in
    /*) ;;
    *) die "DIR must be an absolute path: $1" ;;
    esac
    [[ $1 =~ ^[A-Za-z0-9_./+-]+$ ]] || die "DIR may only contain [A-Za-z0-9_./+-]: $1"
    echo "${1%/}"
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# ldapi:// URL of a socket path (the path %-encoded: '/' -> %2F, '+' -> %2B).
ldapi_url() {
    local p=${1//\//%2F}
    echo "ldapi://${p//+/%2B}"
}

load_env() {
    local dir=$1
    [[ -f $dir/env ]] || die "$dir/env not found: was \`ldapstack.sh start $dir\` run?"
    # shellcheck disable=SC1091
    source "$dir/env"
    PORT=$LDAPSTACK_PORT
    LDAPS_PORT=$LDAPSTACK_LDAPS_PORT
}

show_logs() {
    local f=$1/slapd.log
    if [[ -s $f ]]; then
        echo "----- last lines of $f -----" >&2
        tail -n 40 "$f" >&2
    fi
}

fail_with_logs() {
    local dir=$1
    shift
    echo "ldapstack: ERROR: $*" >&2
    show_logs "$dir"
    exit 1
}

choose_ports() {
    local p
    if [[ -n ${LDAPSTACK_PORT:-} ]]; then
        p=$LDAPSTACK_PORT
        if port_open "$p" || port_open $((p + 1)); then die "port $p or $((p + 1)) (from LDAPSTACK_PORT) is in use"; fi
    else
        for ((p = FIRST_PORT; p < FIRST_PORT + 10 * 100; p += 10)); do
            if ! port_open "$p" && ! port_open $((p + 1)); then break; fi
        done
        ((p < FIRST_PORT + 10 * 100)) || die "no free pair of ports from $FIRST_PORT upwards"
    fi
    PORT=$p
    LDAPS_PORT=$((p + 1))
}

render() { # template output
    sed -e "s|@DIR@|$DIR|g" \
        -e "s|@BASE@|$BASE|g" \
        -e "s|@DC@|$(echo "$BASE" | sed -e 's/^dc=//' -e 's/,.*//')|g" \
        -e "s|@ROOT_DN@|$ROOT_DN|g" \
        -e "s|@MANAGER_DN@|$MANAGER_DN|g" \
        -e "s|@READER_DN@|$READER_DN|g" \
        -e "s|@MANAGER_PW_HASH@|$(slappasswd -h '{SSHA}' -T "$DIR/manager.password")|g" \
        -e "s|@READER_PW_HASH@|$(slappasswd -h '{SSHA}' -T "$DIR/reader.password")|g" \
        "$1" >"$2"
    if grep -q '@[A-Z_][A-Z_]*@' "$2"; then die "unrendered placeholder in $2"; fi
}

# A throw-away CA and a server certificate for localhost / 127.0.0.1 (EC P-256:
# milliseconds), the way mailstack.sh makes Dovecot's. Clients trust $LDAPSTACK_CA.
make_tls() {
    local t=$DIR/tls
    [[ -s $t/server.pem && -s $t/server.key && -s $t/ca.pem ]] && return 0
    mkdir -p "$t"
    chmod 0755 "$t"
    cat >"$t/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = postroom ldapstack test CA
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, DNS:ldapstack.test.example, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    (
        cd "$t"
        openssl req -x509 -new -config openssl.cnf -extensions ca_ext -days 3650 \
            -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout ca.key -out ca.pem
        openssl req -new -config openssl.cnf -subj /CN=localhost \
            -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
            -keyout server.key -out server.csr
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "0x$RANDOM$RANDOM" \
            -days 3650 -extfile openssl.cnf -extensions server_ext -out server.pem
        chmod 0600 ca.key server.key
        chmod 0644 ca.pem server.pem
        chown openldap:openldap server.key
    ) >/dev/null 2>"$t/openssl.err" || {
        cat "$t/openssl.err" >&2
        die "openssl failed"
    }
}

new_password_file() { # path
    [[ -s $1 ]] && return 0
    (
        umask 077
        openssl rand -hex 16 | tr -d '\n' >"$1"
    )
}

slapd_pid() {
    local f=$DIR/run/slapd.pid
    if pidfile_alive "$f"; then head -n1 "$f" | tr -d ' '; fi
}

# True when slapd answers a search of the root DSE on plain LDAP.
answers() { LDAPTLS_REQCERT=never timeout 5 ldapsearch -x -H "ldap://127.0.0.1:$PORT" -b '' -s base -LLL namingContexts >/dev/null 2>&1; }

wait_pid_gone() { # pid
    local pid=$1 i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "slapd (pid $pid) still running after 10 s; killing"
    kill -9 "$pid" 2>/dev/null || true
}

# First-time setup of DIR: cn=config and the base entries, loaded offline.
provision() {
    mkdir -p "$DIR/slapd.d" "$DIR/data" "$DIR/run"
    new_password_file "$DIR/manager.password"
    new_password_file "$DIR/reader.password"
    chmod 0600 "$DIR/manager.password" "$DIR/reader.password"
    make_tls
    render "$HERE/slapd-config.ldif.in" "$DIR/slapd-config.ldif"
    render "$HERE/base.ldif.in" "$DIR/base.ldif"
    chmod 0600 "$DIR/base.ldif"
    slapadd -n0 -F "$DIR/slapd.d" -l "$DIR/slapd-config.ldif" >"$DIR/slapadd.log" 2>&1 ||
        fail_with_logs "$DIR" "slapadd -n0 (cn=config) failed: $(cat "$DIR/slapadd.log")"
    slapadd -n1 -F "$DIR/slapd.d" -l "$DIR/base.ldif" >>"$DIR/slapadd.log" 2>&1 ||
        fail_with_logs "$DIR" "slapadd -n1 (base entries) failed: $(cat "$DIR/slapadd.log")"
    chown -R openldap:openldap "$DIR/slapd.d" "$DIR/data" "$DIR/run"
    chmod 0750 "$DIR/slapd.d" "$DIR/data"
    chmod 0755 "$DIR/run"
}

start_slapd() {
    if [[ -n $(slapd_pid) ]]; then
        log "slapd already running in $DIR"
        return 0
    fi
    if port_open "$PORT" || port_open "$LDAPS_PORT"; then
        die "port $PORT or $LDAPS_PORT is taken by something else"
    fi
    rm -f "$DIR/run/ldapi"
    local urls
    urls="ldap://127.0.0.1:$PORT/ ldaps://127.0.0.1:$LDAPS_PORT/ $(ldapi_url "$DIR/run/ldapi")"
    # -d 256 (stats): foreground, log on stderr; setsid: survives this script.
    setsid "$SLAPD" -d 256 -u openldap -g openldap -F "$DIR/slapd.d" -h "$urls" \
        </dev/null >>"$DIR/slapd.log" 2>&1 &
    local launched=$! i
    for ((i = 0; i < 100; i++)); do
        if answers; then
            [[ -n $(slapd_pid) ]] || fail_with_logs "$DIR" "slapd answers but wrote no pid file"
            return 0
        fi
        kill -0 "$launched" 2>/dev/null || fail_with_logs "$DIR" "slapd exited at start"
        sleep 0.1
    done
    fail_with_logs "$DIR" "slapd on 127.0.0.1:$PORT did not answer within 10 s"
}

stop_slapd() {
    local pid
    pid=$(slapd_pid)
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || true
    wait_pid_gone "$pid"
}

# DIR/env: `export NAME='value'` lines (no value holds a quote: DIR is checked by abs_dir),
# so tests/common/ldapstack.rs can read the file without a shell.
write_env() {
    q() { printf "export %s='%s'\\n" "$1" "$2"; }
    {
        q LDAPSTACK_DIR "$DIR"
        q LDAPSTACK_URL "ldap://127.0.0.1:$PORT"
        q LDAPSTACK_LDAPS_URL "ldaps://127.0.0.1:$LDAPS_PORT"
        q LDAPSTACK_LDAPI_URL "$(ldapi_url "$DIR/run/ldapi")"
        q LDAPSTACK_PORT "$PORT"
        q LDAPSTACK_LDAPS_PORT "$LDAPS_PORT"
        q LDAPSTACK_CA "$DIR/tls/ca.pem"
        q LDAPSTACK_BASE "$BASE"
        q LDAPSTACK_PEOPLE "ou=people,$BASE"
        q LDAPSTACK_GROUPS "ou=groups,$BASE"
        q LDAPSTACK_POLICY "cn=default,ou=policies,$BASE"
        q LDAPSTACK_BIND_DN "$MANAGER_DN"
        q LDAPSTACK_BIND_PASSWORD_FILE "$DIR/manager.password"
        q LDAPSTACK_READER_DN "$READER_DN"
        q LDAPSTACK_READER_PASSWORD_FILE "$DIR/reader.password"
        q LDAPSTACK_PID "$(slapd_pid)"
        q LDAPSTACK_SCRIPT "$SELF"
    } >"$DIR/env.new"
    chmod 0644 "$DIR/env.new"
    mv "$DIR/env.new" "$DIR/env"
}

# ------------------------------------------------------------------------------ commands

cmd_start() {
    need_root
    DIR=$(abs_dir "${1:-}")
    if [[ ! -x $SLAPD ]] || ! command -v slapadd >/dev/null || ! command -v ldapsearch >/dev/null; then
        die "slapd/ldap-utils not installed: run \`$SELF install\` first"
    fi
    mkdir -p "$DIR"
    chmod 0755 "$DIR"
    if [[ -f $DIR/env ]]; then
        load_env "$DIR"
        [[ -z $(slapd_pid) ]] || die "a directory already runs in $DIR (stop it first)"
    else
        choose_ports
    fi
    if [[ ! -d $DIR/slapd.d ]]; then provision; fi
    # flock'ed by tests/common/ldapstack.rs: shared by every test, exclusive by tests
    # that stop/restart slapd.
    touch "$DIR/use.lock"
    chmod 0644 "$DIR/use.lock"
    if command -v runuser >/dev/null && ! runuser -u openldap -- test -r "$DIR/slapd.d/cn=config.ldif"; then
        die "user openldap cannot read $DIR/slapd.d: make $DIR and its parents 0755 (or o+x)"
    fi
    start_slapd
    write_env
    log "up in $DIR: $BASE on ldap://127.0.0.1:$PORT and ldaps://127.0.0.1:$LDAPS_PORT (source $DIR/env)"
}

cmd_stop() {
    need_root
    DIR=$(abs_dir "${1:-}")
    if [[ ! -f $DIR/env ]]; then
        log "nothing to stop in $DIR"
        return 0
    fi
    load_env "$DIR"
    stop_slapd
    log "stopped ($DIR)"
}

cmd_status() {
    DIR=$(abs_dir "${1:-}")
    load_env "$DIR"
    if answers; then
        echo "slapd: up (pid $(slapd_pid)), $LDAPSTACK_URL, $LDAPSTACK_LDAPS_URL, base $LDAPSTACK_BASE"
    else
        echo "slapd: down"
        return 1
    fi
}

with_env() { # fn DIR
    need_root
    DIR=$(abs_dir "${2:-}")
    load_env "$DIR"
    "$1"
}

# start-slapd after stop-slapd: the same data and ports; the env gets the new pid.
start_and_env() {
    start_slapd
    write_env
}

usage() {
    sed -n '2,15p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cmd=${1:-}
shift || true
case $cmd in
install) cmd_install "$@" ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
start-slapd) with_env start_and_env "$@" ;;
stop-slapd) with_env stop_slapd "$@" ;;
restart-slapd)
    with_env stop_slapd "$@"
    start_and_env
    ;;
logs)
    DIR=$(abs_dir "${1:-}")
    show_logs "$DIR"
    ;;
*) usage ;;
esac
