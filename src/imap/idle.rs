//! Wait for news: IDLE (RFC 2177) when the server has it and the config allows, else a
//! polling interval.

use super::{ImapError, Session};
use crate::imap::config::ImapConfig;
use async_imap::extensions::idle::IdleResponse;
use async_imap::types::UnsolicitedResponse;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long `DONE` may take before the session is given up (field notes: bound it).
const DONE_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The server announced something (new mail, an expunge, a flag change): sync.
    News,
    /// The wait ran out (IDLE re-issue or poll interval): sync anyway.
    Timeout,
    /// Stop requested.
    Shutdown,
}

/// Poll: sleep `interval` (or until stopped). The next sync's listing is the "poll".
pub async fn poll(interval: Duration, shutdown: &CancellationToken) -> Wake {
    tokio::select! {
        _ = tokio::time::sleep(interval) => Wake::Timeout,
        _ = shutdown.cancelled() => Wake::Shutdown,
    }
}

/// IDLE for at most `wait` and give the session back after `DONE`.
///
/// - The read timeout is off while idling (a quiet mailbox is not a dead server) and back on
///   for `DONE`.
/// - async-imap's own IDLE timeout restarts on every server line, and Dovecot sends
///   `* OK Still here` every couple of minutes, so it never fires: the outer timeout here is
///   what re-issues IDLE before RFC 2177's 29 minutes.
/// - The stop handle returned with the wait interrupts it when dropped, so it is kept until
///   the wait is over (field notes).
pub async fn idle(
    session: Session,
    imap: &ImapConfig,
    wait: Duration,
    shutdown: &CancellationToken,
) -> Result<(Session, Wake), ImapError> {
    // News that came with the last command's answer, queued before IDLE could report it.
    let unsolicited = session.unsolicited_responses.clone();
    let mut handle = session.idle();
    match tokio::time::timeout(imap.timeout, handle.init()).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            return Err(ImapError::Command {
                what: "IDLE".into(),
                error,
            });
        }
        Err(_) => {
            return Err(ImapError::Timeout {
                what: "IDLE".into(),
                after: imap.timeout,
            });
        }
    }

    let mut pending = false;
    while let Ok(r) = unsolicited.try_recv() {
        pending |= matches!(
            r,
            UnsolicitedResponse::Exists(_) | UnsolicitedResponse::Recent(_)
        );
    }

    let wake = if pending {
        Wake::News
    } else {
        handle.as_mut().set_read_timeout(None);
        let (idle_wait, stop) = handle.wait_with_timeout(wait);
        let result = tokio::select! {
            r = tokio::time::timeout(wait, idle_wait) => match r {
                Ok(Ok(IdleResponse::NewData(data))) => {
                    tracing::debug!(response = ?data.parsed(), "IDLE: server news");
                    Ok(Wake::News)
                }
                Ok(Ok(IdleResponse::Timeout)) | Err(_) => Ok(Wake::Timeout),
                // The stream ended: async-imap reports a closed connection as an interrupt.
                Ok(Ok(IdleResponse::ManualInterrupt)) => Err(ImapError::Protocol("connection closed during IDLE".into())),
                Ok(Err(error)) => Err(ImapError::Command { what: "IDLE".into(), error }),
            },
            _ = shutdown.cancelled() => Ok(Wake::Shutdown),
        };
        drop(stop);
        handle.as_mut().set_read_timeout(Some(imap.timeout));
        result?
    };

    match tokio::time::timeout(DONE_TIMEOUT, handle.done()).await {
        Ok(Ok(session)) => Ok((session, wake)),
        Ok(Err(error)) => Err(ImapError::Command {
            what: "DONE (ending IDLE)".into(),
            error,
        }),
        Err(_) => Err(ImapError::Timeout {
            what: "DONE (ending IDLE)".into(),
            after: DONE_TIMEOUT,
        }),
    }
}
