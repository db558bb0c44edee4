//! A stored request's email, read again: when staff apply it as another kind, when its
//! requester confirms it, when staff answer it. One place parses and reads it, with the
//! pipeline's own reading context.
//!
//! Retention blanks the raw bytes of old mail (`[retention] raw_messages`). Such a message is
//! not an empty email silently refused: the caller gets [`Gone`] and says so, with
//! [`crate::reason::Reason::MessageGone`].

use crate::config::Config;
use crate::message::{self, Message};
use crate::request::extract::{self, ExtractContext, Extracted};
use crate::store::journal;
use crate::store::{Conn, StoreError};

/// The stored email was blanked by retention (or is not there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// The email of stored message `message_db_id`, parsed.
pub(crate) async fn message(
    conn: &mut Conn,
    message_db_id: i64,
) -> Result<Result<Message, Gone>, StoreError> {
    Ok(journal::message_raw_kept(conn, message_db_id)
        .await?
        .map(|raw| message::parse(&raw))
        .ok_or(Gone))
}

/// Read a stored email as the pipeline read it when it came in.
pub(crate) fn read(cfg: &Config, msg: &Message) -> Extracted {
    let ctx = ExtractContext {
        mailbox: msg.from.as_deref(),
        helpdesk: &cfg.helpdesk.address,
        reference_prefix: &cfg.helpdesk.reference_prefix,
    };
    extract::extract(msg, &ctx)
}
