//! Where the watcher is in a folder: its UIDVALIDITY and the next UID not yet seen, in the
//! `imap_state` table (RFC 3501 §2.3.1.1: a UID means something only with its UIDVALIDITY).
//!
//! This is a checkpoint, not the truth about what was processed: the pipeline's dedupe (by
//! Message-ID and bytes) is. So a lost or stale checkpoint costs a rescan, never a second
//! application.

use crate::store::{Store, StoreError, imap_state, now_ms};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    pub uidvalidity: u32,
    pub next_uid: u32,
}

/// `mailbox` is the IMAP account (the login name), `folder` the watched folder.
pub async fn load(
    store: &Store,
    mailbox: &str,
    folder: &str,
) -> Result<Option<Checkpoint>, StoreError> {
    let mut conn = store.read().await?;
    let Some((uidvalidity, next_uid)) = imap_state::load(&mut conn, mailbox, folder).await? else {
        return Ok(None);
    };
    // Values outside u32 can only come from a hand-edited row: treat as no checkpoint.
    match (u32::try_from(uidvalidity), u32::try_from(next_uid)) {
        (Ok(uidvalidity), Ok(next_uid)) => Ok(Some(Checkpoint {
            uidvalidity,
            next_uid,
        })),
        _ => Ok(None),
    }
}

pub async fn save(
    store: &Store,
    mailbox: &str,
    folder: &str,
    c: Checkpoint,
) -> Result<(), StoreError> {
    let mut tx = store.begin().await?;
    imap_state::save(
        &mut tx,
        mailbox,
        folder,
        i64::from(c.uidvalidity),
        i64::from(c.next_uid),
        now_ms(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checkpoint_round_trip_and_update() {
        let store = Store::in_memory().await;
        assert_eq!(load(&store, "hd@x.example", "INBOX").await.unwrap(), None);
        let c = Checkpoint {
            uidvalidity: u32::MAX,
            next_uid: 42,
        };
        save(&store, "hd@x.example", "INBOX", c).await.unwrap();
        assert_eq!(
            load(&store, "hd@x.example", "INBOX").await.unwrap(),
            Some(c)
        );
        let c2 = Checkpoint {
            uidvalidity: 7,
            next_uid: 1,
        };
        save(&store, "hd@x.example", "INBOX", c2).await.unwrap();
        assert_eq!(
            load(&store, "hd@x.example", "INBOX").await.unwrap(),
            Some(c2)
        );
        assert_eq!(load(&store, "hd@x.example", "Other").await.unwrap(), None);
    }
}
