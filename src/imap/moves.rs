//! File messages in a folder, by UID, without ever losing one.
//!
//! - `UID MOVE` (RFC 6851) when the server has MOVE: atomic.
//! - Else `UID COPY`, `UID STORE +FLAGS.SILENT (\Deleted)`, `UID EXPUNGE` of exactly those UIDs
//!   (UIDPLUS, RFC 4315). A plain `EXPUNGE` would also erase whatever another client had
//!   flagged `\Deleted` meanwhile, so it is never sent.
//! - Neither (servers that predate RFC 4315 and 6851): copy and flag `\Deleted`, leave the
//!   expunge to the mailbox's owner; the listing skips `\Deleted` messages so they are not
//!   processed twice.
//!
//! The copy always comes before the flag: a crash in between leaves two copies, never none.

use super::{Caps, ImapError, Session, bounded, folders, uid_set};
use crate::imap::config::ImapConfig;
use futures::TryStreamExt;

/// Move `uids` to `folder`. When the server refuses the MOVE or COPY because the folder is
/// missing (`[TRYCREATE]`), create it and try that command once more.
pub async fn move_uids(
    session: &mut Session,
    imap: &ImapConfig,
    caps: Caps,
    uids: &[u32],
    folder: &str,
) -> Result<(), ImapError> {
    if uids.is_empty() {
        return Ok(());
    }
    let set = uid_set(uids);
    if caps.r#move {
        let what = format!("UID MOVE {set} {folder}");
        return match bounded(&what, imap.timeout, session.uid_mv(&set, folder)).await {
            Err(e) if e.is_refusal() => {
                tracing::debug!(folder, "{e}; creating the folder and retrying");
                folders::create(session, imap, folder).await?;
                bounded(&what, imap.timeout, session.uid_mv(&set, folder)).await
            }
            other => other,
        };
    }

    let what = format!("UID COPY {set} {folder}");
    match bounded(&what, imap.timeout, session.uid_copy(&set, folder)).await {
        Err(e) if e.is_refusal() => {
            tracing::debug!(folder, "{e}; creating the folder and retrying");
            folders::create(session, imap, folder).await?;
            bounded(&what, imap.timeout, session.uid_copy(&set, folder)).await?;
        }
        other => other?,
    }
    bounded(
        format!("UID STORE {set} +FLAGS.SILENT (\\Deleted)"),
        imap.timeout,
        async {
            session
                .uid_store(&set, "+FLAGS.SILENT (\\Deleted)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        },
    )
    .await?;
    if caps.uidplus {
        bounded(format!("UID EXPUNGE {set}"), imap.timeout, async {
            session
                .uid_expunge(&set)
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
    }
    Ok(())
}
