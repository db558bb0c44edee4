//! What every config section's check shares: the error that names a key, and the readers of
//! the values several sections take (durations, addresses, passwords, TLS modes, a value or a
//! list).
//!
//! Low on purpose: each room's section (`imap::config`, `smtp::config`, …) imports this and
//! nothing of `config`, and `config` composes the sections, so the arrows run one way
//! (issue 14). It imports nothing of postroom's but [`Secret`].

use crate::secret::Secret;
use serde::Deserialize;
use std::path::PathBuf;
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

/// A key that takes one value or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    pub(crate) fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
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

pub(crate) fn key_err(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Key {
        key: key.to_owned(),
        message: message.into(),
    }
}

pub(crate) fn duration_key(
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
pub(crate) fn secret_key(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(key_err(key, "give `password` or `password_file`, not both")),
        (Some(p), None) => Ok(Some(Secret::new(p))),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                key_err(
                    &format!("{key}_file"),
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            Ok(Some(Secret::new(
                text.trim_end_matches(['\r', '\n']).to_owned(),
            )))
        }
        (None, None) => Ok(None),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("soon").is_err());
    }
}
