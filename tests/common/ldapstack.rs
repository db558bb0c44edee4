//! Access to the throw-away LDAP directory (a private OpenLDAP 2.5 slapd with ppolicy)
//! that `tests/ldapstack/ldapstack.sh start DIR` runs and describes in `DIR/env`.
//! `scripts/test` starts it before the mail stack, points the mail stack's Dovecot at
//! it (a second passdb), and exports `LDAPSTACK_ENV=DIR/env` as well as the
//! `LDAPSTACK_*` variables themselves. Tests call [`LdapStack::require`]: a missing
//! directory fails the test instead of skipping it.
//!
//! The layout (see the top of ldapstack.sh): people are `inetOrgPerson` entries
//! `uid=NAME,ou=people,dc=nhs,dc=example` whose `mail` is their address (Dovecot's
//! login name); a shared mailbox is a `groupOfNames` `cn=ADDRESS,ou=groups,…` with
//! `member` and `owner` DNs. The manager ([`LdapStack::bind_dn`], postroom's account)
//! writes all of it, sets passwords (without reading them) and the ppolicy state
//! (`pwdReset`, `pwdAccountLockedTime`).
//!
//! Dependency-free: the helpers shell out to `ldapmodify`, `ldappasswd`, `ldapsearch`
//! and `ldapwhoami` (ldap-utils). postroom's own LDAP client is what the feature
//! tests test; these are only for arranging and inspecting the directory.
//!
//! Locking as in [`super::mailstack`]: every [`LdapStack`] holds a shared flock on
//! `DIR/use.lock`; a test that stops slapd takes [`LdapStack::require_exclusive`], and
//! slapd is started again when it is dropped. A test needing both stacks takes the
//! `LdapStack` first, then the `MailStack`.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::mailstack::UseLock;

const HOW_TO_START: &str = "the test LDAP directory is not running (LDAPSTACK_ENV and \
     LDAPSTACK_* variables unset).\n\
     Run the tests with `scripts/test` (it installs slapd, starts it and the mail stack, \
     and runs cargo test), or by hand, as root:\n    \
     tests/ldapstack/ldapstack.sh install\n    \
     l=$(mktemp -d) && chmod 0755 $l && tests/ldapstack/ldapstack.sh start $l\n    \
     d=$(mktemp -d) && chmod 0755 $d && MAILSTACK_LDAP_ENV=$l/env tests/mailstack/mailstack.sh start $d\n    \
     . $d/env && LDAPSTACK_ENV=$l/env cargo test\n    \
     tests/mailstack/mailstack.sh stop $d; tests/ldapstack/ldapstack.sh stop $l";

/// The permanent lock ppolicy understands (`pwdAccountLockedTime: 000001010000Z`).
pub const LOCKED_FOR_GOOD: &str = "000001010000Z";

#[derive(Debug, Clone)]
pub struct LdapStack {
    /// The directory's directory (config, data, log, password files).
    pub dir: PathBuf,
    /// The env file the values came from, if any (`LDAPSTACK_ENV`).
    pub env_file: Option<PathBuf>,
    /// `ldap://127.0.0.1:PORT` (plain; StartTLS offered with the same certificate).
    pub url: String,
    /// `ldaps://127.0.0.1:PORT+1`, certificate signed by [`ca`](Self::ca).
    pub ldaps_url: Option<String>,
    /// `ldapi://…` socket: root binding with SASL EXTERNAL is the rootdn (no ACLs,
    /// no ppolicy checks).
    pub ldapi_url: Option<String>,
    /// PEM of the throw-away CA of the LDAPS certificate.
    pub ca: Option<PathBuf>,
    /// `dc=nhs,dc=example`.
    pub base: String,
    /// `ou=people,BASE`.
    pub people: String,
    /// `ou=groups,BASE`.
    pub groups: String,
    /// The default password policy's DN.
    pub policy: String,
    /// The manager: postroom's bind DN, with write access.
    pub bind_dn: String,
    pub bind_password_file: PathBuf,
    /// Dovecot's read-only search account.
    pub reader_dn: String,
    pub reader_password_file: PathBuf,
    script: PathBuf,
    use_lock: Arc<UseLock>,
}

/// A person made by [`LdapStack::unique_person`].
#[derive(Debug, Clone)]
pub struct Person {
    pub uid: String,
    pub dn: String,
    /// The address: `mail` in the entry and the IMAP login name.
    pub mail: String,
}

/// `export NAME='value'` lines, as ldapstack.sh writes them.
fn parse_env_file(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("ldapstack: read {}: {e}", path.display()));
    text.lines()
        .filter_map(|line| {
            let (name, value) = line.strip_prefix("export ")?.split_once('=')?;
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(value);
            Some((name.to_string(), value.to_string()))
        })
        .collect()
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl LdapStack {
    /// The directory described by `LDAPSTACK_ENV` (the env file) or else by the
    /// `LDAPSTACK_*` variables, if set. Holds a shared use lock while it lives.
    pub fn from_env() -> Option<LdapStack> {
        LdapStack::from_env_locked(false)
    }

    fn from_env_locked(exclusive: bool) -> Option<LdapStack> {
        let env_file = std::env::var_os("LDAPSTACK_ENV")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        let vars: HashMap<String, String> = match &env_file {
            Some(path) => parse_env_file(path),
            None => std::env::vars()
                .filter(|(k, _)| k.starts_with("LDAPSTACK_"))
                .collect(),
        };
        let get = |name: &str| vars.get(name).filter(|v| !v.is_empty()).cloned();
        let dir = PathBuf::from(get("LDAPSTACK_DIR")?);
        let script = get("LDAPSTACK_SCRIPT")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ldapstack/ldapstack.sh")
            });
        let use_lock = Arc::new(UseLock::take(&dir, &script, exclusive, &["start-slapd"]));
        Some(LdapStack {
            url: get("LDAPSTACK_URL")?,
            ldaps_url: get("LDAPSTACK_LDAPS_URL"),
            ldapi_url: get("LDAPSTACK_LDAPI_URL"),
            ca: get("LDAPSTACK_CA").map(PathBuf::from),
            base: get("LDAPSTACK_BASE")?,
            people: get("LDAPSTACK_PEOPLE")?,
            groups: get("LDAPSTACK_GROUPS")?,
            policy: get("LDAPSTACK_POLICY").unwrap_or_default(),
            bind_dn: get("LDAPSTACK_BIND_DN")?,
            bind_password_file: PathBuf::from(get("LDAPSTACK_BIND_PASSWORD_FILE")?),
            reader_dn: get("LDAPSTACK_READER_DN").unwrap_or_default(),
            reader_password_file: get("LDAPSTACK_READER_PASSWORD_FILE")
                .map(PathBuf::from)
                .unwrap_or_default(),
            env_file,
            script,
            use_lock,
            dir,
        })
    }

    /// The running directory; panics with instructions when there is none.
    pub fn require() -> LdapStack {
        LdapStack::from_env_locked(false).unwrap_or_else(|| panic!("{HOW_TO_START}"))
    }

    /// The directory for a test that stops or restarts slapd: waits until no other
    /// test uses it; slapd is started again when the last clone is dropped.
    pub fn require_exclusive() -> LdapStack {
        LdapStack::from_env_locked(true).unwrap_or_else(|| panic!("{HOW_TO_START}"))
    }

    /// The manager's password (what postroom would be configured with).
    pub fn bind_password(&self) -> String {
        std::fs::read_to_string(&self.bind_password_file)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.bind_password_file.display()))
            .trim()
            .to_string()
    }

    // ------------------------------------------------------------ ldap-utils

    /// Runs an ldap-utils tool against [`url`](Self::url); `Ok(stdout)` on exit 0,
    /// else `Err(stderr + stdout)`.
    fn tool(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        self.tool_at(&self.url, None, program, args, stdin)
    }

    /// [`tool`](Self::tool) against `url`, trusting `ca` (LDAPTLS_CACERT) when given.
    fn tool_at(
        &self,
        url: &str,
        ca: Option<&Path>,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<String, String> {
        let mut cmd = Command::new(program);
        if let Some(ca) = ca {
            cmd.env("LDAPTLS_CACERT", ca)
                .env("LDAPTLS_REQCERT", "demand");
        }
        cmd.args(["-H", url, "-o", "nettimeout=10"])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("run {program} (ldap-utils installed?): {e}"));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes())
                .unwrap_or_else(|e| panic!("{program} stdin: {e}"));
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "{program} {}: {}{stdout}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    fn as_manager(&self) -> [String; 5] {
        [
            "-x".into(),
            "-D".into(),
            self.bind_dn.clone(),
            "-y".into(),
            self.bind_password_file.display().to_string(),
        ]
    }

    /// `ldapmodify` as the manager with `ldif` (changetype records; plain entries are
    /// added, as `ldapadd` does).
    pub fn modify(&self, ldif: &str) -> Result<(), String> {
        let m = self.as_manager();
        let mut args: Vec<&str> = m.iter().map(String::as_str).collect();
        args.push("-a");
        self.tool("ldapmodify", &args, Some(ldif)).map(|_| ())
    }

    /// [`modify`](Self::modify), panicking on failure.
    pub fn must_modify(&self, ldif: &str) {
        if let Err(e) = self.modify(ldif) {
            panic!("ldapstack: ldapmodify failed: {e}\nLDIF:\n{ldif}");
        }
    }

    /// `ldapsearch` as the manager: `attrs` of the entries under `base` (subtree)
    /// matching `filter`, as (dn, attribute → values) in the server's order.
    /// Attribute names as the server spells them; base64 (`::`) values decoded.
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> Result<Vec<Entry>, String> {
        let m = self.as_manager();
        let mut args: Vec<&str> = m.iter().map(String::as_str).collect();
        args.extend(["-LLL", "-o", "ldif-wrap=no", "-b", base, filter]);
        args.extend(attrs);
        self.tool("ldapsearch", &args, None)
            .map(|out| parse_ldif(&out))
    }

    /// The values of `attr` (operational ones too) in the entry `dn`; empty when the
    /// attribute is absent. Panics when the entry cannot be read.
    pub fn values(&self, dn: &str, attr: &str) -> Vec<String> {
        let m = self.as_manager();
        let mut args: Vec<&str> = m.iter().map(String::as_str).collect();
        args.extend([
            "-LLL",
            "-o",
            "ldif-wrap=no",
            "-s",
            "base",
            "-b",
            dn,
            "(objectClass=*)",
            attr,
        ]);
        let out = self
            .tool("ldapsearch", &args, None)
            .unwrap_or_else(|e| panic!("ldapstack: read {dn}: {e}"));
        parse_ldif(&out)
            .into_iter()
            .next()
            .and_then(|(_, mut a)| {
                let key = a.keys().find(|k| k.eq_ignore_ascii_case(attr))?.clone();
                a.remove(&key)
            })
            .unwrap_or_default()
    }

    /// A simple bind as `dn` with `password` (`ldapwhoami`): Ok, or the server's refusal.
    pub fn bind(&self, dn: &str, password: &str) -> Result<(), String> {
        self.tool("ldapwhoami", &["-x", "-D", dn, "-w", password], None)
            .map(|_| ())
    }

    /// A simple bind over LDAPS ([`ldaps_url`](Self::ldaps_url)), verifying the
    /// server's certificate against `ca` (normally [`ca`](Self::ca)).
    pub fn bind_ldaps(&self, dn: &str, password: &str, ca: &Path) -> Result<(), String> {
        let url = self
            .ldaps_url
            .as_deref()
            .expect("LDAPSTACK_LDAPS_URL unset");
        self.tool_at(
            url,
            Some(ca),
            "ldapwhoami",
            &["-x", "-D", dn, "-w", password],
            None,
        )
        .map(|_| ())
    }

    // ---------------------------------------------------------------- people

    /// Adds an inetOrgPerson `uid=UID,ou=people,…` with `mail` and sets its password
    /// through the manager's Password Modify (ldappasswd), as an administrator would.
    pub fn add_person(&self, uid: &str, mail: &str, password: &str) -> Person {
        let dn = format!("uid={uid},{}", self.people);
        self.must_modify(&format!(
            "dn: {dn}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\nmail: {mail}\n"
        ));
        self.set_password(&dn, password);
        Person {
            uid: uid.to_string(),
            dn,
            mail: mail.to_string(),
        }
    }

    /// A fresh person `PREFIX-<pid>-<stamp>-<n>` with mail `…@test.example` (a domain
    /// the mail stack accepts) and `password`.
    pub fn unique_person(&self, prefix: &str, password: &str) -> Person {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let prefix: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let uid = format!(
            "{prefix}-{}-{}-{n}",
            std::process::id(),
            unix_secs() % 1_000_000
        );
        let mail = format!("{uid}@test.example");
        self.add_person(&uid, &mail, password)
    }

    /// The manager sets `dn`'s password (RFC 3062 Password Modify). Also unlocks:
    /// ppolicy drops pwdAccountLockedTime and pwdFailureTime on a password change.
    pub fn set_password(&self, dn: &str, password: &str) {
        let m = self.as_manager();
        let mut args: Vec<&str> = m.iter().map(String::as_str).collect();
        args.extend(["-s", password, dn]);
        if let Err(e) = self.tool("ldappasswd", &args, None) {
            panic!("ldapstack: ldappasswd {dn}: {e}");
        }
    }

    /// The person changes their own password (bound as themselves, Password Modify
    /// with the old one): Ok, or the refusal (e.g. ppolicy's history).
    pub fn change_own_password(&self, dn: &str, old: &str, new: &str) -> Result<(), String> {
        self.tool(
            "ldappasswd",
            &["-x", "-D", dn, "-w", old, "-a", old, "-s", new],
            None,
        )
        .map(|_| ())
    }

    /// Temporary password that must be changed at the next login: the manager sets
    /// `password` and `pwdReset: TRUE` in one modify (slapd does not set pwdReset by
    /// itself, whatever pwdMustChange says).
    pub fn reset_password_must_change(&self, dn: &str, password: &str) {
        self.must_modify(&format!(
            "dn: {dn}\nchangetype: modify\nreplace: userPassword\nuserPassword: {password}\n-\n\
             replace: pwdReset\npwdReset: TRUE\n"
        ));
    }

    /// Locks `dn` for good (`pwdAccountLockedTime: 000001010000Z`): every bind fails.
    pub fn lock(&self, dn: &str) {
        self.must_modify(&format!(
            "dn: {dn}\nchangetype: modify\nreplace: pwdAccountLockedTime\n\
             pwdAccountLockedTime: {LOCKED_FOR_GOOD}\n"
        ));
    }

    /// Unlocks `dn` (deletes pwdAccountLockedTime; ppolicy drops pwdFailureTime too).
    pub fn unlock(&self, dn: &str) {
        self.must_modify(&format!(
            "dn: {dn}\nchangetype: modify\ndelete: pwdAccountLockedTime\n"
        ));
    }

    /// `pwdAccountLockedTime` of `dn`, if locked.
    pub fn locked_time(&self, dn: &str) -> Option<String> {
        self.values(dn, "pwdAccountLockedTime").into_iter().next()
    }

    /// Whether `dn` carries `pwdReset: TRUE` (must change the password).
    pub fn must_change(&self, dn: &str) -> bool {
        self.values(dn, "pwdReset").iter().any(|v| v == "TRUE")
    }

    // ---------------------------------------------------------------- groups

    /// Adds the shared mailbox group `cn=MAILBOX,ou=groups,…` with `members` (DNs) and
    /// `owners` (DNs; added as members too). groupOfNames needs at least one member.
    pub fn add_mailbox_group(&self, mailbox: &str, members: &[&str], owners: &[&str]) -> String {
        let dn = format!("cn={mailbox},{}", self.groups);
        let mut ldif = format!("dn: {dn}\nobjectClass: groupOfNames\ncn: {mailbox}\n");
        let mut all: Vec<&str> = members.to_vec();
        for o in owners {
            if !all.contains(o) {
                all.push(o);
            }
        }
        assert!(!all.is_empty(), "a groupOfNames needs at least one member");
        for m in all {
            ldif.push_str(&format!("member: {m}\n"));
        }
        for o in owners {
            ldif.push_str(&format!("owner: {o}\n"));
        }
        self.must_modify(&ldif);
        dn
    }

    // ------------------------------------------------------- server control

    /// Stops slapd (needs [`require_exclusive`](Self::require_exclusive)); blocks until down.
    pub fn stop_slapd(&self) {
        self.script("stop-slapd");
    }

    /// Starts slapd again with the same data and ports; blocks until it answers.
    pub fn start_slapd(&self) {
        self.script("start-slapd");
    }

    fn script(&self, command: &str) {
        assert!(
            self.use_lock.exclusive,
            "ldapstack: {command} needs LdapStack::require_exclusive(): other tests use the \
             directory in parallel"
        );
        let out = Command::new("bash")
            .arg(&self.script)
            .arg(command)
            .arg(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.script.display()));
        assert!(
            out.status.success(),
            "ldapstack.sh {command} {} failed ({}):\n{}{}",
            self.dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// An entry read back: its DN and its attributes' values.
pub type Entry = (String, HashMap<String, Vec<String>>);

/// Unwrapped LDIF (`-o ldif-wrap=no`) into entries; `name:: base64` values decoded.
fn parse_ldif(text: &str) -> Vec<Entry> {
    let mut entries: Vec<Entry> = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let value = match rest.strip_prefix(':') {
            Some(b64) => String::from_utf8_lossy(&base64_decode(b64.trim())).into_owned(),
            None => rest.trim_start().to_string(),
        };
        if name.eq_ignore_ascii_case("dn") {
            entries.push((value, HashMap::new()));
        } else if let Some((_, attrs)) = entries.last_mut() {
            attrs.entry(name.to_string()).or_default().push(value);
        }
    }
    entries
}

fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => continue,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
