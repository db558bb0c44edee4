//! `postroom replay --since DATE --dry-run`: run stored messages through the current rules and
//! directory and report the outcomes that would change — what a helpdesk lead wants to see
//! before changing a policy. Nothing is written: each message is decided in a transaction that
//! is rolled back.
//!
//! The directory is today's, not the one each message first met: a request applied at the
//! time (say, adding a member) may now be refused as already done. The report shows both
//! outcomes and the reason so such cases are easy to tell apart.

use super::progress::Progress;
use crate::config::Config;
use crate::pipeline;
use crate::store::{Store, StoreError};
use serde::Serialize;
use sqlx::Row;

/// One message whose outcome would change.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub message: i64,
    pub reference: Option<String>,
    pub was: String,
    pub now: String,
    pub reason: Option<String>,
    pub explanation: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct ReplaySummary {
    pub replayed: usize,
    pub changed: usize,
    /// Stored without their raw bytes (retention), so not replayed.
    pub skipped: usize,
}

/// Replay every message received since `since_ms`, oldest first; `on_change` gets each change.
pub async fn replay(
    store: &Store,
    cfg: &Config,
    since_ms: i64,
    mut on_change: impl FnMut(&Change),
) -> Result<ReplaySummary, StoreError> {
    let ids: Vec<i64> = {
        let mut conn = store.read().await?;
        sqlx::query_scalar("SELECT id FROM messages WHERE received_at >= $1 ORDER BY id")
            .bind(since_ms)
            .fetch_all(&mut *conn)
            .await?
    };
    let mut summary = ReplaySummary::default();
    let mut progress = Progress::new("replay", ids.len() as u64);
    for id in ids {
        // One message at a time: memory stays flat whatever the period.
        let row = {
            let mut conn = store.read().await?;
            sqlx::query(
                "SELECT m.raw, COALESCE(m.outcome, r.outcome), r.reference, m.raw_deleted_at FROM messages m \
                 LEFT JOIN requests r ON r.id = m.request_id OR (m.request_id IS NULL AND r.message_id = m.id) \
                 WHERE m.id = $1 LIMIT 1",
            )
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
        };
        progress.inc(1);
        let Some(row) = row else { continue };
        let raw: Vec<u8> = row.try_get(0)?;
        let was: Option<String> = row.try_get(1)?;
        let reference: Option<String> = row.try_get(2)?;
        let deleted: Option<i64> = row.try_get(3)?;
        if deleted.is_some() || raw.is_empty() {
            summary.skipped += 1;
            continue;
        }
        let now = pipeline::replay(store, cfg, &raw, &format!("replay:{id}")).await?;
        summary.replayed += 1;
        let was = was.unwrap_or_else(|| "unknown".into());
        if now.outcome.as_str() != was {
            summary.changed += 1;
            on_change(&Change {
                message: id,
                reference,
                was,
                now: now.outcome.as_str().to_owned(),
                reason: now.reason,
                explanation: now.explanation,
            });
        }
    }
    progress.finish();
    Ok(summary)
}
