#!/usr/bin/env bash
# Throw-away mail stack for postroom's integration tests: a private Dovecot (IMAP,
# IMAPS, LMTP) and a private Postfix (SMTP) on loopback ports, everything in one
# directory. Debian 12 (Dovecot 2.3, Postfix 3.7). Must be run as root.
#
#   mailstack.sh install                 apt-get the packages (only what is missing)
#   mailstack.sh start DIR               start both, write DIR/env, wait until they answer
#   mailstack.sh stop DIR                stop both
#   mailstack.sh status DIR              exit 0 when both answer
#   mailstack.sh add-user DIR ADDRESS [PASSWORD]
#   mailstack.sh stop-dovecot|start-dovecot|restart-dovecot DIR
#   mailstack.sh stop-postfix|start-postfix|restart-postfix DIR
#   mailstack.sh logs DIR                last lines of DIR/dovecot.log and DIR/postfix.log
#   mailstack.sh route-lmtp DIR ADDRESS PORT
#                                        Postfix delivers ADDRESS to lmtp:inet:127.0.0.1:PORT
#                                        (a postroom LMTP listener) instead of Dovecot
#   mailstack.sh flush DIR               Postfix tries its deferred mail now (postqueue -f)
#
# MAILSTACK_LDAP_ENV=LDAPDIR/env (from `tests/ldapstack/ldapstack.sh start LDAPDIR`) at
# `start`: Dovecot also authenticates the people in that directory (a second passdb,
# driver = ldap with auth_bind, after the passwd-file one; their mail lives in
# DIR/mail/DOMAIN/USER like everyone's). Without it, passwd-file users only.
#
# DIR holds: env (MAILSTACK_* exports), users (passwd-file), mail/DOMAIN/USER/Maildir,
# dovecot.log, postfix.log, tls/ca.pem (throw-away CA of the IMAPS/STARTTLS cert),
# use.lock (flock'ed by tests/common/mailstack.rs), dovecot/ and postfix/ (config,
# runtime, queue). Templates: dovecot.conf.in, postfix-main.cf.in, postfix-master.cf.in.
#
# Ports: MAILSTACK_PORT_BASE=B gives IMAP B, IMAPS B+1, LMTP B+2, SMTP B+3, SMTPS B+4 (fails
# if one is taken); without it the first free block from 24143 upwards (step 10).
# Every user's password is MAILSTACK_PASSWORD (default "secret") unless given.
#
# Facts that cost time (Debian 12), kept here so nobody pays twice:
# - Dovecot's login processes refuse to run as root; they run as dovenull, auth as
#   dovecot. The auth process must read DIR/users: DIR (and every parent) must be
#   traversable by `dovecot` -- a 0700 mkdtemp/tempfile dir gives "Temporary
#   authentication failure". `start` chmods DIR 0755 and checks with runuser.
# - Mail is stored as the `dovecot` user (first_valid_uid lowered to its uid).
# - passwd-file is re-read when its mtime or size changes, but Dovecot stat()s it at
#   most once per second (db-passwd-file.c: `if (pw->last_sync_time == ioloop_time)`
#   serves the cached copy). A user appended in the same second as an earlier lookup
#   is "unknown user" until the next second: LOGIN fails and, worse, LMTP answers
#   550 and Postfix bounces the mail for good. Seen here: add new4, log in at once ->
#   AUTHENTICATIONFAILED. So add-user (and MailStack::add_user) wait until the clock
#   has passed the file's mtime second before returning. No auth cache by default.
# - `postfix -c DIR` is refused unless the *default* /etc/postfix/main.cf lists DIR in
#   alternate_config_directories (exact string match, no globbing). With the
#   "No configuration" debconf answer there is no /etc/postfix/main.cf at all, and
#   postfix/postconf die on it: `install`/`start` write a minimal, inert one
#   (master_service_disable = inet, so the system instance never listens).
# - `postfix start` exits 1 without a word when maillog_file is outside
#   maillog_file_prefixes (default "/var, /dev/stdout"); that list is read from the
#   private main.cf, so it can name DIR. No syslog runs here: maillog_file is the log.
# - The stock master.cf chroots smtpd/smtp/lmtp & co; a private instance in DIR has no
#   jail, so the rendered master.cf runs everything unchrooted.
# - Keep queue_directory outside config_directory: postfix-script wants everything
#   under config_directory owned by root and warns about each queue subdirectory.
# - Despite shutdown_clients=yes, after `dovecot stop` the imap process of an open
#   session lives on and answers (NOOP OK), and `dovecot stop` takes 2-3 s:
#   stop-dovecot SIGTERMs the master and all its children at once instead.
# - transport_maps is read by trivial-rewrite when it starts, and qmgr/cleanup keep their
#   connections to it: an entry appended to DIR/postfix/conf/transport counts only once the
#   processes that read the old table are gone. `postfix reload` asks them to go "at their
#   earliest convenience"; route-lmtp waits until the old trivial-rewrite and qmgr pids have
#   exited, so mail sent after it returns takes the new route.
# - async-imap 0.12 (client side) takes an EOF before the tagged reply as success:
#   NOOP -> Ok(()), STATUS -> Ok(Mailbox::default()) even after "* BYE", SELECT too on
#   a bare EOF (checked against a fake server). A liveness check needs more than Ok:
#   e.g. SELECT/STATUS without UIDVALIDITY = connection lost (Dovecot always sends it).
# - Deferred mail (Dovecot down) is retried every second (queue_run_delay 1s,
#   backoff 1-2 s): delivered ~1 s after Dovecot is back.
# - The distribution packages start their daemons from postinst unless
#   /usr/sbin/policy-rc.d says 101 (Docker images ship one); `install` adds one for
#   the duration of the install when there is none, and stops what started anyway.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
PACKAGES=(dovecot-imapd dovecot-lmtpd postfix swaks)
DEFAULT_PASSWORD=${MAILSTACK_PASSWORD:-secret}
DEFAULT_USERS=(
    helpdesk@nhs.example
    rosehill.care@nhs.example
    oakview.gp@nhs.example
    jane.doe@nhs.example
    raj.patel@nhs.example
)
SYSTEM_POSTFIX_MAIN=/etc/postfix/main.cf
# Serialises edits of /etc/postfix/main.cf between stacks started in parallel.
GLOBAL_LOCK=/run/postroom-mailstack.lock

log() { echo "mailstack: $*" >&2; }
die() {
    echo "mailstack: ERROR: $*" >&2
    exit 1
}

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (Dovecot and Postfix drop privileges themselves)"; }

# ---------------------------------------------------------------------------- install

missing_packages() {
    local p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
            echo "$p"
        fi
    done
}

# A pid file whose process is alive.
pidfile_alive() { [[ -s $1 ]] && kill -0 "$(head -n1 "$1" | tr -d ' ')" 2>/dev/null; }

system_dovecot_running() { pidfile_alive /run/dovecot/master.pid; }
system_postfix_running() { [[ -f $SYSTEM_POSTFIX_MAIN ]] && postfix status >/dev/null 2>&1; }

# Stop the distribution's own dovecot/postfix (default config) that the install
# started; $1/$2 = 1 when dovecot/postfix already ran before (leave those alone).
stop_system_daemons() {
    local dovecot_before=$1 postfix_before=$2
    if [[ -d /run/systemd/system ]]; then
        if [[ $dovecot_before -eq 0 ]]; then systemctl disable --now dovecot.service >/dev/null 2>&1 || true; fi
        if [[ $postfix_before -eq 0 ]]; then systemctl disable --now postfix.service >/dev/null 2>&1 || true; fi
    fi
    if [[ $dovecot_before -eq 0 ]] && system_dovecot_running; then
        log "stopping the distribution's dovecot that the package started"
        dovecot stop >/dev/null 2>&1 || kill "$(cat /run/dovecot/master.pid)" 2>/dev/null || true
    fi
    if [[ $postfix_before -eq 0 ]] && system_postfix_running; then
        log "stopping the distribution's postfix that the package started"
        postfix stop >/dev/null 2>&1 || true
    fi
}

# postfix(1) with -c reads the default main.cf for alternate_config_directories; after a
# "No configuration" install it does not exist. Write an inert one (never overwrite).
ensure_system_postfix_main_cf() {
    [[ -f $SYSTEM_POSTFIX_MAIN ]] && return 0
    log "writing a minimal $SYSTEM_POSTFIX_MAIN (none existed)"
    cat >"$SYSTEM_POSTFIX_MAIN" <<'EOF'
# Written by postroom's tests/mailstack/mailstack.sh because none existed
# (postfix installed with debconf "No configuration"). The system instance is not used:
# the tests run private instances with `postfix -c DIR/postfix/conf`, which Postfix allows
# only for directories listed in alternate_config_directories below.
compatibility_level = 3.6
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
master_service_disable = inet
maillog_file = /var/log/postfix.log
alternate_config_directories =
EOF
}

cmd_install() {
    need_root
    local missing
    mapfile -t missing < <(missing_packages)
    if [[ ${#missing[@]} -eq 0 ]]; then
        log "packages already installed: ${PACKAGES[*]}"
        ensure_system_postfix_main_cf
        return 0
    fi
    log "installing: ${missing[*]}"
    local dovecot_before=0 postfix_before=0
    if system_dovecot_running; then dovecot_before=1; fi
    if system_postfix_running; then postfix_before=1; fi
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections

    # Keep postinst from starting the distribution's daemons.
    local made_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\n# temporary, from postroom mailstack.sh install\nexit 101\n' >/usr/sbin/policy-rc.d
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

    ensure_system_postfix_main_cf
    stop_system_daemons "$dovecot_before" "$postfix_before"
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

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

# First line a server sends on 127.0.0.1:$1 (empty if none within 2 s).
banner() { timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; head -n1 <&3" 2>/dev/null || true; }

load_env() {
    local dir=$1
    [[ -f $dir/env ]] || die "$dir/env not found: was \`mailstack.sh start $dir\` run?"
    # shellcheck disable=SC1091
    source "$dir/env"
    IMAP_PORT=$MAILSTACK_IMAP_PORT
    IMAPS_PORT=$MAILSTACK_IMAPS_PORT
    LMTP_PORT=$MAILSTACK_LMTP_PORT
    SMTP_PORT=$MAILSTACK_SMTP_PORT
    SMTPS_PORT=$MAILSTACK_SMTPS_PORT
}

show_logs() {
    local dir=$1 f
    for f in "$dir/dovecot.log" "$dir/postfix.log"; do
        if [[ -s $f ]]; then
            echo "----- last lines of $f -----" >&2
            tail -n 40 "$f" >&2
        fi
    done
}

fail_with_logs() {
    local dir=$1
    shift
    echo "mailstack: ERROR: $*" >&2
    show_logs "$dir"
    exit 1
}

choose_ports() {
    local base p ok
    if [[ -n ${MAILSTACK_PORT_BASE:-} ]]; then
        base=$MAILSTACK_PORT_BASE
        for p in $base $((base + 1)) $((base + 2)) $((base + 3)) $((base + 4)); do
            if port_open "$p"; then die "port $p (from MAILSTACK_PORT_BASE=$base) is in use"; fi
        done
    else
        base=''
        local try
        for ((try = 24143; try < 24143 + 10 * 100; try += 10)); do
            ok=1
            for p in $try $((try + 1)) $((try + 2)) $((try + 3)) $((try + 4)); do
                if port_open "$p"; then
                    ok=0
                    break
                fi
            done
            if [[ $ok -eq 1 ]]; then
                base=$try
                break
            fi
        done
        [[ -n $base ]] || die "no free block of 5 ports found from 24143 upwards"
    fi
    IMAP_PORT=$base
    IMAPS_PORT=$((base + 1))
    LMTP_PORT=$((base + 2))
    SMTP_PORT=$((base + 3))
    SMTPS_PORT=$((base + 4))
}

render() { # template output
    local ssl_dh=/usr/share/dovecot/dh.pem
    [[ -r $ssl_dh ]] || ssl_dh=$DIR/tls/dh.pem
    sed -e "s|@DIR@|$DIR|g" \
        -e "s|@IMAP_PORT@|$IMAP_PORT|g" \
        -e "s|@IMAPS_PORT@|$IMAPS_PORT|g" \
        -e "s|@LMTP_PORT@|$LMTP_PORT|g" \
        -e "s|@SMTP_PORT@|$SMTP_PORT|g" \
        -e "s|@SMTPS_PORT@|$SMTPS_PORT|g" \
        -e "s|@MAIL_UID@|$(id -u dovecot)|g" \
        -e "s|@MAIL_GID@|$(id -g dovecot)|g" \
        -e "s|@SSL_DH@|$ssl_dh|g" \
        "$1" >"$2"
    if grep -q '@[A-Z_][A-Z_]*@' "$2"; then die "unrendered placeholder in $2"; fi
}

# A throw-away CA and a server certificate for localhost / 127.0.0.1 (EC P-256:
# milliseconds). Clients that want TLS trust $MAILSTACK_TLS_CA.
make_tls() {
    local t=$DIR/tls
    [[ -s $t/server.pem && -s $t/server.key && -s $t/ca.pem ]] && return 0
    mkdir -p "$t"
    cat >"$t/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = postroom mailstack test CA
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, DNS:mailstack.test.example, IP:127.0.0.1
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
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 0x$RANDOM$RANDOM \
            -days 3650 -extfile openssl.cnf -extensions server_ext -out server.pem
        if [[ ! -r /usr/share/dovecot/dh.pem ]]; then
            openssl dhparam -dsaparam -out dh.pem 2048
        fi
        chmod 0600 ca.key server.key
        chmod 0644 ca.pem server.pem
    ) >/dev/null 2>"$t/openssl.err" || {
        cat "$t/openssl.err" >&2
        die "openssl failed"
    }
}

# DIR/dovecot/ldap.conf (included by dovecot.conf): the LDAP passdb when
# MAILSTACK_LDAP_ENV names an ldapstack env file, else empty.
render_ldap() {
    local out=$DIR/dovecot/ldap.conf ext=$DIR/dovecot/dovecot-ldap.conf.ext
    rm -f "$ext"
    if [[ -z ${MAILSTACK_LDAP_ENV:-} ]]; then
        : >"$out"
        return 0
    fi
    [[ -r $MAILSTACK_LDAP_ENV ]] || die "MAILSTACK_LDAP_ENV=$MAILSTACK_LDAP_ENV: no such file"
    local url reader people password
    # A subshell: the ldapstack's variables stay out of this script.
    # shellcheck disable=SC1090
    url=$(source "$MAILSTACK_LDAP_ENV" && echo "$LDAPSTACK_URL")
    # shellcheck disable=SC1090
    reader=$(source "$MAILSTACK_LDAP_ENV" && echo "$LDAPSTACK_READER_DN")
    # shellcheck disable=SC1090
    people=$(source "$MAILSTACK_LDAP_ENV" && echo "$LDAPSTACK_PEOPLE")
    # shellcheck disable=SC1090
    password=$(source "$MAILSTACK_LDAP_ENV" && cat "$LDAPSTACK_READER_PASSWORD_FILE")
    [[ -n $url && -n $reader && -n $people && -n $password ]] ||
        die "$MAILSTACK_LDAP_ENV lacks LDAPSTACK_URL/READER_DN/PEOPLE/READER_PASSWORD_FILE"
    [[ "$url$reader$people$password" != *[\|\&[:space:]]* ]] || die "unexpected characters in $MAILSTACK_LDAP_ENV"
    sed -e "s|@LDAP_ENV@|$MAILSTACK_LDAP_ENV|g" \
        -e "s|@LDAP_URL@|$url|g" \
        -e "s|@LDAP_READER_DN@|$reader|g" \
        -e "s|@LDAP_READER_PASSWORD@|$password|g" \
        -e "s|@LDAP_PEOPLE@|$people|g" \
        "$HERE/dovecot-ldap.conf.ext.in" >"$ext"
    # Read by Dovecot's auth process (user dovecot); it holds the reader's password.
    chown root:dovecot "$ext"
    chmod 0640 "$ext"
    render "$HERE/dovecot-ldap.conf.in" "$out"
    if grep -q '@[A-Z_][A-Z_]*@' "$ext"; then die "unrendered placeholder in $ext"; fi
}

# Append ADDRESS to the passwd-file unless present. Lowercased: Dovecot looks up %Lu.
add_user_line() { # users_file address password
    local file=$1 addr=${2,,} pw=$3
    [[ $addr == *@* && $addr != *:* && $addr != *[[:space:]]* ]] || die "bad address: $2"
    [[ $pw != *:* ]] || die "password may not contain ':'"
    (
        flock 9
        touch "$file"
        chmod 0644 "$file"
        if ! cut -d: -f1 "$file" | grep -qxF "$addr"; then
            printf '%s:{PLAIN}%s\n' "$addr" "$pw" >>"$file"
            # Dovecot stat()s the passwd-file at most once per second (see the top of
            # this file): wait for the next second so the next lookup sees the user.
            local mtime
            mtime=$(stat -c %Y "$file")
            while ((EPOCHSECONDS <= mtime)); do sleep 0.05; done
        fi
    ) 9>>"$file.lock"
}

DOVECOT_CONF() { echo "$DIR/dovecot/dovecot.conf"; }

dovecot_pid() {
    local f=$DIR/dovecot/run/master.pid
    if pidfile_alive "$f"; then head -n1 "$f"; fi
}

postfix_pid() {
    local f=$DIR/postfix/queue/pid/master.pid
    if pidfile_alive "$f"; then tr -d ' ' <"$f" | head -n1; fi
}

wait_banner() { # port prefix what
    local port=$1 prefix=$2 what=$3 i b
    for ((i = 0; i < 100; i++)); do
        b=$(banner "$port")
        if [[ $b == "$prefix"* ]]; then return 0; fi
        sleep 0.1
    done
    fail_with_logs "$DIR" "$what on 127.0.0.1:$port did not answer within 10 s (last banner: '${b:-none}')"
}

wait_pid_gone() { # pid what
    local pid=$1 i
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    log "$2 (pid $pid) still running after 10 s; killing"
    kill -9 "$pid" 2>/dev/null || true
}

# ----------------------------------------------------------------------------- dovecot

start_dovecot() {
    if [[ -n $(dovecot_pid) ]]; then
        log "dovecot already running in $DIR"
        return 0
    fi
    doveconf -c "$(DOVECOT_CONF)" -n >/dev/null 2>"$DIR/dovecot/doveconf.err" ||
        fail_with_logs "$DIR" "dovecot config invalid: $(cat "$DIR/dovecot/doveconf.err")"
    dovecot -c "$(DOVECOT_CONF)" 2>>"$DIR/dovecot.log" || fail_with_logs "$DIR" "dovecot failed to start"
    wait_banner "$IMAP_PORT" "* OK" "Dovecot IMAP"
    wait_banner "$LMTP_PORT" "220" "Dovecot LMTP"
}

# Pids whose parent is $1 (pure bash over /proc: procps may be missing).
children_of() {
    local parent=$1 p s
    local -a f
    for p in /proc/[0-9]*; do
        { s=$(<"$p/stat"); } 2>/dev/null || continue
        s=${s##*) }
        read -r -a f <<<"$s"
        if [[ ${f[1]:-} == "$parent" ]]; then echo "${p#/proc/}"; fi
    done
    return 0
}

stop_dovecot() {
    local pid c
    pid=$(dovecot_pid)
    [[ -n $pid ]] || return 0
    # Despite shutdown_clients=yes, imap processes serving a client outlive the master
    # (seen: NOOP answered OK on an old session after `dovecot stop` returned; so did
    # the log and stats processes), and `dovecot stop` takes 2-3 s. So SIGTERM the
    # master and all its children at once: ~0.1 s, and open sessions get
    # "* BYE Server shutting down." as in a real restart.
    local -a kids
    mapfile -t kids < <(children_of "$pid")
    kill "$pid" "${kids[@]}" 2>/dev/null || true
    wait_pid_gone "$pid" dovecot
    for c in "${kids[@]}"; do wait_pid_gone "$c" "dovecot child"; done
}

# ----------------------------------------------------------------------------- postfix

# Add/remove DIR/postfix/conf in the system main.cf's alternate_config_directories,
# dropping entries whose directory is gone (left by crashed runs).
edit_alternate_dirs() { # add|remove confdir
    local op=$1 confdir=$2 cur d
    local -a keep=()
    ensure_system_postfix_main_cf
    (
        flock 9
        cur=$(postconf -c /etc/postfix -h alternate_config_directories 2>/dev/null || true)
        for d in ${cur//,/ }; do
            [[ $d == "$confdir" ]] && continue
            [[ -d $d ]] || continue
            keep+=("$d")
        done
        [[ $op == add ]] && keep+=("$confdir")
        postconf -c /etc/postfix -e "alternate_config_directories = ${keep[*]}"
    ) 9>>"$GLOBAL_LOCK"
}

start_postfix() {
    if [[ -n $(postfix_pid) ]]; then
        log "postfix already running in $DIR"
        return 0
    fi
    edit_alternate_dirs add "$DIR/postfix/conf"
    local out
    if ! out=$(postfix -c "$DIR/postfix/conf" start 2>&1); then
        fail_with_logs "$DIR" "postfix -c $DIR/postfix/conf start failed: $out"
    fi
    wait_banner "$SMTP_PORT" "220" "Postfix SMTP"
    # SMTPS speaks TLS first: an open port is all a banner check can see.
    local tries=0
    until port_open "$SMTPS_PORT"; do
        ((tries++ < 50)) || fail_with_logs "$DIR" "Postfix SMTPS did not listen on 127.0.0.1:$SMTPS_PORT within 5 s"
        sleep 0.1
    done
}

stop_postfix() {
    local pid
    pid=$(postfix_pid)
    if [[ -n $pid ]]; then
        postfix -c "$DIR/postfix/conf" stop >/dev/null 2>&1 || kill "$pid" 2>/dev/null || true
        wait_pid_gone "$pid" postfix
    fi
}

# ------------------------------------------------------------------------------ commands

cmd_start() {
    need_root
    DIR=$(abs_dir "${1:-}")
    if ! command -v dovecot >/dev/null || ! command -v postfix >/dev/null; then
        die "dovecot/postfix not installed: run \`$SELF install\` first"
    fi
    mkdir -p "$DIR"
    if [[ -f $DIR/env ]]; then
        load_env "$DIR"
        if [[ -n $(dovecot_pid) || -n $(postfix_pid) ]]; then
            die "a mail stack already runs in $DIR (stop it first)"
        fi
    fi
    chmod 0755 "$DIR"
    choose_ports
    local password=$DEFAULT_PASSWORD

    mkdir -p "$DIR/dovecot/run" "$DIR/dovecot/state" "$DIR/postfix/conf" "$DIR/postfix/data" "$DIR/postfix/queue" "$DIR/mail"
    chown dovecot:dovecot "$DIR/mail"
    # flock'ed by tests/common/mailstack.rs: shared by every test, exclusive by tests
    # that stop/restart a server.
    touch "$DIR/use.lock"
    chmod 0644 "$DIR/use.lock"
    chmod 0755 "$DIR/dovecot" "$DIR/mail"
    make_tls
    render "$HERE/dovecot.conf.in" "$DIR/dovecot/dovecot.conf"
    render_ldap
    render "$HERE/postfix-main.cf.in" "$DIR/postfix/conf/main.cf"
    render "$HERE/postfix-master.cf.in" "$DIR/postfix/conf/master.cf"
    touch "$DIR/postfix/conf/transport"
    chown postfix "$DIR/postfix/data"

    local u
    for u in "${DEFAULT_USERS[@]}"; do add_user_line "$DIR/users" "$u" "$password"; done

    # Every directory above DIR must be traversable by the dovecot user.
    if command -v runuser >/dev/null && ! runuser -u dovecot -- test -r "$DIR/users"; then
        die "user dovecot cannot read $DIR/users: make $DIR and its parents 0755 (or o+x)"
    fi

    {
        printf 'export MAILSTACK_DIR=%q\n' "$DIR"
        printf 'export MAILSTACK_IMAP_HOST=127.0.0.1\n'
        printf 'export MAILSTACK_IMAP_PORT=%q\n' "$IMAP_PORT"
        printf 'export MAILSTACK_IMAPS_PORT=%q\n' "$IMAPS_PORT"
        printf 'export MAILSTACK_LMTP_PORT=%q\n' "$LMTP_PORT"
        printf 'export MAILSTACK_SMTP_HOST=127.0.0.1\n'
        printf 'export MAILSTACK_SMTP_PORT=%q\n' "$SMTP_PORT"
        printf 'export MAILSTACK_SMTPS_PORT=%q\n' "$SMTPS_PORT"
        printf 'export MAILSTACK_USERS_FILE=%q\n' "$DIR/users"
        printf 'export MAILSTACK_PASSWORD=%q\n' "$password"
        printf 'export MAILSTACK_TLS_CA=%q\n' "$DIR/tls/ca.pem"
        printf 'export MAILSTACK_SCRIPT=%q\n' "$SELF"
        printf 'export MAILSTACK_LDAP_ENV=%q\n' "${MAILSTACK_LDAP_ENV:-}"
    } >"$DIR/env"

    start_dovecot
    start_postfix
    log "up in $DIR: IMAP $IMAP_PORT, IMAPS $IMAPS_PORT, LMTP $LMTP_PORT, SMTP $SMTP_PORT, SMTPS $SMTPS_PORT${MAILSTACK_LDAP_ENV:+, LDAP passdb from $MAILSTACK_LDAP_ENV} (source $DIR/env)"
}

cmd_stop() {
    need_root
    DIR=$(abs_dir "${1:-}")
    if [[ ! -f $DIR/env ]]; then
        log "nothing to stop in $DIR"
        return 0
    fi
    load_env "$DIR"
    stop_postfix
    stop_dovecot
    edit_alternate_dirs remove "$DIR/postfix/conf"
    log "stopped ($DIR)"
}

cmd_status() {
    DIR=$(abs_dir "${1:-}")
    load_env "$DIR"
    local rc=0 b
    b=$(banner "$IMAP_PORT")
    if [[ $b == "* OK"* ]]; then echo "dovecot: up (pid $(dovecot_pid)), IMAP $IMAP_PORT, IMAPS $IMAPS_PORT, LMTP $LMTP_PORT"; else
        echo "dovecot: down"
        rc=1
    fi
    b=$(banner "$SMTP_PORT")
    if [[ $b == 220* ]]; then echo "postfix: up (pid $(postfix_pid)), SMTP $SMTP_PORT"; else
        echo "postfix: down"
        rc=1
    fi
    if [[ -d $DIR/postfix/queue ]]; then
        echo "postfix queue: $(find "$DIR/postfix/queue/"{incoming,active,deferred} -type f 2>/dev/null | wc -l) message(s) not yet delivered"
    fi
    echo "users: $(grep -c . "$DIR/users" 2>/dev/null || echo 0) in $DIR/users"
    return $rc
}

# Pids of the running trivial-rewrite and qmgr processes (children of the master).
postfix_routers() {
    local master c comm
    master=$(postfix_pid)
    [[ -n $master ]] || return 0
    for c in $(children_of "$master"); do
        comm=$(cat "/proc/$c/comm" 2>/dev/null) || continue
        case $comm in trivial-rewrite | qmgr) echo "$c" ;; esac
    done
    return 0
}

cmd_route_lmtp() {
    need_root
    DIR=$(abs_dir "${1:-}")
    [[ -n ${2:-} && ${3:-} =~ ^[0-9]+$ ]] || die "usage: route-lmtp DIR ADDRESS PORT"
    load_env "$DIR"
    local file=$DIR/postfix/conf/transport address=${2,,} port=$3 i p
    local -a old
    (
        flock 9
        printf '%s lmtp:inet:127.0.0.1:%s\n' "$address" "$port" >>"$file"
        mapfile -t old < <(postfix_routers)
        postfix -c "$DIR/postfix/conf" reload >/dev/null 2>&1 || die "postfix reload failed"
        for p in "${old[@]}"; do
            for ((i = 0; i < 100; i++)); do
                kill -0 "$p" 2>/dev/null || break
                sleep 0.1
            done
            if kill -0 "$p" 2>/dev/null; then die "postfix process $p still runs 10 s after reload"; fi
        done
    ) 9>>"$file.lock"
}

cmd_flush() {
    need_root
    DIR=$(abs_dir "${1:-}")
    load_env "$DIR"
    postqueue -c "$DIR/postfix/conf" -f
}

cmd_add_user() {
    DIR=$(abs_dir "${1:-}")
    [[ -n ${2:-} ]] || die "usage: add-user DIR ADDRESS [PASSWORD]"
    local pw=${3:-}
    if [[ -z $pw ]]; then
        if [[ -f $DIR/env ]]; then load_env "$DIR"; fi
        pw=${MAILSTACK_PASSWORD:-$DEFAULT_PASSWORD}
    fi
    add_user_line "$DIR/users" "$2" "$pw"
}

with_env() { # fn DIR
    need_root
    DIR=$(abs_dir "${2:-}")
    load_env "$DIR"
    "$1"
}

usage() {
    sed -n '2,31p' "$SELF" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

cmd=${1:-}
shift || true
case $cmd in
install) cmd_install "$@" ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
status) cmd_status "$@" ;;
add-user) cmd_add_user "$@" ;;
route-lmtp) cmd_route_lmtp "$@" ;;
flush) cmd_flush "$@" ;;
start-dovecot) with_env start_dovecot "$@" ;;
stop-dovecot) with_env stop_dovecot "$@" ;;
restart-dovecot)
    with_env stop_dovecot "$@"
    start_dovecot
    ;;
start-postfix) with_env start_postfix "$@" ;;
stop-postfix) with_env stop_postfix "$@" ;;
restart-postfix)
    with_env stop_postfix "$@"
    start_postfix
    ;;
logs)
    DIR=$(abs_dir "${1:-}")
    show_logs "$DIR"
    ;;
*) usage ;;
esac
