//! Configuration in two visible steps: the raw TOML (serde, unknown keys refused) and the
//! checked [`Config`] the rest of postroom uses. A bad config names the key and exits.
//!
//! Any key can be overridden from the environment as `POSTROOM_<SECTION>_<KEY>`, e.g.
//! `POSTROOM_DATABASE_URL` or `POSTROOM_HELPDESK_ADDRESS` (values are read as TOML when they
//! parse as such, else as strings).

// Each section's checked type, its raw form, its defaults and its check are the room's that
// uses it, or a leaf of their own when several rooms read it; `config` reads the file,
// overrides it from the environment and composes them. The sections' types are named here as
// before (`crate::config::ImapConfig`), so that callers need not know where each lives. The
// sections import low modules only (`config_value`: the key error and the value readers),
// never this one, so no import runs in a circle (issue 14).
pub use crate::audit::config::AuditConfig;
pub use crate::config_value::{ConfigError, TlsMode, looks_like_address, parse_duration};
pub use crate::confirm_config::ConfirmationConfig;
pub use crate::continuity_config::ContinuityConfig;
pub use crate::helpdesk::HelpdeskConfig;
pub use crate::imap::config::{DEFAULT_MAX_MESSAGE_BYTES, ImapConfig, LeaseConfig};
pub use crate::lmtp::config::{LmtpConfig, LmtpListen};
pub use crate::oauth::Auth;
pub use crate::ops::config::RetentionConfig;
pub use crate::policy_config::{LimitsConfig, PolicyConfig};
pub use crate::queue_config::QueueConfig;
pub use crate::secret::Secret;
pub use crate::smtp::config::SmtpConfig;
pub use crate::store::DatabaseConfig;
pub use crate::web::config::WebConfig;

use crate::audit::config::{RawAudit, check_audit};
use crate::config_value::key_err;
use crate::confirm_config::{RawConfirmation, check_confirmation};
use crate::continuity_config::{RawContinuity, check_continuity};
use crate::helpdesk::{RawHelpdesk, check_helpdesk};
use crate::imap::config::{check_imaps, check_lease};
use crate::lmtp::config::{RawLmtp, check_lmtp};
use crate::ops::config::{RawRetention, check_retention};
use crate::policy_config::{RawLimits, RawPolicy, check_limits, check_policy};
use crate::queue_config::{RawQueue, check_queue};
use crate::smtp::config::{RawSmtp, check_smtp};
use crate::trust::{RawTrust, TrustConfig, check_trust};
use crate::web::config::{RawWeb, check_web};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Raw: what the file says.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    database: RawDatabase,
    helpdesk: Option<RawHelpdesk>,
    /// A role per kind, and the `requester_from_signature` switch (a boolean).
    #[serde(default)]
    policy: RawPolicy,
    /// `[imap]` (one inbox) or `[[imap]]` (several): read by `imap::config::check_imaps`, so
    /// that an error names the entry (`imap[1].host`).
    imap: Option<toml::Value>,
    smtp: Option<RawSmtp>,
    lmtp: Option<RawLmtp>,
    #[serde(default)]
    trust: RawTrust,
    #[serde(default)]
    confirmation: RawConfirmation,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    web: RawWeb,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    continuity: RawContinuity,
    #[serde(default)]
    directory: crate::provision::config::RawDirectory,
    #[serde(default)]
    queue: RawQueue,
    #[serde(default)]
    runtime: crate::cpu::RawRuntime,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
    max_connections: Option<u32>,
    acquire_timeout: Option<String>,
    lease_ttl: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Checked: what postroom runs with.

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub helpdesk: HelpdeskConfig,
    pub policy: PolicyConfig,
    /// The inboxes to watch: one `[imap]` table, or one per `[[imap]]` entry. Empty when the
    /// file has neither (`run` then refuses to start).
    pub imap: Vec<ImapConfig>,
    /// How instances share the inboxes (`[database] lease_ttl`).
    pub lease: LeaseConfig,
    pub smtp: Option<SmtpConfig>,
    /// The LMTP listener (`[lmtp]`, src/lmtp/config.rs): off when absent.
    pub lmtp: Option<LmtpConfig>,
    pub trust: TrustConfig,
    pub confirmation: ConfirmationConfig,
    pub limits: LimitsConfig,
    pub web: WebConfig,
    pub retention: RetentionConfig,
    pub audit: AuditConfig,
    pub continuity: ContinuityConfig,
    /// Where accounts really live (`[directory]`, src/provision/config.rs).
    pub directory: crate::provision::DirectoryConfig,
    /// Working hours and targets of the review queue (`[queue]`, src/queue_config.rs).
    pub queue: QueueConfig,
    /// Where the daemon's threads run (`[runtime]`, src/cpu.rs).
    pub runtime: crate::cpu::RuntimeConfig,
}

impl Config {
    /// The largest message handled whole (`[imap] max_message_bytes` of the first inbox, or
    /// its default): the same limit for `process` as for the IMAP watcher.
    pub fn max_message_bytes(&self) -> u64 {
        self.imap
            .first()
            .map_or(DEFAULT_MAX_MESSAGE_BYTES, |i| i.max_message_bytes)
    }

    /// Read, override from the environment, and check.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ConfigError::Missing {
                    path: path.to_owned(),
                });
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| k.starts_with("POSTROOM_"))
            .collect();
        Config::from_toml_with_env(&text, &env).map_err(|e| match e {
            ConfigError::Invalid { message, .. } => ConfigError::Invalid {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parse TOML text, apply `POSTROOM_<SECTION>_<KEY>` overrides, and check.
    pub fn from_toml_with_env(text: &str, env: &[(String, String)]) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: PathBuf::from("(text)"),
            message,
        };
        let mut table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        apply_env_overrides(&mut table, env);
        let raw: RawConfig = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        Config::check(raw)
    }

    /// Each section in turn, in this order: the first error is the one reported. A new
    /// section is a field of [`RawConfig`] and of [`Config`], its name in the list of
    /// [`apply_env_overrides`], and one line here.
    fn check(mut raw: RawConfig) -> Result<Config, ConfigError> {
        let helpdesk = check_helpdesk(raw.helpdesk)?;
        let policy = check_policy(&raw.policy)?;
        // `[database] lease_ttl` is the inbox lease's; the rest of the section is the store's.
        let lease_ttl = raw.database.lease_ttl.take();
        let database = check_database(raw.database)?;
        let lease = check_lease(lease_ttl)?;
        let imap = check_imaps(raw.imap)?;
        let smtp = raw
            .smtp
            .map(|r| check_smtp(r, &helpdesk.address))
            .transpose()?;
        let lmtp = raw
            .lmtp
            .map(|r| check_lmtp(r, &helpdesk.address))
            .transpose()?;
        let trust = check_trust(raw.trust)?;
        let confirmation = check_confirmation(raw.confirmation)?;
        let limits = check_limits(raw.limits);
        let web = check_web(raw.web)?;
        let retention = check_retention(raw.retention)?;
        let inboxes: Vec<&str> = imap.iter().map(|i| i.username.as_str()).collect();
        let audit = check_audit(raw.audit, &helpdesk.address, &inboxes)?;
        let continuity = check_continuity(raw.continuity)?;
        let directory = crate::provision::config::check(raw.directory)?;
        let queue = check_queue(raw.queue)?;
        let runtime = crate::cpu::check_runtime(raw.runtime)?;
        Ok(Config {
            queue,
            runtime,
            directory,
            database,
            helpdesk,
            policy,
            imap,
            lease,
            smtp,
            lmtp,
            trust,
            confirmation,
            limits,
            web,
            retention,
            audit,
            continuity,
        })
    }
}

/// `[database]` but for `lease_ttl`: [`DatabaseConfig`] is the store's, which keeps no config
/// checks of its own.
fn check_database(raw: RawDatabase) -> Result<DatabaseConfig, ConfigError> {
    let url = raw.url.unwrap_or_else(|| "sqlite://postroom.db".to_owned());
    if !(url.starts_with("sqlite:")
        || url.starts_with("postgres:")
        || url.starts_with("postgresql:"))
    {
        return Err(key_err(
            "database.url",
            format!("`{url}` must start with sqlite: or postgres:"),
        ));
    }
    let acquire_timeout = match raw.acquire_timeout {
        Some(s) => parse_duration(&s).map_err(|e| key_err("database.acquire_timeout", e))?,
        None => Duration::from_secs(30),
    };
    Ok(DatabaseConfig {
        url,
        max_connections: raw.max_connections.unwrap_or(5).max(1),
        acquire_timeout,
    })
}

/// A warning when the config file holds a secret and every user on the machine can read it.
pub fn exposed_secret_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    if mode & 0o004 == 0 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let holds_secret = text.lines().any(|l| {
        let l = l.trim_start();
        !l.starts_with('#')
            && (l.starts_with("password =")
                || l.starts_with("password=")
                || l.starts_with("client_secret"))
    });
    holds_secret.then(|| {
        format!(
            "{} holds a password and every user on this machine can read it (mode {:o}): chmod 600 it, or move the secret to password_file or POSTROOM_<SECTION>_PASSWORD",
            path.display(),
            mode & 0o777
        )
    })
}

/// `POSTROOM_DATABASE_URL=…` sets `[database] url`. Sections are the top-level tables of the
/// known config (single words), so the split between section and key is unambiguous.
///
/// With `[[imap]]` entries, `POSTROOM_IMAP_<N>_<KEY>` sets a key of entry N (from 0), and
/// `POSTROOM_IMAP_<KEY>` is the value for every entry that does not set the key itself: the
/// deploy units pass one `POSTROOM_IMAP_PASSWORD_FILE`, which must not replace the password
/// files of inboxes that have their own. An indexed variable wins over the plain one.
fn apply_env_overrides(table: &mut toml::Table, env: &[(String, String)]) {
    const SECTIONS: &[&str] = &[
        "database",
        "helpdesk",
        "policy",
        "imap",
        "smtp",
        "lmtp",
        "trust",
        "confirmation",
        "limits",
        "web",
        "retention",
        "audit",
        "continuity",
        "directory",
        "queue",
        "runtime",
    ];
    // (section, entry index, key, value); plain ones first so that indexed ones win.
    let mut overrides: Vec<(&str, Option<usize>, String, toml::Value)> = Vec::new();
    for (name, value) in env {
        let Some(rest) = name.strip_prefix("POSTROOM_") else {
            continue;
        };
        let rest = rest.to_ascii_lowercase();
        let Some(section) = SECTIONS.iter().find(|s| {
            rest.strip_prefix(*s)
                .is_some_and(|r| r.starts_with('_') && r.len() > 1)
        }) else {
            continue;
        };
        let key = &rest[section.len() + 1..];
        let parsed = format!("v = {value}")
            .parse::<toml::Table>()
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.clone()));
        let (index, key) = match key
            .split_once('_')
            .and_then(|(n, k)| Some((n.parse::<usize>().ok()?, k)))
        {
            Some((n, k)) if !k.is_empty() => (Some(n), k),
            _ => (None, key),
        };
        overrides.push((section, index, key.to_owned(), parsed));
    }
    overrides.sort_by_key(|(_, index, _, _)| index.is_some());
    for (section, index, key, value) in overrides {
        let entry = table
            .entry(section.to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match (entry, index) {
            (toml::Value::Table(t), None | Some(0)) => {
                t.insert(key, value);
            }
            (toml::Value::Array(list), None) => {
                for item in list.iter_mut() {
                    if let toml::Value::Table(t) = item
                        && !sets_itself(t, &key)
                    {
                        t.insert(key.clone(), value.clone());
                    }
                }
            }
            (toml::Value::Array(list), Some(n)) => {
                if let Some(toml::Value::Table(t)) = list.get_mut(n) {
                    t.insert(key, value);
                }
            }
            _ => {}
        }
    }
}

/// Whether an `[[imap]]` entry gives `key` itself; a password (inline or in a file) counts
/// for both password keys, and an `xoauth2` entry needs none.
fn sets_itself(entry: &toml::Table, key: &str) -> bool {
    match key {
        "password" | "password_file" => {
            entry.contains_key("password")
                || entry.contains_key("password_file")
                || entry.get("auth").and_then(toml::Value::as_str) == Some("xoauth2")
        }
        _ => entry.contains_key(key),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{RequestKind, Role};

    const MINIMAL: &str = "[helpdesk]\naddress = \"Helpdesk@NHS.example\"\n";

    #[test]
    fn minimal_config_has_defaults() {
        let c = Config::from_toml_with_env(MINIMAL, &[]).unwrap();
        assert_eq!(c.helpdesk.address, "helpdesk@nhs.example");
        assert_eq!(c.helpdesk.reference_prefix, "HD");
        assert_eq!(c.database.url, "sqlite://postroom.db");
        assert_eq!(c.policy.required_role(RequestKind::Leaver), Role::Owner);
    }

    #[test]
    fn lmtp_is_off_unless_configured_and_set_from_the_environment_alone() {
        assert!(
            Config::from_toml_with_env(MINIMAL, &[])
                .unwrap()
                .lmtp
                .is_none()
        );
        let env = [(
            "POSTROOM_LMTP_LISTEN".to_owned(),
            "127.0.0.1:2424".to_owned(),
        )];
        let l = Config::from_toml_with_env(MINIMAL, &env)
            .unwrap()
            .lmtp
            .unwrap();
        assert_eq!(l.listen, LmtpListen::Tcp("127.0.0.1:2424".parse().unwrap()));
        assert_eq!(l.recipients, ["helpdesk@nhs.example"]);
    }

    #[test]
    fn env_overrides_a_key() {
        let env = vec![
            (
                "POSTROOM_DATABASE_URL".to_owned(),
                "sqlite://other.db".to_owned(),
            ),
            (
                "POSTROOM_HELPDESK_REFERENCE_PREFIX".to_owned(),
                "REQ".to_owned(),
            ),
            ("POSTROOM_CONFIG".to_owned(), "ignored.toml".to_owned()),
        ];
        let c = Config::from_toml_with_env(MINIMAL, &env).unwrap();
        assert_eq!(c.database.url, "sqlite://other.db");
        assert_eq!(c.helpdesk.reference_prefix, "REQ");
    }

    #[test]
    fn bad_config_names_the_key() {
        let text = format!("{MINIMAL}[policy]\npassword_reset = \"boss\"\n");
        let err = Config::from_toml_with_env(&text, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("policy.password_reset"), "{err}");

        let text = format!("{MINIMAL}[policy]\nreset = \"owner\"\n");
        let err = Config::from_toml_with_env(&text, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("policy.reset"), "{err}");

        let err = Config::from_toml_with_env("[helpdesk]\naddres = \"x@y.z\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("addres"), "{err}");

        let err = Config::from_toml_with_env("", &[]).unwrap_err().to_string();
        assert!(err.contains("helpdesk.address"), "{err}");
    }

    #[test]
    fn imap_and_smtp_sections() {
        let text = format!(
            "{MINIMAL}[imap]\nhost = \"127.0.0.1\"\nport = 1143\ntls = \"none\"\nusername = \"helpdesk\"\npassword = \"pw\"\npoll_interval = \"5s\"\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = 2525\ntls = \"none\"\n"
        );
        let c = Config::from_toml_with_env(
            &text,
            &[("POSTROOM_IMAP_PASSWORD".into(), "from-env".into())],
        )
        .unwrap();
        let imap = c.imap.into_iter().next().unwrap();
        assert_eq!(imap.key, "imap");
        assert_eq!(imap.password.expose(), "from-env");
        assert_eq!(imap.poll_interval, Duration::from_secs(5));
        assert_eq!(imap.folder, "INBOX");
        assert!(
            !format!("{imap:?}").contains("from-env"),
            "secrets are never printed"
        );
        let smtp = c.smtp.unwrap();
        assert_eq!(smtp.from, "helpdesk@nhs.example");
        assert_eq!(smtp.port, 2525);

        let bad = format!(
            "{MINIMAL}[imap]\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\nidle_timeout = \"30m\"\n"
        );
        let err = Config::from_toml_with_env(&bad, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("imap.idle_timeout"), "{err}");
        let bad = format!("{MINIMAL}[imap]\nhost = \"h\"\nusername = \"u\"\n");
        let err = Config::from_toml_with_env(&bad, &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("imap.password"), "{err}");
    }

    #[test]
    fn audit_keys_are_checked_and_named() {
        let base = "[helpdesk]\naddress = \"helpdesk@nhs.example\"\n[audit]\n";
        let err = |extra: &str| {
            Config::from_toml_with_env(&format!("{base}{extra}"), &[])
                .unwrap_err()
                .to_string()
        };
        let e = err("signing_key_file = \"k\"\ncheckpoint_every = \"10s\"\n");
        assert!(e.contains("audit.checkpoint_every"), "{e}");
        let e = err("signing_key_file = \"k\"\ncheckpoint_to = \"Helpdesk@nhs.example\"\n");
        assert!(
            e.contains("audit.checkpoint_to") && e.contains("outside"),
            "{e}"
        );
        let e = err("checkpoint_to = \"archive@records.nhs.example\"\n");
        assert!(e.contains("signing_key_file"), "{e}");
        let e = err("signing_key_file = \"k\"\ncheckpoint_to = \"not an address\"\n");
        assert!(e.contains("not an email address"), "{e}");
        let c = Config::from_toml_with_env(
            &format!(
                "{base}signing_key_file = \"k\"\ncheckpoint_to = \"Archive@Records.nhs.example\"\n"
            ),
            &[],
        )
        .unwrap();
        assert_eq!(
            c.audit.checkpoint_to.as_deref(),
            Some("archive@records.nhs.example")
        );
        assert_eq!(c.audit.checkpoint_every, Duration::from_secs(3600));

        // The example config's commented [audit] keys are valid as written.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/postroom.example.toml");
        let text = std::fs::read_to_string(path)
            .unwrap()
            .replace("password_file = ", "# password_file = ");
        let mut text = text.replacen("# signing_key_file = ", "signing_key_file = ", 1);
        for k in ["checkpoint_every", "checkpoint_to"] {
            text = text.replacen(&format!("# {k} = "), &format!("{k} = "), 1);
        }
        let env = [
            ("POSTROOM_IMAP_PASSWORD".to_owned(), "x".to_owned()),
            ("POSTROOM_SMTP_PASSWORD".to_owned(), "y".to_owned()),
        ];
        let c = Config::from_toml_with_env(&text, &env).unwrap();
        assert!(c.audit.signing_key_file.is_some() && c.audit.checkpoint_to.is_some());
    }

    #[test]
    fn the_example_config_documents_valid_keys() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/postroom.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        // The example points password_file at /etc; give the passwords by environment instead.
        let text = text.replace("password_file = ", "# password_file = ");
        let env = [
            ("POSTROOM_IMAP_PASSWORD".to_owned(), "x".to_owned()),
            ("POSTROOM_SMTP_PASSWORD".to_owned(), "y".to_owned()),
        ];
        let c = Config::from_toml_with_env(&text, &env).unwrap();
        assert!(c.imap.len() == 1 && c.smtp.is_some());
        assert_eq!(c.trust.authserv_ids, vec!["mx.nhs.example".to_owned()]);
        // The commented XOAUTH2 example of [imap] is valid too.
        let text = text
            .replacen("# auth = \"xoauth2\"", "auth = \"xoauth2\"", 1)
            .replacen("# token_command = ", "token_command = ", 1);
        let c = Config::from_toml_with_env(&text, &env).unwrap();
        assert!(matches!(c.imap[0].auth, Auth::Xoauth2(_)));
    }

    #[test]
    fn xoauth2_keys_are_checked_and_named() {
        let imap = "[imap]\nhost = \"h\"\nusername = \"u\"\n";
        let err = |extra: &str| {
            Config::from_toml_with_env(&format!("{MINIMAL}{imap}{extra}"), &[])
                .unwrap_err()
                .to_string()
        };
        // No password needed, one token source required.
        let c = Config::from_toml_with_env(
            &format!("{MINIMAL}{imap}auth = \"xoauth2\"\ntoken_command = \"echo t\"\n"),
            &[],
        )
        .unwrap();
        assert_eq!(
            c.imap[0].auth.describe(),
            "xoauth2, token from token_command"
        );
        assert!(err("auth = \"xoauth2\"\n").contains("imap.auth"));
        let e = err(
            "auth = \"xoauth2\"\noauth2 = { token_url = \"http://idp.example/token\", client_id = \"c\", client_secret = \"s\" }\n",
        );
        assert!(e.contains("imap.oauth2.token_url"), "{e}");
        let e = err(
            "auth = \"xoauth2\"\noauth2 = { token_url = \"https://idp.example/token\", client_id = \"c\" }\n",
        );
        assert!(e.contains("imap.oauth2.client_secret_file"), "{e}");
        let e = err(
            "oauth2 = { token_url = \"https://idp.example/token\", client_id = \"c\", client_secret = \"s\" }\npassword = \"p\"\n",
        );
        assert!(e.contains("imap.oauth2"), "{e}");
        let c = Config::from_toml_with_env(
            &format!("{MINIMAL}{imap}auth = \"xoauth2\"\noauth2 = {{ token_url = \"http://127.0.0.1:8080/token\", client_id = \"c\", client_secret = \"s\" }}\n"),
            &[],
        )
        .unwrap();
        assert_eq!(
            c.imap[0].auth.describe(),
            "xoauth2, token from http://127.0.0.1:8080/token"
        );
        // SMTP: the account name is still needed, a password is not.
        let smtp = "[smtp]\nhost = \"s\"\nauth = \"xoauth2\"\ntoken_command = \"echo t\"\n";
        let e = Config::from_toml_with_env(&format!("{MINIMAL}{smtp}"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("smtp.username"), "{e}");
        let c =
            Config::from_toml_with_env(&format!("{MINIMAL}{smtp}username = \"u\"\n"), &[]).unwrap();
        let s = c.smtp.unwrap();
        assert!(matches!(s.auth, Auth::Xoauth2(_)) && s.password.is_none());
    }

    const TWO_INBOXES: &str = "[[imap]]\nhost = \"imap.nhs.example\"\nusername = \"north\"\n\
         [[imap]]\nhost = \"imap.nhs.example\"\nusername = \"south\"\nfolder = \"Requests\"\n\
         processed = \"Done\"\n";

    #[test]
    fn several_inboxes_each_with_its_own_folders() {
        let text = format!("{MINIMAL}{TWO_INBOXES}");
        let env = [("POSTROOM_IMAP_PASSWORD".to_owned(), "shared".to_owned())];
        let c = Config::from_toml_with_env(&text, &env).unwrap();
        assert_eq!(c.imap.len(), 2);
        let (north, south) = (&c.imap[0], &c.imap[1]);
        assert_eq!(
            (north.key.as_str(), south.key.as_str()),
            ("imap[0]", "imap[1]")
        );
        assert_eq!(north.folder, "INBOX");
        assert_eq!(north.processed, "postroom/processed");
        assert_eq!(
            (south.folder.as_str(), south.processed.as_str()),
            ("Requests", "Done")
        );
        // POSTROOM_IMAP_<KEY> goes to every inbox…
        assert_eq!(north.password.expose(), "shared");
        assert_eq!(south.password.expose(), "shared");
        assert_eq!(north.inbox_id(), "north@imap.nhs.example/INBOX");
        assert_eq!(south.inbox_id(), "south@imap.nhs.example/Requests");

        // …and POSTROOM_IMAP_<N>_<KEY> to one, whatever the order of the variables.
        let env = [
            (
                "POSTROOM_IMAP_1_PASSWORD".to_owned(),
                "south-only".to_owned(),
            ),
            ("POSTROOM_IMAP_PASSWORD".to_owned(), "shared".to_owned()),
            ("POSTROOM_IMAP_0_POLL_INTERVAL".to_owned(), "7s".to_owned()),
        ];
        let c = Config::from_toml_with_env(&text, &env).unwrap();
        assert_eq!(c.imap[0].password.expose(), "shared");
        assert_eq!(c.imap[1].password.expose(), "south-only");
        assert_eq!(c.imap[0].poll_interval, Duration::from_secs(7));
        assert_eq!(c.imap[1].poll_interval, Duration::from_secs(60));

        // An entry's own password is not replaced by the variable meant for the others.
        let own = text.replace(
            "folder = \"Requests\"",
            "folder = \"Requests\"\npassword = \"own\"",
        );
        let env = [("POSTROOM_IMAP_PASSWORD".to_owned(), "shared".to_owned())];
        let c = Config::from_toml_with_env(&own, &env).unwrap();
        assert_eq!(c.imap[0].password.expose(), "shared");
        assert_eq!(c.imap[1].password.expose(), "own");
    }

    #[test]
    fn lease_ttl_has_a_default_and_bounds() {
        let c = Config::from_toml_with_env(MINIMAL, &[]).unwrap();
        assert_eq!(c.lease.ttl, Duration::from_secs(20));
        assert_eq!(c.lease.renew_every(), Duration::from_secs(5));
        assert_eq!(c.lease.give_up_after(), Duration::from_secs(15));
        assert!(c.imap.is_empty());
        let text = format!("[database]\nlease_ttl = \"30s\"\n{MINIMAL}");
        let c = Config::from_toml_with_env(&text, &[]).unwrap();
        assert_eq!(c.lease.ttl, Duration::from_secs(30));
        for bad in ["1s", "1h", "soon"] {
            let text = format!("[database]\nlease_ttl = \"{bad}\"\n{MINIMAL}");
            let e = Config::from_toml_with_env(&text, &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains("database.lease_ttl"), "{e}");
        }
    }

    /// The example's commented `[queue]` keys are valid as written, and an error through the
    /// whole config names its key (issue 17).
    #[test]
    fn the_example_config_documents_the_queue() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/postroom.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let (before, queue) = text.split_once("\n[queue]\n").expect("a [queue] section");
        let queue: String = queue
            .lines()
            .map(|l| match l.strip_prefix("# ") {
                Some(k) if k.contains(" = ") || k.starts_with('[') => format!("{k}\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        let text =
            format!("{before}\n[queue]\n{queue}").replace("password_file = ", "# password_file = ");
        let env = [
            ("POSTROOM_IMAP_PASSWORD".to_owned(), "x".to_owned()),
            ("POSTROOM_SMTP_PASSWORD".to_owned(), "y".to_owned()),
            (
                "POSTROOM_QUEUE_NOTIFY".to_owned(),
                "leads@helpdesk.example".to_owned(),
            ),
        ];
        let c = Config::from_toml_with_env(&text, &env).unwrap();
        assert_eq!(c.queue.notify.as_deref(), Some("leads@helpdesk.example"));
        assert_eq!(
            c.queue
                .target_ms(crate::request::RequestKind::PasswordReset),
            Some(3_600_000)
        );
        // Monday to Thursday are 10 hours: one working day.
        assert_eq!(
            c.queue.target_ms(crate::request::RequestKind::NewAccount),
            Some(36_000_000)
        );
        let bad = text.replace("unknown = \"4h\"", "unknown = \"whenever\"");
        let e = Config::from_toml_with_env(&bad, &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`queue.targets.unknown`"), "{e}");
    }

    /// The commented `[[imap]]` example of the example config, in place of its `[imap]`.
    #[test]
    fn the_example_config_documents_several_inboxes() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/postroom.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let example: String = text
            .lines()
            .skip_while(|l| *l != "# [[imap]]")
            .take_while(|l| l.starts_with('#'))
            .map(|l| format!("{}\n", l.trim_start_matches('#').trim_start()))
            .collect();
        assert!(example.contains("[[imap]]"), "no [[imap]] example");
        let mut without_imap = String::new();
        let mut in_imap = false;
        for line in text.lines() {
            if line.starts_with('[') {
                in_imap = line == "[imap]";
            }
            if !in_imap {
                without_imap.push_str(line);
                without_imap.push('\n');
            }
        }
        let text =
            format!("{without_imap}\n{example}").replace("password_file = ", "# password_file = ");
        let env = [
            ("POSTROOM_IMAP_PASSWORD".to_owned(), "x".to_owned()),
            ("POSTROOM_SMTP_PASSWORD".to_owned(), "y".to_owned()),
        ];
        let c = Config::from_toml_with_env(&text, &env).unwrap();
        assert_eq!(c.imap.len(), 2);
        assert_eq!(c.imap[1].folder, "Requests");
        assert_eq!(c.imap[1].processed, "Requests/done");
        assert_eq!(c.imap[0].processed, "postroom/processed");
        assert_eq!(c.lease.ttl, Duration::from_secs(20));
    }
}
