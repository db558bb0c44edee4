//! The LMTP listener (RFC 2033): the MTA delivers the helpdesk address to postroom itself,
//! beside (or instead of) the IMAP watcher reading it from a mailbox.
//!
//! The promise to the MTA: `250` for a message only once its transaction has committed, so
//! whatever postroom did not take stays in the MTA's queue and is tried again (`451` while the
//! database is down, a closed connection when postroom is stopped or dies) — never a loss.
//! A message delivered twice (the MTA lost our `250`, or the same message also reached the
//! watched inbox) is recognised by Message-ID or hash and applied once.
//!
//! - [`session`]: the protocol, on any byte stream, with its bounds;
//! - [`listen`]: TCP or Unix socket, allowed peers, at most [`listen::MAX_SESSIONS`] at once;
//! - [`deliver`]: the pipeline call and the verdict, the outbox woken, the message filed in
//!   its IMAP outcome folder ([`crate::imap::append`]).

pub mod config;
pub mod deliver;
pub mod listen;
pub mod session;

use crate::config::Config;

/// The session rules from the config: the helpdesk's domain in the greeting, the addresses
/// taken at `RCPT`, the size limit of the watcher (`max_message_bytes`).
pub fn policy(cfg: &Config) -> Option<session::Policy> {
    let lmtp = cfg.lmtp.as_ref()?;
    Some(session::Policy {
        hostname: cfg.helpdesk.domain().to_owned(),
        recipients: lmtp.recipients.clone(),
        limits: session::Limits::new(cfg.max_message_bytes()),
    })
}
