//! Access to the throw-away Active Directory (a Samba 4.17 AD domain controller serving LDAP
//! on a loopback address of its own) that `tests/adstack/adstack.sh start DIR` runs and
//! describes in `DIR/env`. `scripts/test` starts it and exports `ADSTACK_ENV=DIR/env`.
//!
//! [`AdStack::require`] fails the test when the DC is missing and `CI` is set (`.ci/run` runs
//! `scripts/test`, which starts it); elsewhere it returns `None` and the test says, loudly,
//! that it skipped. Tests arrange and inspect the directory through `ldap3` bound as the
//! domain's Administrator over LDAPS; postroom's own connector is what they test.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

const HOW_TO_START: &str = "the test Active Directory is not running (ADSTACK_ENV unset). \
     Run the tests with `scripts/test`, or by hand, as root:\n    \
     tests/adstack/adstack.sh install\n    \
     a=$(mktemp -d) && tests/adstack/adstack.sh start $a && ADSTACK_ENV=$a/env cargo test --test integration -- provision_ad::\n    \
     tests/adstack/adstack.sh stop $a";

#[derive(Debug, Clone)]
pub struct AdStack {
    pub dir: PathBuf,
    /// `ldap://ADDR`: plain LDAP, where the DC refuses simple binds.
    pub url: String,
    /// `ldaps://ADDR`, its certificate signed by [`ca`](Self::ca).
    pub ldaps_url: String,
    pub ca: PathBuf,
    pub base: String,
    pub people: String,
    pub groups: String,
    /// postroom's service account: full control of `people` and `groups` only.
    pub bind_dn: String,
    pub bind_password_file: PathBuf,
    pub admin_dn: String,
    pub admin_password_file: PathBuf,
}

fn parse_env_file(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("adstack: read {}: {e}", path.display()));
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

impl AdStack {
    pub fn from_env() -> Option<AdStack> {
        let path = std::env::var_os("ADSTACK_ENV").filter(|v| !v.is_empty())?;
        let vars = parse_env_file(Path::new(&path));
        let get = |name: &str| {
            vars.get(name)
                .filter(|v| !v.is_empty())
                .cloned()
                .unwrap_or_else(|| panic!("adstack: {name} missing from {path:?}"))
        };
        Some(AdStack {
            dir: get("ADSTACK_DIR").into(),
            url: get("ADSTACK_URL"),
            ldaps_url: get("ADSTACK_LDAPS_URL"),
            ca: get("ADSTACK_CA").into(),
            base: get("ADSTACK_BASE"),
            people: get("ADSTACK_PEOPLE"),
            groups: get("ADSTACK_GROUPS"),
            bind_dn: get("ADSTACK_BIND_DN"),
            bind_password_file: get("ADSTACK_BIND_PASSWORD_FILE").into(),
            admin_dn: get("ADSTACK_ADMIN_DN"),
            admin_password_file: get("ADSTACK_ADMIN_PASSWORD_FILE").into(),
        })
    }

    /// The DC, or `None` (with a loud line) outside CI when it is not running.
    pub fn require() -> Option<AdStack> {
        match AdStack::from_env() {
            Some(s) => Some(s),
            None if std::env::var_os("CI").is_some() => panic!("{HOW_TO_START}"),
            None => {
                eprintln!("\n*** SKIPPED: {HOW_TO_START} ***\n");
                None
            }
        }
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("adstack: read {}: {e}", path.display()))
            .trim()
            .to_owned()
    }

    pub fn bind_password(&self) -> String {
        AdStack::read(&self.bind_password_file)
    }

    pub fn admin_password(&self) -> String {
        AdStack::read(&self.admin_password_file)
    }
}
