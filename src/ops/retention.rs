//! Data retention (`[retention]`): raw message bytes are dropped after `raw_messages`
//! (default 400 days) and disabled accounts deleted `disabled_accounts` (default 30 days) after
//! they were disabled — the standing rule for leavers. The audit trail is kept whole: it
//! names accounts by address, so it outlives them.
//!
//! Retention never deletes, edits or summarises an audit event: the triggers that refuse
//! UPDATE and DELETE on `audit_events` (and TRUNCATE on PostgreSQL) have no exception, and the
//! hash chain (`audit::chain`) stays whole. What retention removes is recorded as events of its
//! own, chained like every other: one `account.deleted` per account, and one
//! `messages.raw_dropped` with the count and the range of message ids whose bytes went (the
//! rows, their SHA-256 and the requests stay).
//!
//! It also forgets the entries of `account_status_changes` (migration 0190) older than the
//! directory page looks back ([`crate::store::views::RECENT_STATUS_DAYS`]): that log only
//! stands in for an index, and the audit trail keeps every change.

use crate::action::AuditAction;
use crate::config::Config;
use crate::store::journal::{self, NewAuditEvent};
use crate::store::retention::{self, RawToDrop};
use crate::store::{Store, StoreError, now_ms};
use serde::Serialize;
use serde_json::json;

#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct RetentionReport {
    pub raw_messages_dropped: i64,
    pub accounts_deleted: Vec<String>,
    pub dry_run: bool,
}

fn cutoff(d: std::time::Duration) -> i64 {
    now_ms().saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub async fn run(
    store: &Store,
    cfg: &Config,
    dry_run: bool,
) -> Result<RetentionReport, StoreError> {
    let raw_cutoff = cutoff(cfg.retention.raw_messages);
    let account_cutoff = cutoff(cfg.retention.disabled_accounts);
    let mut tx = store.begin().await?;
    let RawToDrop {
        count: raw_messages_dropped,
        first_id,
        last_id,
    } = retention::raw_to_drop(&mut tx, raw_cutoff).await?;
    let accounts = retention::disabled_accounts(&mut tx, account_cutoff).await?;
    let report = RetentionReport {
        raw_messages_dropped,
        accounts_deleted: accounts.iter().map(|(_, a)| a.clone()).collect(),
        dry_run,
    };
    if dry_run {
        tx.rollback().await?;
        return Ok(report);
    }
    retention::drop_raw(&mut tx, raw_cutoff, now_ms()).await?;
    retention::prune_status_changes(
        &mut tx,
        now_ms().saturating_sub(crate::store::views::RECENT_STATUS_DAYS * 86_400_000),
    )
    .await?;
    for (id, address) in &accounts {
        retention::delete_account(&mut tx, *id).await?;
        journal::insert_audit(
            &mut tx,
            &NewAuditEvent {
                actor: "postroom",
                on_behalf_of: None,
                action: AuditAction::AccountDeleted.as_str(),
                subject: Some(address),
                detail: json!({ "why": "retention: disabled longer than [retention] disabled_accounts" }),
                request_id: None,
                message_id: None,
            },
        )
        .await?;
    }
    if raw_messages_dropped > 0 {
        journal::insert_audit(
            &mut tx,
            &NewAuditEvent {
                actor: "postroom",
                on_behalf_of: None,
                action: AuditAction::MessagesRawDropped.as_str(),
                subject: None,
                detail: json!({
                    "count": raw_messages_dropped,
                    "received_before": crate::store::format_ms(raw_cutoff),
                    "message_ids": [first_id, last_id],
                }),
                request_id: None,
                message_id: None,
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(report)
}
