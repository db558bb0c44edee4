//! The IMAP edge: watch one folder of each configured inbox, hand each new message to the
//! pipeline, and file it in its outcome's folder once its transaction has committed.
//!
//! - [`connect`]: TCP, TLS (tokio-rustls) or STARTTLS, the greeting, LOGIN; every read and
//!   write under a timeout ([`stream`]).
//! - [`folders`]: the server's hierarchy separator; outcome folders created when missing.
//! - [`sync`]: list by UID with sizes, fetch bounded batches with `BODY.PEEK[]`, run the
//!   pipeline, then move ([`moves`]); the UIDVALIDITY / next-UID checkpoint ([`state`]).
//! - [`idle`]: wait for news by IDLE (RFC 2177) or by polling.
//! - [`append`]: filing by `APPEND` what came another way (LMTP), in its outcome folder.
//! - [`watch`]: one watcher per inbox, one session after another, reconnecting with capped
//!   backoff ([`backoff`]), while this instance holds the inbox's [`lease`].
//!
//! Nothing here deletes a message: a message leaves the watched folder only by `UID MOVE`, or
//! by `UID COPY` + `\Deleted` + `UID EXPUNGE` of exactly that UID (UIDPLUS).

pub mod append;
pub mod backoff;
pub mod config;
pub mod connect;
pub mod folders;
pub mod idle;
pub mod lease;
pub mod moves;
pub mod state;
pub mod stream;
pub mod sync;
pub mod test_hook;
pub mod watch;

use crate::store::StoreError;
use std::time::Duration;

/// A logged-in session over our timeout-wrapped (and usually TLS) stream.
pub type Session = async_imap::Session<stream::MailStream>;
/// A connection before login.
pub type Client = async_imap::Client<stream::MailStream>;

/// What can end an IMAP session. Every variant's message is one line that says what failed
/// and where, and never contains the password.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("cannot connect to {addr}: {error}")]
    Connect { addr: String, error: std::io::Error },
    #[error("TLS handshake with {host} failed: {error}")]
    Tls { host: String, error: std::io::Error },
    #[error("TLS setup: {0}")]
    TlsSetup(String),
    #[error("{host} closed the connection before its greeting")]
    NoGreeting { host: String },
    #[error("{host} refused the connection: {greeting}")]
    Refused { host: String, greeting: String },
    #[error("{host} refused STARTTLS: {}", describe(.error))]
    Starttls {
        host: String,
        error: async_imap::error::Error,
    },
    #[error("login as {user} refused: {}", describe(.error))]
    Login {
        user: String,
        error: async_imap::error::Error,
    },
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    #[error("{what}: {}", describe(.error))]
    Command {
        what: String,
        error: async_imap::error::Error,
    },
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl ImapError {
    /// A command the server answered with `NO`/`BAD`: the session itself is still usable.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ImapError::Command {
                error: async_imap::error::Error::No(_) | async_imap::error::Error::Bad(_),
                ..
            }
        )
    }
}

/// Run one IMAP exchange under `after`; a timeout or an error names `what`.
///
/// async-imap has no timeouts of its own (field notes): the stream's read/write timeouts catch
/// a silent server byte by byte, this bounds the whole exchange.
pub async fn bounded<T>(
    what: impl Into<String>,
    after: Duration,
    fut: impl std::future::Future<Output = Result<T, async_imap::error::Error>>,
) -> Result<T, ImapError> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(error)) => Err(ImapError::Command {
            what: what.into(),
            error,
        }),
        Err(_) => Err(ImapError::Timeout {
            what: what.into(),
            after,
        }),
    }
}

/// An async-imap error as one readable line. async-imap renders a server's `NO`/`BAD` as
/// `code: Some(..), info: Some("..")`; this gives `NO [CODE] text` instead.
pub fn describe(e: &async_imap::error::Error) -> String {
    use async_imap::error::Error;
    let (kind, s) = match e {
        Error::No(s) => ("NO", s),
        Error::Bad(s) => ("BAD", s),
        Error::Io(io) => return format!("connection: {io}"),
        Error::ConnectionLost => return "connection lost".into(),
        other => return other.to_string(),
    };
    let Some(rest) = s.strip_prefix("code: ") else {
        return format!("{kind} {s}");
    };
    let (code, info) = rest.split_once(", info: ").unwrap_or((rest, "None"));
    let unwrap = |v: &str| -> Option<String> {
        v.strip_prefix("Some(")
            .and_then(|v| v.strip_suffix(')'))
            .map(|v| v.trim_matches('"').replace("\\\"", "\""))
    };
    let mut out = kind.to_owned();
    if let Some(code) = unwrap(code) {
        out.push_str(&format!(" [{code}]"));
    }
    if let Some(info) = unwrap(info) {
        out.push(' ');
        out.push_str(&info);
    }
    out
}

/// What the server offers that changes how postroom works with it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    /// RFC 2177: push instead of polling.
    pub idle: bool,
    /// RFC 6851: `UID MOVE`.
    pub r#move: bool,
    /// RFC 4315: `UID EXPUNGE` of exactly our UIDs, for the COPY fallback.
    pub uidplus: bool,
}

impl Caps {
    pub fn from_capabilities(c: &async_imap::types::Capabilities) -> Caps {
        Caps {
            idle: c.has_str("IDLE"),
            r#move: c.has_str("MOVE"),
            uidplus: c.has_str("UIDPLUS"),
        }
    }

    pub async fn query(session: &mut Session, timeout: Duration) -> Result<Caps, ImapError> {
        let c = bounded("CAPABILITY", timeout, session.capabilities()).await?;
        Ok(Caps::from_capabilities(&c))
    }
}

/// A UID set for a command: sorted, consecutive UIDs joined into ranges (`1:4,7,9:10`).
/// Always bounded (never `*`), so it matches exactly the messages named.
pub fn uid_set(uids: &[u32]) -> String {
    let mut sorted = uids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut out = String::new();
    let mut iter = sorted.into_iter().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while let Some(&next) = iter.peek() {
            if Some(next) == end.checked_add(1) {
                end = next;
                iter.next();
            } else {
                break;
            }
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
    }
    out
}

/// An IMAP quoted string (RFC 3501 §4.3) for commands whose argument async-imap does not
/// quote itself (`LIST`'s pattern).
pub fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_sets_are_compact_and_bounded() {
        assert_eq!(uid_set(&[]), "");
        assert_eq!(uid_set(&[5]), "5");
        assert_eq!(uid_set(&[3, 1, 2, 4, 7, 9, 10]), "1:4,7,9:10");
        assert_eq!(uid_set(&[2, 2, 3]), "2:3");
        assert_eq!(
            uid_set(&[u32::MAX - 1, u32::MAX]),
            format!("{}:{}", u32::MAX - 1, u32::MAX)
        );
    }

    #[test]
    fn server_refusals_read_well() {
        use async_imap::error::Error;
        let e = Error::No(
            r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#.into(),
        );
        assert_eq!(
            describe(&e),
            "NO [AUTHENTICATIONFAILED] Authentication failed."
        );
        let e =
            Error::No(r#"code: Some(TryCreate), info: Some("Mailbox doesn't exist: x")"#.into());
        assert_eq!(describe(&e), "NO [TryCreate] Mailbox doesn't exist: x");
        let e = Error::Bad("code: None, info: None".into());
        assert_eq!(describe(&e), "BAD");
        assert_eq!(describe(&Error::ConnectionLost), "connection lost");
    }

    #[test]
    fn quoting() {
        assert_eq!(quoted("postroom/processed"), "\"postroom/processed\"");
        assert_eq!(quoted("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
