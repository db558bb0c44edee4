#!/usr/bin/env bash
# Throw-away Active Directory for postroom's integration tests: a Samba AD domain controller
# (Debian 12's samba 4.17, `samba-tool domain provision --targetdir`) serving LDAP only, on a
# loopback address of its own, everything in one directory. Must be run as root.
#
#   adstack.sh install        apt-get samba, samba-ad-provision, samba-ad-dc, ldap-utils
#                             (only what is missing; the system's Samba is never started)
#   adstack.sh start DIR      provision the domain (first time, ~4 s), start samba, write
#                             DIR/env, wait until LDAPS answers
#   adstack.sh stop DIR       stop samba (the data stays; the loopback address is removed)
#   adstack.sh status DIR     exit 0 when it answers
#   adstack.sh logs DIR       last lines of the DC's log
#
# The domain POSTROOM.TEST (base DC=postroom,DC=test):
#   OU=People   where postroom creates and finds accounts (by `mail`)
#   OU=Groups   one `group` per shared mailbox, CN=<mailbox address>
#   CN=postroom,OU=Services  the service account postroom binds as. It is NOT a domain
#               administrator: it has full control of OU=People and OU=Groups only, delegated
#               with `samba-tool dsacl set` (which includes the Reset Password right), as an
#               AD administrator would delegate it.
#
# DIR/env exports ADSTACK_URL (ldap://ADDR, plain: binds there are refused, see below),
# ADSTACK_LDAPS_URL (ldaps://ADDR, a certificate for ADDR signed by ADSTACK_CA), ADSTACK_ADDR,
# ADSTACK_BASE, ADSTACK_PEOPLE, ADSTACK_GROUPS, ADSTACK_BIND_DN +
# ADSTACK_BIND_PASSWORD_FILE (the service account), ADSTACK_ADMIN_DN +
# ADSTACK_ADMIN_PASSWORD_FILE (the domain's Administrator, for tests that look past the
# delegation), ADSTACK_PID, ADSTACK_DIR, ADSTACK_SCRIPT. Password files are 0600 root.
#
# Facts that cost time (Debian 12, Samba 4.17.12), kept here so nobody pays twice:
# - `samba` alone cannot provision: the schema files are in samba-ad-provision and the DC's
#   modules in samba-ad-dc ("File [...AD_DS_Attributes__Windows_Server_2012_R2.ldf] not
#   found").
# - Samba's LDAP server has no port setting: it always listens on 389, 636 and 3268/3269.
#   Each DC gets a loopback address of its own (127.1.0.N, added to `lo`) with `interfaces`
#   + `bind interfaces only`; an address not on an interface gives "no network interfaces
#   found" and nothing listens.
# - `server services = ldap` runs only the LDAP server (no SMB, no KDC, no DNS): enough for
#   postroom, and it starts in about a second with `-M single`.
# - With the default `ldap server require strong auth = yes`, a simple bind over plain LDAP
#   is refused (strongerAuthRequired, 8): no password can be sent, or set, in clear. Samba
#   4.17 with that setting turned off DOES accept a `unicodePwd` write over plain LDAP (newer
#   Samba and Windows refuse it with "must be over an encrypted connection"); postroom
#   therefore refuses plain LDAP in Active Directory mode itself, whatever the server allows.
# - A failed bind says why in its diagnostic, as Windows does: `data 52e` wrong password,
#   `data 773` right password but it must be changed (pwdLastSet 0), `data 533` disabled,
#   `data 775` locked out.
# - The default password policy wants 3 of 4 character classes: a hex password is refused.
# - Lockout: `--account-lockout-threshold=3` here (Samba's default, 0, never locks).
# - samba-tool works on the database offline (-H DIR/private/sam.ldb) before the DC starts.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
PACKAGES=(samba samba-ad-provision samba-ad-dc ldap-utils iproute2 openssl)
REALM=POSTROOM.TEST
DOMAIN=POSTROOM
BASE=DC=postroom,DC=test

log() { echo "adstack: $*" >&2; }
die() {
    echo "adstack: ERROR: $*" >&2
    exit 1
}
need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root"; }

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
            echo "$p"
        fi
    done
}

cmd_install() {
    need_root
    local missing
    mapfile -t missing < <(missing_packages)
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "packages already installed: ${PACKAGES[*]}"
        return 0
    fi
    log "installing: ${missing[*]}"
    # Keep the distribution's smbd/nmbd/samba-ad-dc services from starting.
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# temporary, from postroom adstack.sh install\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    local rc=0
    local -a apt=(apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=300
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}")
    DEBIAN_FRONTEND=noninteractive "${apt[@]}" >/dev/null || rc=$?
    if [[ $rc -ne 0 ]]; then
        log "apt-get install failed ($rc); running apt-get update and retrying"
        rc=0
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || true
        DEBIAN_FRONTEND=noninteractive "${apt[@]}" >/dev/null || rc=$?
    fi
    if [[ $made_policy -eq 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
    [[ $rc -eq 0 ]] || die "apt-get install ${missing[*]} failed ($rc)"
    mapfile -t missing < <(missing_packages)
    [[ ${#missing[@]} -eq 0 ]] || die "still missing after install: ${missing[*]}"
    log "installed"
}

abs_dir() {
    [[ -n ${1:-} ]] || die "missing DIR argument"
    case $1 in
    /*) ;;
    *) die "DIR must be an absolute path: $1" ;;
    esac
    [[ $1 =~ ^[A-Za-z0-9_./+-]+$ ]] || die "DIR may only contain [A-Za-z0-9_./+-]: $1"
    echo "${1%/}"
}

port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

load_env() {
    [[ -f $DIR/env ]] || die "$DIR/env not found: was \`adstack.sh start $DIR\` run?"
    # shellcheck disable=SC1091
    source "$DIR/env"
    ADDR=$ADSTACK_ADDR
}

show_logs() {
    local f
    for f in "$DIR/samba.log" "$DIR/log.samba"; do
        if [[ -s $f ]]; then
            echo "----- last lines of $f -----" >&2
            tail -n 30 "$f" >&2
        fi
    done
}

# A loopback address nobody listens on: Samba's LDAP ports are fixed (see above).
choose_addr() {
    local n
    for ((n = 7; n < 250; n++)); do
        if ! port_open "127.1.0.$n" 389 && ! port_open "127.1.0.$n" 636; then
            ADDR=127.1.0.$n
            return 0
        fi
    done
    die "no free loopback address in 127.1.0.7-249"
}

add_addr() {
    if ! ip -4 addr show dev lo | grep -q "inet $ADDR/"; then
        ip addr add "$ADDR/32" dev lo
    fi
}

new_password_file() { # path: 3 character classes and more, as the domain's policy wants
    [[ -s $1 ]] && return 0
    (
        umask 077
        printf 'Pr-%s' "$(openssl rand -hex 12)" >"$1"
    )
}

# A throw-away CA and a certificate for the DC's address (EC P-256: milliseconds).
make_tls() {
    local t=$DIR/tls
    mkdir -p "$t"
    cat >"$t/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = postroom adstack test CA
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:dc1.postroom.test, IP:$ADDR
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
    (
        cd "$t"
        openssl req -x509 -new -config openssl.cnf -extensions ca_ext -days 3650 \
            -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem
        openssl req -new -config openssl.cnf -subj /CN=dc1.postroom.test \
            -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial "0x$RANDOM$RANDOM" \
            -days 3650 -extfile openssl.cnf -extensions server_ext -out server.pem
        # Samba refuses a key others can read.
        chmod 0600 ca.key server.key
        chmod 0644 ca.pem server.pem
    ) >/dev/null 2>"$t/openssl.err" || {
        cat "$t/openssl.err" >&2
        die "openssl failed"
    }
}

provision() {
    log "provisioning $REALM in $DIR"
    new_password_file "$DIR/admin.password"
    new_password_file "$DIR/postroom.password"
    make_tls
    mkdir -p "$DIR/run"
    samba-tool domain provision --targetdir="$DIR" --realm="$REALM" --domain="$DOMAIN" \
        --server-role=dc --dns-backend=NONE --host-name=dc1 \
        --adminpass="$(cat "$DIR/admin.password")" \
        --option="interfaces = $ADDR" --option="bind interfaces only = yes" \
        --option="server services = ldap" \
        --option="pid directory = $DIR/run" \
        --option="log file = $DIR/log.samba" --option="logging = file" \
        --option="tls certfile = $DIR/tls/server.pem" \
        --option="tls keyfile = $DIR/tls/server.key" \
        --option="tls cafile = $DIR/tls/ca.pem" \
        >"$DIR/provision.log" 2>&1 || {
        tail -n 20 "$DIR/provision.log" >&2
        die "samba-tool domain provision failed"
    }
    local H=(-H "$DIR/private/sam.ldb")
    {
        samba-tool ou create "OU=People,$BASE" "${H[@]}"
        samba-tool ou create "OU=Groups,$BASE" "${H[@]}"
        samba-tool ou create "OU=Services,$BASE" "${H[@]}"
        samba-tool user create postroom "$(cat "$DIR/postroom.password")" \
            --userou=OU=Services "${H[@]}"
        local sid
        sid=$(samba-tool user show postroom --attributes=objectSid "${H[@]}" | sed -n 's/^objectSid: //p')
        [[ -n $sid ]] || die "no objectSid for the service account"
        # Full control (GA) of the two OUs and everything below them (CI: inherited).
        samba-tool dsacl set --objectdn="OU=People,$BASE" --sddl="(A;CI;GA;;;$sid)" "${H[@]}"
        samba-tool dsacl set --objectdn="OU=Groups,$BASE" --sddl="(A;CI;GA;;;$sid)" "${H[@]}"
        # Three wrong passwords lock an account (the default, 0, never locks): the tests
        # lock one and postroom unlocks it.
        samba-tool domain passwordsettings set --account-lockout-threshold=3 "${H[@]}"
    } >>"$DIR/provision.log" 2>&1 || {
        tail -n 20 "$DIR/provision.log" >&2
        die "seeding the domain failed"
    }
}

samba_pid() {
    local f=$DIR/run/samba.pid
    if [[ -s $f ]] && kill -0 "$(head -n1 "$f" | tr -d ' ')" 2>/dev/null; then
        head -n1 "$f" | tr -d ' '
    fi
}

answers() {
    LDAPTLS_CACERT=$DIR/tls/ca.pem timeout 5 ldapsearch -x -H "ldaps://$ADDR" -b '' -s base \
        -LLL defaultNamingContext >/dev/null 2>&1
}

start_samba() {
    add_addr
    rm -f "$DIR/run/samba.pid"
    # -i: foreground, logs to stdout; setsid: survives this script.
    setsid samba -s "$DIR/etc/smb.conf" -i -M single --debuglevel=1 >"$DIR/samba.log" 2>&1 </dev/null &
    local i
    for ((i = 0; i < 300; i++)); do
        if answers; then return 0; fi
        sleep 0.1
    done
    show_logs
    die "samba did not answer on ldaps://$ADDR within 30 s"
}

write_env() {
    q() { printf "export %s='%s'\\n" "$1" "$2"; }
    {
        q ADSTACK_DIR "$DIR"
        q ADSTACK_ADDR "$ADDR"
        q ADSTACK_URL "ldap://$ADDR"
        q ADSTACK_LDAPS_URL "ldaps://$ADDR"
        q ADSTACK_CA "$DIR/tls/ca.pem"
        q ADSTACK_BASE "$BASE"
        q ADSTACK_PEOPLE "OU=People,$BASE"
        q ADSTACK_GROUPS "OU=Groups,$BASE"
        q ADSTACK_BIND_DN "CN=postroom,OU=Services,$BASE"
        q ADSTACK_BIND_PASSWORD_FILE "$DIR/postroom.password"
        q ADSTACK_ADMIN_DN "CN=Administrator,CN=Users,$BASE"
        q ADSTACK_ADMIN_PASSWORD_FILE "$DIR/admin.password"
        q ADSTACK_PID "$(samba_pid)"
        q ADSTACK_SCRIPT "$SELF"
    } >"$DIR/env.new"
    chmod 0644 "$DIR/env.new"
    mv "$DIR/env.new" "$DIR/env"
}

cmd_start() {
    need_root
    DIR=$(abs_dir "${1:-}")
    command -v samba-tool >/dev/null && command -v ldapsearch >/dev/null ||
        die "samba/ldap-utils not installed: run \`$SELF install\` first"
    mkdir -p "$DIR"
    chmod 0755 "$DIR"
    if [[ -f $DIR/env ]]; then
        load_env
        [[ -z $(samba_pid) ]] || die "a DC already runs in $DIR (stop it first)"
    else
        choose_addr
    fi
    if [[ ! -f $DIR/etc/smb.conf ]]; then
        add_addr
        provision
    fi
    start_samba
    write_env
    log "up in $DIR: $REALM on ldaps://$ADDR (source $DIR/env)"
}

cmd_stop() {
    need_root
    DIR=$(abs_dir "${1:-}")
    if [[ ! -f $DIR/env ]]; then
        log "nothing to stop in $DIR"
        return 0
    fi
    load_env
    local pid
    pid=$(samba_pid)
    if [[ -n $pid ]]; then
        kill "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 100; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
    ip addr del "$ADDR/32" dev lo 2>/dev/null || true
    log "stopped ($DIR)"
}

cmd_status() {
    DIR=$(abs_dir "${1:-}")
    load_env
    if answers; then
        echo "samba: up (pid $(samba_pid)), ldaps://$ADDR, base $BASE"
    else
        echo "samba: down"
        return 1
    fi
}

usage() {
    sed -n '2,12p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cmd=${1:-}
shift || true
case $cmd in
install) cmd_install "$@" ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
logs)
    DIR=$(abs_dir "${1:-}")
    show_logs
    ;;
*) usage ;;
esac
