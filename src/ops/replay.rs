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
use crate::outcome::Outcome;
use crate::pipeline;
use crate::store::replay::{self, ReplayMessage};
use crate::store::{Store, StoreError};
use serde::Serialize;

/// One message whose outcome would change.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub message: i64,
    pub reference: Option<String>,
    pub was: String,
    pub now: String,
    pub reason: Option<String>,
    pub explanation: Option<String>,
    /// With a directory target: what the new decision would do there.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
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
        replay::message_ids_since(&mut conn, since_ms).await?
    };
    let mut summary = ReplaySummary::default();
    let mut progress = Progress::new("replay", ids.len() as u64);
    for id in ids {
        // One message at a time: memory stays flat whatever the period.
        let row = {
            let mut conn = store.read().await?;
            replay::message(&mut conn, id).await?
        };
        progress.inc(1);
        let Some(ReplayMessage {
            raw,
            outcome: was,
            reference,
            raw_deleted_at: deleted,
        }) = row
        else {
            continue;
        };
        if deleted.is_some() || raw.is_empty() {
            summary.skipped += 1;
            continue;
        }
        let now = pipeline::replay(store, cfg, &raw, &format!("replay:{id}")).await?;
        summary.replayed += 1;
        if was != Some(now.outcome) {
            summary.changed += 1;
            on_change(&Change {
                message: id,
                reference,
                was: was.map_or("unknown", Outcome::as_str).to_owned(),
                now: now.outcome.as_str().to_owned(),
                reason: now.reason,
                explanation: now.explanation,
                operations: now.operations,
            });
        }
    }
    progress.finish();
    Ok(summary)
}
