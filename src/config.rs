//! Configuration in two visible steps: the raw TOML (serde, unknown keys refused) and the
//! checked [`Config`] the rest of postroom uses. A bad config names the key and exits.
//!
//! Any key can be overridden from the environment as `POSTROOM_<SECTION>_<KEY>`, e.g.
//! `POSTROOM_DATABASE_URL` or `POSTROOM_HELPDESK_ADDRESS` (values are read as TOML when they
//! parse as such, else as strings).

use crate::request::{RequestKind, Role};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "config file {path} not found (give one with --config or POSTROOM_CONFIG; config/postroom.example.toml documents every key)"
    )]
    Missing { path: PathBuf },
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("config key `{key}`: {message}")]
    Key { key: String, message: String },
}

// ---------------------------------------------------------------------------------------------
// Raw: what the file says.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    database: RawDatabase,
    helpdesk: Option<RawHelpdesk>,
    #[serde(default)]
    policy: BTreeMap<String, String>,
    imap: Option<RawImap>,
    smtp: Option<RawSmtp>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    raw_messages: Option<String>,
    disabled_accounts: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWeb {
    listen: Option<String>,
    behind_tls_proxy: Option<bool>,
    session_ttl: Option<String>,
}

/// A key that takes one value or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    mode: Option<OneOrMany<String>>,
    authserv_id: Option<OneOrMany<String>>,
    accept: Option<Vec<String>>,
    /// Pinned DKIM keys: DNS name → TXT record, answered before DNS.
    dkim_keys: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfirmation {
    enabled: Option<bool>,
    kinds: Option<Vec<String>>,
    ttl: Option<String>,
    max_attempts: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    max_accounts_per_organisation: Option<u32>,
    max_members_per_mailbox: Option<u32>,
    max_owners_per_mailbox: Option<u32>,
    max_replies_per_mailbox_per_day: Option<u32>,
    max_headers: Option<u32>,
    max_header_bytes: Option<u32>,
    max_parts: Option<u32>,
    max_mime_depth: Option<u32>,
    max_text_bytes: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImap {
    host: String,
    port: Option<u16>,
    tls: Option<TlsMode>,
    username: String,
    password: Option<String>,
    password_file: Option<PathBuf>,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: Option<u16>,
    tls: Option<TlsMode>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    ca_file: Option<PathBuf>,
    from: Option<String>,
    timeout: Option<String>,
    retry_initial: Option<String>,
    retry_max: Option<String>,
    give_up_after: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    url: Option<String>,
    max_connections: Option<u32>,
    acquire_timeout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHelpdesk {
    address: String,
    name: Option<String>,
    reference_prefix: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// Checked: what postroom runs with.

#[derive(Debug, Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub helpdesk: HelpdeskConfig,
    pub policy: PolicyConfig,
    /// `None` when the file has no `[imap]` section (`run` then refuses to start).
    pub imap: Option<ImapConfig>,
    pub smtp: Option<SmtpConfig>,
    pub trust: crate::trust::TrustConfig,
    pub confirmation: ConfirmationConfig,
    pub limits: LimitsConfig,
    pub web: WebConfig,
    pub retention: RetentionConfig,
}

/// How long data is kept (`postroom retention`, and daily in `postroom run`).
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// Raw message bytes are dropped after this long (the row and audit stay).
    pub raw_messages: Duration,
    /// Disabled accounts are deleted this long after they were disabled.
    pub disabled_accounts: Duration,
}

/// The staff page.
#[derive(Debug, Clone)]
pub struct WebConfig {
    pub listen: std::net::SocketAddr,
    /// Served through a proxy that terminates TLS and sets `X-Forwarded-Proto: https`:
    /// cookies are marked `Secure`.
    pub behind_tls_proxy: bool,
    /// A staff session ends after this long.
    pub session_ttl: Duration,
}

/// Which risky changes are held until the requester confirms with a one-time code.
#[derive(Debug, Clone)]
pub struct ConfirmationConfig {
    pub enabled: bool,
    /// Request kinds whose risky cases need a code (default: all of them).
    pub kinds: Vec<RequestKind>,
    /// How long a code stays valid.
    pub ttl: Duration,
    /// Wrong codes tolerated before the confirmation is void.
    pub max_attempts: u32,
}

impl ConfirmationConfig {
    pub fn applies_to(&self, kind: RequestKind) -> bool {
        self.enabled && self.kinds.contains(&kind)
    }
}

/// Guards against runaway growth and hostile input. `None`: no limit.
#[derive(Debug, Clone)]
pub struct LimitsConfig {
    pub max_accounts_per_organisation: Option<u32>,
    pub max_members_per_mailbox: Option<u32>,
    pub max_owners_per_mailbox: Option<u32>,
    pub max_replies_per_mailbox_per_day: u32,
    pub max_headers: u32,
    pub max_header_bytes: u32,
    pub max_parts: u32,
    pub max_mime_depth: u32,
    pub max_text_bytes: u32,
}

/// How a mail connection is protected. `none` is for loopback tests only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Tls,
    /// Plain connection upgraded with STARTTLS (IMAP 143, submission 587).
    Starttls,
    /// No encryption at all.
    None,
}

/// A secret from the config, a file, or the environment; never printed.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[derive(Debug, Clone)]
pub struct ImapConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    pub password: Secret,
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

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    /// The envelope and header From of replies (default: the helpdesk address).
    pub from: String,
    pub timeout: Duration,
    /// First retry delay after a temporary failure; doubles up to `retry_max`.
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// A reply still not accepted after this long is marked failed.
    pub give_up_after: Duration,
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct HelpdeskConfig {
    /// The helpdesk's own address, lower-case: replies come from it, mail from it is ignored.
    pub address: String,
    /// Shown as the display name of replies.
    pub name: String,
    /// `HD` gives references `HD-000001`.
    pub reference_prefix: String,
}

impl HelpdeskConfig {
    /// The domain of the helpdesk address: our Message-IDs live there.
    pub fn domain(&self) -> &str {
        self.address
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d)
    }
}

/// Who may ask for each kind: an owner of the mailbox (the default) or any member.
#[derive(Debug, Clone, Default)]
pub struct PolicyConfig {
    required: BTreeMap<RequestKind, Role>,
}

impl PolicyConfig {
    pub fn required_role(&self, kind: RequestKind) -> Role {
        self.required.get(&kind).copied().unwrap_or(Role::Owner)
    }
}

impl Config {
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

    fn check(raw: RawConfig) -> Result<Config, ConfigError> {
        let key = |key: &str, message: String| ConfigError::Key {
            key: key.to_owned(),
            message,
        };
        let helpdesk = raw.helpdesk.ok_or_else(|| {
            key(
                "helpdesk.address",
                "missing: the helpdesk's own address is required".into(),
            )
        })?;
        let address = helpdesk.address.trim().to_ascii_lowercase();
        if !looks_like_address(&address) {
            return Err(key(
                "helpdesk.address",
                format!("`{address}` is not an email address"),
            ));
        }
        let reference_prefix = helpdesk.reference_prefix.unwrap_or_else(|| "HD".to_owned());
        if reference_prefix.is_empty()
            || reference_prefix.len() > 10
            || !reference_prefix.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(key(
                "helpdesk.reference_prefix",
                format!("`{reference_prefix}` must be 1 to 10 letters or digits"),
            ));
        }

        let mut required = BTreeMap::new();
        for (kind_name, role_name) in &raw.policy {
            let full = format!("policy.{kind_name}");
            let kind: RequestKind = kind_name.parse().map_err(|e: String| key(&full, e))?;
            if kind == RequestKind::Unknown {
                return Err(key(
                    &full,
                    "`unknown` is not a request kind that can be applied".into(),
                ));
            }
            let role: Role = role_name.parse().map_err(|e: String| key(&full, e))?;
            required.insert(kind, role);
        }

        let url = raw
            .database
            .url
            .unwrap_or_else(|| "sqlite://postroom.db".to_owned());
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres:")
            || url.starts_with("postgresql:"))
        {
            return Err(key(
                "database.url",
                format!("`{url}` must start with sqlite: or postgres:"),
            ));
        }
        let acquire_timeout = match raw.database.acquire_timeout {
            Some(s) => parse_duration(&s).map_err(|e| key("database.acquire_timeout", e))?,
            None => Duration::from_secs(30),
        };

        let imap = raw.imap.map(check_imap).transpose()?;
        let smtp = raw.smtp.map(|r| check_smtp(r, &address)).transpose()?;

        let trust = check_trust(raw.trust)?;
        let confirmation = check_confirmation(raw.confirmation)?;
        let l = raw.limits;
        let limits = LimitsConfig {
            max_accounts_per_organisation: l.max_accounts_per_organisation,
            max_members_per_mailbox: l.max_members_per_mailbox,
            max_owners_per_mailbox: l.max_owners_per_mailbox,
            max_replies_per_mailbox_per_day: l.max_replies_per_mailbox_per_day.unwrap_or(20),
            max_headers: l.max_headers.unwrap_or(500),
            max_header_bytes: l.max_header_bytes.unwrap_or(256 * 1024),
            max_parts: l.max_parts.unwrap_or(100),
            max_mime_depth: l.max_mime_depth.unwrap_or(20),
            max_text_bytes: l.max_text_bytes.unwrap_or(1024 * 1024),
        };

        let web = WebConfig {
            listen: raw
                .web
                .listen
                .as_deref()
                .unwrap_or("127.0.0.1:8080")
                .parse()
                .map_err(|e| {
                    key(
                        "web.listen",
                        format!("not an address like 127.0.0.1:8080: {e}"),
                    )
                })?,
            behind_tls_proxy: raw.web.behind_tls_proxy.unwrap_or(false),
            session_ttl: duration_key(
                "web.session_ttl",
                raw.web.session_ttl,
                Duration::from_secs(12 * 3600),
            )?,
        };

        let retention = RetentionConfig {
            raw_messages: duration_key(
                "retention.raw_messages",
                raw.retention.raw_messages,
                Duration::from_secs(400 * 86400),
            )?,
            disabled_accounts: duration_key(
                "retention.disabled_accounts",
                raw.retention.disabled_accounts,
                Duration::from_secs(30 * 86400),
            )?,
        };

        Ok(Config {
            retention,
            web,
            trust,
            confirmation,
            limits,
            imap,
            smtp,
            database: DatabaseConfig {
                url,
                max_connections: raw.database.max_connections.unwrap_or(5).max(1),
                acquire_timeout,
            },
            helpdesk: HelpdeskConfig {
                name: helpdesk.name.unwrap_or_else(|| "Helpdesk".to_owned()),
                address,
                reference_prefix,
            },
            policy: PolicyConfig { required },
        })
    }
}

fn key_err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_owned(),
        message: message.into(),
    }
}

fn duration_key(
    key: &str,
    value: Option<String>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        Some(s) => parse_duration(&s).map_err(|e| key_err(key, e)),
        None => Ok(default),
    }
}

/// A password given inline, or read from a file (first line, trailing newline dropped).
fn secret_key(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(key_err(key, "give `password` or `password_file`, not both")),
        (Some(p), None) => Ok(Some(Secret(p))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                key_err(
                    &format!("{key}_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Ok(Some(Secret(text.trim_end_matches(['\r', '\n']).to_owned())))
        }
        (None, None) => Ok(None),
    }
}

fn check_trust(r: RawTrust) -> Result<crate::trust::TrustConfig, ConfigError> {
    use crate::trust::{Method, TrustConfig, TrustMode};
    let mut cfg = TrustConfig::default();
    if let Some(modes) = r.mode {
        cfg.modes = modes
            .into_vec()
            .iter()
            .map(|m| match m.trim().to_ascii_lowercase().as_str() {
                "authentication_results" => Ok(TrustMode::AuthenticationResults),
                "dkim" => Ok(TrustMode::Dkim),
                "exchange_internal" => Ok(TrustMode::ExchangeInternal),
                "none" => Ok(TrustMode::None),
                other => Err(key_err(
                    "trust.mode",
                    format!("`{other}` is not one of authentication_results, dkim, exchange_internal, none"),
                )),
            })
            .collect::<Result<_, _>>()?;
        if cfg.modes.is_empty() {
            return Err(key_err("trust.mode", "name at least one mode"));
        }
    }
    if let Some(ids) = r.authserv_id {
        cfg.authserv_ids = ids
            .into_vec()
            .into_iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
    }
    if let Some(accept) = r.accept {
        cfg.accept = accept
            .iter()
            .map(|m| match m.trim().to_ascii_lowercase().as_str() {
                "dmarc" => Ok(Method::Dmarc),
                "dkim" => Ok(Method::Dkim),
                "spf" => Ok(Method::Spf),
                other => Err(key_err(
                    "trust.accept",
                    format!("`{other}` is not one of dmarc, dkim, spf"),
                )),
            })
            .collect::<Result<_, _>>()?;
    }
    cfg.dkim_keys = r.dkim_keys.unwrap_or_default();
    Ok(cfg)
}

fn check_confirmation(r: RawConfirmation) -> Result<ConfirmationConfig, ConfigError> {
    let kinds = match r.kinds {
        None => RequestKind::ALL.to_vec(),
        Some(list) => list
            .iter()
            .map(|k| match k.parse::<RequestKind>() {
                Ok(RequestKind::Unknown) | Err(_) => Err(key_err(
                    "confirmation.kinds",
                    format!("`{k}` is not a request kind"),
                )),
                Ok(kind) => Ok(kind),
            })
            .collect::<Result<_, _>>()?,
    };
    Ok(ConfirmationConfig {
        enabled: r.enabled.unwrap_or(true),
        kinds,
        ttl: duration_key(
            "confirmation.ttl",
            r.ttl,
            Duration::from_secs(3 * 24 * 3600),
        )?,
        max_attempts: r.max_attempts.unwrap_or(5).max(1),
    })
}

fn check_imap(r: RawImap) -> Result<ImapConfig, ConfigError> {
    let tls = r.tls.unwrap_or(TlsMode::Tls);
    let password = secret_key("imap.password", r.password, r.password_file)?.ok_or_else(|| {
        key_err(
            "imap.password",
            "missing: give `password`, `password_file`, or POSTROOM_IMAP_PASSWORD",
        )
    })?;
    let idle_timeout = duration_key(
        "imap.idle_timeout",
        r.idle_timeout,
        Duration::from_secs(25 * 60),
    )?;
    if idle_timeout >= Duration::from_secs(29 * 60) {
        return Err(key_err(
            "imap.idle_timeout",
            "must be under 29 minutes (RFC 2177)",
        ));
    }
    let batch_size = r.batch_size.unwrap_or(50);
    if batch_size == 0 {
        return Err(key_err("imap.batch_size", "must be at least 1"));
    }
    Ok(ImapConfig {
        port: r
            .port
            .unwrap_or(if tls == TlsMode::Tls { 993 } else { 143 }),
        host: r.host,
        tls,
        username: r.username,
        password,
        ca_file: r.ca_file,
        folder: r.folder.unwrap_or_else(|| "INBOX".into()),
        processed: r.processed.unwrap_or_else(|| "postroom/processed".into()),
        rejected: r.rejected.unwrap_or_else(|| "postroom/rejected".into()),
        review: r.review.unwrap_or_else(|| "postroom/review".into()),
        ignored: r.ignored.unwrap_or_else(|| "postroom/ignored".into()),
        idle: r.idle.unwrap_or(true),
        idle_timeout,
        poll_interval: duration_key(
            "imap.poll_interval",
            r.poll_interval,
            Duration::from_secs(60),
        )?,
        batch_size,
        max_message_bytes: r.max_message_bytes.unwrap_or(25 * 1024 * 1024),
        timeout: duration_key("imap.timeout", r.timeout, Duration::from_secs(60))?,
        reconnect_max: duration_key(
            "imap.reconnect_max",
            r.reconnect_max,
            Duration::from_secs(300),
        )?,
    })
}

fn check_smtp(r: RawSmtp, helpdesk: &str) -> Result<SmtpConfig, ConfigError> {
    let tls = r.tls.unwrap_or(TlsMode::Starttls);
    let password = secret_key("smtp.password", r.password, r.password_file)?;
    if password.is_some() != r.username.is_some() {
        return Err(key_err(
            "smtp.username",
            "give both `username` and a password, or neither",
        ));
    }
    let from = r
        .from
        .map(|f| f.trim().to_ascii_lowercase())
        .unwrap_or_else(|| helpdesk.to_owned());
    if !looks_like_address(&from) {
        return Err(key_err(
            "smtp.from",
            format!("`{from}` is not an email address"),
        ));
    }
    Ok(SmtpConfig {
        port: r.port.unwrap_or(match tls {
            TlsMode::Tls => 465,
            TlsMode::Starttls => 587,
            TlsMode::None => 25,
        }),
        host: r.host,
        tls,
        username: r.username,
        password,
        ca_file: r.ca_file,
        from,
        timeout: duration_key("smtp.timeout", r.timeout, Duration::from_secs(30))?,
        retry_initial: duration_key(
            "smtp.retry_initial",
            r.retry_initial,
            Duration::from_secs(30),
        )?,
        retry_max: duration_key("smtp.retry_max", r.retry_max, Duration::from_secs(3600))?,
        give_up_after: duration_key(
            "smtp.give_up_after",
            r.give_up_after,
            Duration::from_secs(3 * 24 * 3600),
        )?,
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

/// `"30s"`, `"5m"`, `"1h 30m"`, `"3d"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration like \"30s\" or \"5m\": {e}"))
}

/// A cheap syntactic check, enough to catch a typo in a config or CSV file.
pub fn looks_like_address(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',')
                && !domain.contains('@')
        }
        None => false,
    }
}

/// `POSTROOM_DATABASE_URL=…` sets `[database] url`. Sections are the top-level tables of the
/// known config (single words), so the split between section and key is unambiguous.
fn apply_env_overrides(table: &mut toml::Table, env: &[(String, String)]) {
    const SECTIONS: &[&str] = &[
        "database",
        "helpdesk",
        "policy",
        "imap",
        "smtp",
        "trust",
        "confirmation",
        "limits",
        "web",
        "retention",
    ];
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
        let entry = table
            .entry((*section).to_owned())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(t) = entry {
            t.insert(key.to_owned(), parsed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn policy_per_kind() {
        let text = format!("{MINIMAL}[policy]\npassword_reset = \"member\"\n");
        let c = Config::from_toml_with_env(&text, &[]).unwrap();
        assert_eq!(
            c.policy.required_role(RequestKind::PasswordReset),
            Role::Member
        );
        assert_eq!(c.policy.required_role(RequestKind::Unlock), Role::Owner);
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
        let imap = c.imap.unwrap();
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
        assert!(c.imap.is_some() && c.smtp.is_some());
        assert_eq!(c.trust.authserv_ids, vec!["mx.nhs.example".to_owned()]);
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("soon").is_err());
    }
}
