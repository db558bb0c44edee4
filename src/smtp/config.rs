//! The `[smtp]` section (how replies are sent): the checked data, the file's raw form, the
//! defaults and the check. The section is this room's; `config` reads the file and composes
//! it, and this module imports only low ones (the key error and value readers, auth,
//! secrets), never `config` (issue 14).

use crate::config_value::{
    ConfigError, TlsMode, duration_key, key_err, looks_like_address, secret_key,
};
use crate::oauth::{Auth, AuthKind, RawOauth2, check_auth};
use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub auth: Auth,
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSmtp {
    host: String,
    port: Option<u16>,
    tls: Option<TlsMode>,
    username: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    auth: Option<AuthKind>,
    oauth2: Option<RawOauth2>,
    token_command: Option<String>,
    ca_file: Option<PathBuf>,
    from: Option<String>,
    timeout: Option<String>,
    retry_initial: Option<String>,
    retry_max: Option<String>,
    give_up_after: Option<String>,
}

/// `helpdesk` is the helpdesk's address: replies come from it unless `from` says otherwise.
pub(crate) fn check_smtp(r: RawSmtp, helpdesk: &str) -> Result<SmtpConfig, ConfigError> {
    let tls = r.tls.unwrap_or(TlsMode::Starttls);
    let password = secret_key("smtp.password", r.password, r.password_file)?;
    let auth = check_auth("smtp", r.auth, r.oauth2, r.token_command)?;
    if matches!(auth, Auth::Xoauth2(_)) && r.username.is_none() {
        return Err(key_err(
            "smtp.username",
            "auth = \"xoauth2\" needs the account's `username`",
        ));
    }
    if matches!(auth, Auth::Password) && password.is_some() != r.username.is_some() {
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
        auth,
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
