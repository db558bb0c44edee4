//! The `[imap]` / `[[imap]]` section (the inboxes the watchers work) and the inbox lease: the
//! checked data, the file's raw form, the defaults and the checks. The section is this room's;
//! `config` reads the file and composes it, and this module imports only low ones (the key
//! error and value readers, auth, secrets, outcomes), never `config` (issue 14).

use crate::config_value::{ConfigError, TlsMode, duration_key, key_err, secret_key};
use crate::oauth::{Auth, AuthKind, RawOauth2, check_auth};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ImapConfig {
    /// Where this inbox sits in the config, for messages: `imap` or `imap[2]`.
    pub key: String,
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    /// Empty with `auth = "xoauth2"`.
    pub password: Secret,
    pub auth: Auth,
    /// Extra CA certificate (PEM) to trust, e.g. a test server's self-signed one.
    pub ca_file: Option<PathBuf>,
    /// The folder watched for requests.
    pub folder: String,
    /// Where a message goes once its transaction has committed, by outcome.
    pub processed: String,
    pub rejected: String,
    pub review: String,
    pub ignored: String,
    /// Use IDLE when the server offers it (RFC 2177); else poll.
    pub idle: bool,
    /// IDLE is re-issued after this long (RFC 2177: before 29 minutes).
    pub idle_timeout: Duration,
    pub poll_interval: Duration,
    /// Messages fetched per round trip; memory stays bounded by this.
    pub batch_size: u32,
    /// Larger messages are not downloaded whole; they are held for review.
    pub max_message_bytes: u64,
    /// Read/write timeout of ordinary commands.
    pub timeout: Duration,
    /// Reconnect backoff is capped at this.
    pub reconnect_max: Duration,
}

impl ImapConfig {
    /// What names this inbox for every instance, whatever its config file calls it: the
    /// lease (`inbox_leases.inbox`) and duplicate detection use it. The port is left out (993
    /// and 143 reach the same mailbox), the host is compared without case, and so is `INBOX`
    /// (RFC 3501 §5.1), unlike other folder names.
    pub fn inbox_id(&self) -> String {
        let folder = if self.folder.eq_ignore_ascii_case("INBOX") {
            "INBOX"
        } else {
            self.folder.as_str()
        };
        format!(
            "{}@{}/{folder}",
            self.username,
            self.host.trim().to_ascii_lowercase()
        )
    }

    /// The folder a message is moved to once its outcome is committed.
    pub fn folder_for(&self, outcome: crate::outcome::Outcome) -> &str {
        use crate::outcome::Outcome;
        match outcome {
            Outcome::Applied | Outcome::AwaitingConfirmation | Outcome::Duplicate => {
                &self.processed
            }
            Outcome::Rejected => &self.rejected,
            Outcome::NeedsReview => &self.review,
            Outcome::Ignored => &self.ignored,
        }
    }
}

/// Each inbox is worked by one instance at a time, the holder of its lease (a row in
/// `inbox_leases`, see `imap::lease`). Kept apart from [`DatabaseConfig`] so that code which
/// only connects need not know about it.
#[derive(Debug, Clone, Copy)]
pub struct LeaseConfig {
    /// A lease not renewed for this long is free for another instance: the longest an inbox
    /// waits after its holder died (plus one renewal interval).
    pub ttl: Duration,
}

impl LeaseConfig {
    /// The holder renews this often, and a waiting instance tries this often.
    pub fn renew_every(&self) -> Duration {
        self.ttl / 4
    }

    /// A holder that could not renew for this long stops working the inbox: a quarter of the
    /// TTL before anyone else may take it, time enough to finish the message in hand.
    pub fn give_up_after(&self) -> Duration {
        self.ttl.saturating_sub(self.ttl / 4)
    }
}

impl Default for LeaseConfig {
    fn default() -> LeaseConfig {
        LeaseConfig {
            ttl: Duration::from_secs(20),
        }
    }
}

/// `max_message_bytes` when not set: 25 MiB.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 25 * 1024 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImap {
    host: String,
    port: Option<u16>,
    tls: Option<TlsMode>,
    username: String,
    password: Option<String>,
    password_file: Option<PathBuf>,
    auth: Option<AuthKind>,
    oauth2: Option<RawOauth2>,
    token_command: Option<String>,
    ca_file: Option<PathBuf>,
    folder: Option<String>,
    processed: Option<String>,
    rejected: Option<String>,
    review: Option<String>,
    ignored: Option<String>,
    idle: Option<bool>,
    idle_timeout: Option<String>,
    poll_interval: Option<String>,
    batch_size: Option<u32>,
    max_message_bytes: Option<u64>,
    timeout: Option<String>,
    reconnect_max: Option<String>,
}

/// `[database] lease_ttl` (a key of the database section, read here because only the inbox
/// lease uses it).
pub(crate) fn check_lease(ttl: Option<String>) -> Result<LeaseConfig, ConfigError> {
    let ttl = duration_key("database.lease_ttl", ttl, LeaseConfig::default().ttl)?;
    if ttl < Duration::from_secs(4) || ttl > Duration::from_secs(600) {
        return Err(key_err(
            "database.lease_ttl",
            "must be between 4s and 10m: the holder renews every quarter of it",
        ));
    }
    Ok(LeaseConfig { ttl })
}

/// `[imap]` (one inbox) or `[[imap]]` (several), each checked, and no inbox listed twice.
pub(crate) fn check_imaps(value: Option<toml::Value>) -> Result<Vec<ImapConfig>, ConfigError> {
    let imap = raw_imaps(value)?
        .into_iter()
        .map(|(k, r)| check_imap(&k, r))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, a) in imap.iter().enumerate() {
        if let Some(b) = imap.iter().take(i).find(|b| b.inbox_id() == a.inbox_id()) {
            return Err(key_err(
                &a.key,
                format!(
                    "the same inbox as {} ({}): each inbox is listed once",
                    b.key,
                    a.inbox_id()
                ),
            ));
        }
    }
    Ok(imap)
}

/// `[imap]` or `[[imap]]` as (key for messages, raw entry): `imap` for the single table,
/// `imap[0]`, `imap[1]`… for the entries of the array.
fn raw_imaps(value: Option<toml::Value>) -> Result<Vec<(String, RawImap)>, ConfigError> {
    let entry = |key: String, v: toml::Value| -> Result<(String, RawImap), ConfigError> {
        match v.try_into::<RawImap>() {
            Ok(r) => Ok((key, r)),
            Err(e) => {
                // serde names the field (`missing field `host``, `unknown field `hots``);
                // the key says which inbox.
                let message = e.message().trim().to_owned();
                let field = message
                    .split('`')
                    .nth(1)
                    .filter(|_| message.starts_with("missing field"));
                Err(match field {
                    Some(f) => key_err(&format!("{key}.{f}"), "missing"),
                    None => key_err(&key, message),
                })
            }
        }
    };
    match value {
        None => Ok(Vec::new()),
        Some(v @ toml::Value::Table(_)) => Ok(vec![entry("imap".into(), v)?]),
        Some(toml::Value::Array(list)) => {
            if list.is_empty() {
                return Err(key_err("imap", "`imap = []` lists no inbox"));
            }
            list.into_iter()
                .enumerate()
                .map(|(i, v)| entry(format!("imap[{i}]"), v))
                .collect()
        }
        Some(_) => Err(key_err(
            "imap",
            "must be an [imap] table or [[imap]] entries",
        )),
    }
}

fn check_imap(key: &str, r: RawImap) -> Result<ImapConfig, ConfigError> {
    let k = |name: &str| format!("{key}.{name}");
    let tls = r.tls.unwrap_or(TlsMode::Tls);
    let auth = check_auth(key, r.auth, r.oauth2, r.token_command)?;
    let password = secret_key(&k("password"), r.password, r.password_file)?;
    // XOAUTH2 signs in with a token: no password to ask for.
    let password = password
        .or_else(|| matches!(auth, Auth::Xoauth2(_)).then(Secret::default))
        .ok_or_else(|| {
            key_err(
                &k("password"),
                "missing: give `password`, `password_file`, or POSTROOM_IMAP_PASSWORD",
            )
        })?;
    let idle_timeout = duration_key(
        &k("idle_timeout"),
        r.idle_timeout,
        Duration::from_secs(25 * 60),
    )?;
    if idle_timeout >= Duration::from_secs(29 * 60) {
        return Err(key_err(
            &k("idle_timeout"),
            "must be under 29 minutes (RFC 2177)",
        ));
    }
    let batch_size = r.batch_size.unwrap_or(50);
    if batch_size == 0 {
        return Err(key_err(&k("batch_size"), "must be at least 1"));
    }
    if r.host.trim().is_empty() {
        return Err(key_err(&k("host"), "empty"));
    }
    if r.username.trim().is_empty() {
        return Err(key_err(&k("username"), "empty"));
    }
    Ok(ImapConfig {
        key: key.to_owned(),
        port: r
            .port
            .unwrap_or(if tls == TlsMode::Tls { 993 } else { 143 }),
        host: r.host,
        tls,
        username: r.username,
        password,
        auth,
        ca_file: r.ca_file,
        folder: r.folder.unwrap_or_else(|| "INBOX".into()),
        processed: r.processed.unwrap_or_else(|| "postroom/processed".into()),
        rejected: r.rejected.unwrap_or_else(|| "postroom/rejected".into()),
        review: r.review.unwrap_or_else(|| "postroom/review".into()),
        ignored: r.ignored.unwrap_or_else(|| "postroom/ignored".into()),
        idle: r.idle.unwrap_or(true),
        idle_timeout,
        poll_interval: duration_key(
            &k("poll_interval"),
            r.poll_interval,
            Duration::from_secs(60),
        )?,
        batch_size,
        max_message_bytes: r.max_message_bytes.unwrap_or(DEFAULT_MAX_MESSAGE_BYTES),
        timeout: duration_key(&k("timeout"), r.timeout, Duration::from_secs(60))?,
        reconnect_max: duration_key(
            &k("reconnect_max"),
            r.reconnect_max,
            Duration::from_secs(300),
        )?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "[helpdesk]\naddress = \"Helpdesk@NHS.example\"\n";

    const TWO_INBOXES: &str = "[[imap]]\nhost = \"imap.nhs.example\"\nusername = \"north\"\n\
         [[imap]]\nhost = \"imap.nhs.example\"\nusername = \"south\"\nfolder = \"Requests\"\n\
         processed = \"Done\"\n";

    #[test]
    fn errors_in_an_inbox_name_its_entry() {
        let err = |text: &str| {
            // The section alone, as `config` hands it over.
            let mut file: toml::Table = format!("{MINIMAL}{text}").parse().unwrap();
            check_imaps(file.remove("imap")).unwrap_err().to_string()
        };
        let e = err(TWO_INBOXES);
        assert!(e.contains("`imap[0].password`"), "{e}");
        let e = err(
            "[[imap]]\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n[[imap]]\nusername = \"v\"\n",
        );
        assert!(e.contains("`imap[1].host`"), "{e}");
        let e = err(
            "[[imap]]\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n[[imap]]\nhots = \"h\"\nhost = \"h\"\nusername = \"v\"\npassword = \"p\"\n",
        );
        assert!(e.contains("`imap[1]`") && e.contains("hots"), "{e}");
        let e = err("[[imap]]\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\nbatch_size = 0\n");
        assert!(e.contains("`imap[0].batch_size`"), "{e}");
        // The same inbox twice (host case and port do not make it another one).
        let e = err(
            "[[imap]]\nhost = \"h.example\"\nusername = \"u\"\npassword = \"p\"\n\
                     [[imap]]\nhost = \"H.example\"\nport = 143\nusername = \"u\"\npassword = \"p\"\nfolder = \"inbox\"\n",
        );
        assert!(
            e.contains("`imap[1]`") && e.contains("same inbox as imap[0]"),
            "{e}"
        );
        // The single-table form keeps its plain key.
        let e = err("[imap]\nusername = \"u\"\n");
        assert!(e.contains("`imap.host`"), "{e}");
    }
}
