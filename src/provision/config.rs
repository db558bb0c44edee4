//! `[directory]`: where accounts really live, and how postroom reaches them.
//!
//! ```toml
//! [directory]
//! target = "ldap"                       # "none" (default): postroom's database is the directory
//! url = "ldaps://ldap.example.org"      # ldap:// with starttls = true, or ldaps://
//! mode = "openldap"                     # or "active_directory"
//! bind_dn = "cn=postroom,ou=services,dc=example,dc=org"
//! bind_password_file = "/etc/postroom/ldap-password"   # or POSTROOM_DIRECTORY_BIND_PASSWORD
//! people = "ou=people,dc=example,dc=org"   # where accounts are found and created
//! groups = "ou=groups,dc=example,dc=org"   # one group per shared mailbox: cn=<address>
//! owner_attribute = "owner"             # how owners are marked (the default), or instead:
//! owner_groups = "ou=owners,dc=example,dc=org"   # owners: members of cn=<address> there
//! ```
//!
//! Keys are flat (not `[directory.ldap]`) so that every one of them, the bind password above
//! all, can come from the environment as `POSTROOM_DIRECTORY_<KEY>`.

use crate::config_value::{ConfigError, parse_duration};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// What the file says.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDirectory {
    target: Option<String>,
    url: Option<String>,
    mode: Option<String>,
    starttls: Option<bool>,
    ca_file: Option<PathBuf>,
    bind_dn: Option<String>,
    bind_password: Option<String>,
    bind_password_file: Option<PathBuf>,
    people: Option<String>,
    groups: Option<String>,
    owner_attribute: Option<String>,
    owner_groups: Option<String>,
    timeout: Option<String>,
    command: Option<Vec<String>>,
    retry_for: Option<String>,
    reconcile_every: Option<String>,
    reconcile_repair: Option<Vec<String>>,
}

/// The checked section.
#[derive(Debug, Clone, Default)]
pub struct DirectoryConfig {
    pub target: Target,
    /// How long a change the target keeps refusing "for now" is retried before staff get it.
    pub retry_for: Duration,
    /// How often `postroom run` compares postroom's directory with the target's and reports
    /// the differences (`/metrics`, the staff page, the log); `None`: never (the default).
    /// It repairs only the kinds of difference `reconcile_repair` names (none by default).
    pub reconcile_every: Option<Duration>,
    /// What each reconcile repairs, by making the target agree with postroom
    /// (`provision::repair`); empty (the default): it reports, and people decide.
    pub reconcile_repair: Vec<DriftKind>,
}

/// The kinds of difference one can ask to have repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DriftKind {
    /// A membership only one side has: added to, or removed from, the target's group.
    Memberships,
    /// Member on one side, owner on the other: the target's role changed to postroom's.
    Roles,
    /// Active on one side, locked or disabled on the other: unlocked or disabled at the target.
    Statuses,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::Memberships => "memberships",
            DriftKind::Roles => "roles",
            DriftKind::Statuses => "statuses",
        }
    }
}

impl FromStr for DriftKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "memberships" => Ok(DriftKind::Memberships),
            "roles" => Ok(DriftKind::Roles),
            "statuses" => Ok(DriftKind::Statuses),
            other => Err(format!(
                "`{other}` is not a kind of difference (memberships, roles, statuses)"
            )),
        }
    }
}

impl DirectoryConfig {
    /// Whether changes are pushed to a target (and replies wait for them).
    pub fn provisions(&self) -> bool {
        match self.target {
            Target::None => false,
            Target::Ldap(_) | Target::Command(_) | Target::Manual => true,
        }
    }
}

/// Where changes go.
#[derive(Debug, Clone, Default)]
pub enum Target {
    /// postroom's database is the directory (as before issue 15).
    #[default]
    None,
    Ldap(LdapConfig),
    Command(CommandConfig),
    /// A person makes each change by hand from the steps on the staff page (Exchange
    /// Online's shared-mailbox permissions have no API), and says so there.
    Manual,
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::None => "none",
            Target::Ldap(_) => "ldap",
            Target::Command(_) => "command",
            Target::Manual => "manual",
        }
    }
}

/// The flavour of LDAP server: what "must change", "locked" and "disabled" are written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LdapMode {
    /// OpenLDAP with the ppolicy overlay: RFC 3062 Password Modify, `pwdReset`,
    /// `pwdAccountLockedTime`.
    OpenLdap,
    /// Active Directory (or Samba AD): `unicodePwd` (only over an encrypted connection),
    /// `pwdLastSet`, `lockoutTime`, `userAccountControl`.
    ActiveDirectory,
}

#[derive(Debug, Clone)]
pub struct LdapConfig {
    pub url: String,
    pub mode: LdapMode,
    pub starttls: bool,
    pub ca_file: Option<PathBuf>,
    pub bind_dn: String,
    pub bind_password: Secret,
    /// Base under which accounts are looked up (by `mail`) and created.
    pub people: String,
    /// Base under which each shared mailbox has its group, `cn=<mailbox address>`.
    pub groups: String,
    /// The group attribute that lists a mailbox's owners (each owner is a `member` too).
    pub owner_attribute: String,
    /// Instead of an attribute: a mailbox's owners are the members of the group
    /// `cn=<mailbox address>` under this base (each owner is a `member` of the mailbox's own
    /// group too). For Active Directory without Exchange's schema, whose `group` has no
    /// multi-valued owner attribute (`managedBy` holds one; `owner` is not allowed on it).
    pub owner_groups: Option<String>,
    /// Each connection and each operation is bounded by this.
    pub timeout: Duration,
}

impl LdapConfig {
    /// Whether the connection is encrypted (LDAPS, or StartTLS).
    pub fn encrypted(&self) -> bool {
        self.starttls || self.url.to_ascii_lowercase().starts_with("ldaps://")
    }
}

#[derive(Debug, Clone)]
pub struct CommandConfig {
    /// The program and its arguments.
    pub argv: Vec<String>,
    pub timeout: Duration,
}

fn key(k: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: format!("directory.{k}"),
        message: message.into(),
    }
}

fn required(value: Option<String>, k: &str, target: &str) -> Result<String, ConfigError> {
    match value.map(|v| v.trim().to_owned()) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(key(
            k,
            format!("missing: required with target = \"{target}\""),
        )),
    }
}

fn duration(value: Option<String>, k: &str, default: Duration) -> Result<Duration, ConfigError> {
    value.map_or(Ok(default), |v| parse_duration(&v).map_err(|e| key(k, e)))
}

/// Check the section.
pub fn check(mut raw: RawDirectory) -> Result<DirectoryConfig, ConfigError> {
    let retry_for = duration(
        raw.retry_for.clone(),
        "retry_for",
        Duration::from_secs(24 * 3600),
    )?;
    let reconcile_every = match raw.reconcile_every.clone() {
        None => None,
        Some(v) => {
            let d = parse_duration(&v).map_err(|e| key("reconcile_every", e))?;
            if d < Duration::from_secs(60) {
                return Err(key(
                    "reconcile_every",
                    "must be at least 1m: each pass reads the whole target",
                ));
            }
            Some(d)
        }
    };
    let reconcile_repair = raw
        .reconcile_repair
        .take()
        .unwrap_or_default()
        .iter()
        .map(|k| k.parse::<DriftKind>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| key("reconcile_repair", e))?;
    if !reconcile_repair.is_empty() && reconcile_every.is_none() {
        return Err(key(
            "reconcile_repair",
            "repairs happen on the reconcile: set reconcile_every too",
        ));
    }
    let target = match raw.target.as_deref().map(str::trim).unwrap_or("none") {
        "none" => Target::None,
        "manual" => Target::Manual,
        "ldap" => Target::Ldap(check_ldap(raw)?),
        "command" => {
            let argv = raw.command.unwrap_or_default();
            if argv.first().is_none_or(|p| p.trim().is_empty()) {
                return Err(key(
                    "command",
                    "missing: required with target = \"command\" (the program and its arguments, a list)",
                ));
            }
            Target::Command(CommandConfig {
                argv,
                timeout: duration(raw.timeout, "timeout", Duration::from_secs(30))?,
            })
        }
        other => {
            return Err(key(
                "target",
                format!("`{other}` is not a target (none, ldap, command or manual)"),
            ));
        }
    };
    if reconcile_every.is_some() && !matches!(target, Target::Ldap(_)) {
        return Err(key(
            "reconcile_every",
            "only an ldap target can be read back to compare",
        ));
    }
    Ok(DirectoryConfig {
        target,
        retry_for,
        reconcile_every,
        reconcile_repair,
    })
}

fn check_ldap(raw: RawDirectory) -> Result<LdapConfig, ConfigError> {
    let url = required(raw.url, "url", "ldap")?;
    let lower = url.to_ascii_lowercase();
    if !(lower.starts_with("ldap://") || lower.starts_with("ldaps://")) {
        return Err(key(
            "url",
            format!("`{url}` must start with ldap:// or ldaps://"),
        ));
    }
    let mode = match raw.mode.as_deref().map(str::trim).unwrap_or("openldap") {
        "openldap" => LdapMode::OpenLdap,
        "active_directory" => LdapMode::ActiveDirectory,
        other => {
            return Err(key(
                "mode",
                format!("`{other}` is not a mode (openldap or active_directory)"),
            ));
        }
    };
    let starttls = raw.starttls.unwrap_or(false);
    if starttls && lower.starts_with("ldaps://") {
        return Err(key(
            "starttls",
            "ldaps:// is encrypted already: drop starttls",
        ));
    }
    let bind_password = match (raw.bind_password, raw.bind_password_file) {
        (Some(_), Some(_)) => {
            return Err(key(
                "bind_password",
                "give `bind_password` or `bind_password_file`, not both",
            ));
        }
        (Some(p), None) => Secret::new(p),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                key(
                    "bind_password_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Secret::new(text.trim_end_matches(['\r', '\n']))
        }
        (None, None) => {
            return Err(key(
                "bind_password",
                "missing: give bind_password_file (or POSTROOM_DIRECTORY_BIND_PASSWORD)",
            ));
        }
    };
    // Active Directory takes a password only over an encrypted connection; refusing here says
    // so at start, not at the first reset. postroom refuses it even where a server would take
    // it (Samba 4.17 with `ldap server require strong auth = no` does): the password would
    // cross the network in clear.
    if mode == LdapMode::ActiveDirectory && !(starttls || lower.starts_with("ldaps://")) {
        return Err(key(
            "url",
            "Active Directory sets passwords (unicodePwd) only over an encrypted connection: use ldaps:// or starttls = true",
        ));
    }
    let owner_attribute = raw
        .owner_attribute
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty());
    let owner_groups = raw
        .owner_groups
        .map(|g| g.trim().to_owned())
        .filter(|g| !g.is_empty());
    match (&owner_attribute, &owner_groups, mode) {
        (Some(_), Some(_), _) => {
            return Err(key(
                "owner_groups",
                "owners are marked by `owner_attribute` or by `owner_groups`, not both",
            ));
        }
        // AD's `group` class allows no `owner`: the default would fail at the first owner.
        (None, None, LdapMode::ActiveDirectory) => {
            return Err(key(
                "owner_groups",
                "missing: Active Directory groups have no multi-valued owner attribute; name a container for the owners' groups (owner_groups), or an attribute your schema has (owner_attribute, e.g. msExchCoManagedByLink)",
            ));
        }
        _ => {}
    }
    let cfg = LdapConfig {
        url,
        mode,
        starttls,
        ca_file: raw.ca_file,
        bind_dn: required(raw.bind_dn, "bind_dn", "ldap")?,
        bind_password,
        people: required(raw.people, "people", "ldap")?,
        groups: required(raw.groups, "groups", "ldap")?,
        owner_attribute: owner_attribute
            .clone()
            .unwrap_or_else(|| "owner".to_owned()),
        owner_groups: owner_groups.clone(),
        timeout: duration(raw.timeout, "timeout", Duration::from_secs(10))?,
    };
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawDirectory {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn none_is_the_default_and_unknown_targets_name_the_key() {
        assert!(matches!(check(raw("")).unwrap().target, Target::None));
        let e = check(raw("target = \"graph\"")).unwrap_err().to_string();
        assert!(e.contains("directory.target") && e.contains("graph"), "{e}");
    }

    #[test]
    fn ldap_needs_its_keys_and_active_directory_refuses_plain_ldap() {
        let e = check(raw("target = \"ldap\"")).unwrap_err().to_string();
        assert!(e.contains("directory.url"), "{e}");
        let base = "target = \"ldap\"\nbind_dn = \"cn=a\"\nbind_password = \"pw\"\npeople = \"ou=p\"\ngroups = \"ou=g\"\n";
        let ok = check(raw(&format!("{base}url = \"ldap://127.0.0.1:389\""))).unwrap();
        assert!(
            matches!(ok.target, Target::Ldap(ref l) if l.mode == LdapMode::OpenLdap && !l.encrypted())
        );
        let e = check(raw(&format!(
            "{base}url = \"ldap://dc.example.org\"\nmode = \"active_directory\""
        )))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("directory.url") && e.contains("encrypted"),
            "{e}"
        );
        let ok = check(raw(&format!(
            "{base}url = \"ldaps://dc.example.org\"\nmode = \"active_directory\"\nowner_groups = \"ou=o\""
        )))
        .unwrap();
        assert!(matches!(ok.target, Target::Ldap(ref l) if l.encrypted()));
        let e = check(raw(&format!(
            "{base}url = \"ldap://x\"\nbind_password_file = \"/x\""
        )))
        .unwrap_err()
        .to_string();
        assert!(e.contains("not both"), "{e}");
    }

    #[test]
    fn owners_are_marked_one_way_and_active_directory_must_say_which() {
        let base = "target = \"ldap\"\nbind_dn = \"cn=a\"\nbind_password = \"pw\"\npeople = \"ou=p\"\ngroups = \"ou=g\"\n";
        let ldap = |extra: &str| check(raw(&format!("{base}{extra}")));
        let ok = ldap("url = \"ldap://x\"").unwrap();
        assert!(
            matches!(ok.target, Target::Ldap(ref l) if l.owner_attribute == "owner" && l.owner_groups.is_none())
        );
        let e = ldap("url = \"ldap://x\"\nowner_attribute = \"owner\"\nowner_groups = \"ou=o\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("directory.owner_groups") && e.contains("not both"),
            "{e}"
        );
        let e = ldap("url = \"ldaps://dc\"\nmode = \"active_directory\"")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("directory.owner_groups") && e.contains("missing"),
            "{e}"
        );
        let ok =
            ldap("url = \"ldaps://dc\"\nmode = \"active_directory\"\nowner_groups = \" ou=o \"")
                .unwrap();
        assert!(
            matches!(ok.target, Target::Ldap(ref l) if l.owner_groups.as_deref() == Some("ou=o"))
        );
        let ok = ldap("url = \"ldaps://dc\"\nmode = \"active_directory\"\nowner_attribute = \"msExchCoManagedByLink\"")
            .unwrap();
        assert!(
            matches!(ok.target, Target::Ldap(ref l) if l.owner_attribute == "msExchCoManagedByLink")
        );
    }

    #[test]
    fn the_reconcile_repairs_only_the_kinds_it_is_told() {
        let base = "target = \"ldap\"\nurl = \"ldap://x\"\nbind_dn = \"cn=a\"\nbind_password = \"pw\"\npeople = \"ou=p\"\ngroups = \"ou=g\"\n";
        let cfg = check(raw(&format!("{base}reconcile_every = \"1h\""))).unwrap();
        assert!(cfg.reconcile_repair.is_empty());
        let cfg = check(raw(&format!(
            "{base}reconcile_every = \"1h\"\nreconcile_repair = [\"memberships\", \"roles\"]"
        )))
        .unwrap();
        assert_eq!(
            cfg.reconcile_repair,
            vec![DriftKind::Memberships, DriftKind::Roles]
        );
        let e = check(raw(&format!("{base}reconcile_repair = [\"roles\"]")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("directory.reconcile_repair") && e.contains("reconcile_every"),
            "{e}"
        );
        let e = check(raw(&format!(
            "{base}reconcile_every = \"1h\"\nreconcile_repair = [\"everything\"]"
        )))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("directory.reconcile_repair") && e.contains("everything"),
            "{e}"
        );
    }

    #[test]
    fn the_bind_password_is_not_printed() {
        let base = "target = \"ldap\"\nurl = \"ldap://x\"\nbind_dn = \"cn=a\"\nbind_password = \"hunter2-secret\"\npeople = \"ou=p\"\ngroups = \"ou=g\"\n";
        let cfg = check(raw(base)).unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
