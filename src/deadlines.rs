//! Ages against a target (issue 17): how much working time a waiting request has left under
//! its kind's `[queue] targets`, the queue's order by it, the counts `/metrics` exports, and
//! the notice to `[queue] notify` when a request passes its target — queued in the outbox
//! once per request, in the transaction that records it (`target_notices`), and audited.
//! `postroom run` makes a pass every minute.

use crate::action::AuditAction;
use crate::config::Config;
use crate::queue_config::QueueConfig;
use crate::request::RequestKind;
use crate::store::journal::{self, NewAuditEvent, NewOutboxItem};
use crate::store::targets::{self, Waiting};
use crate::store::{Store, StoreError, format_ms, now_ms};
use rand::RngCore;
use serde_json::json;
use std::collections::BTreeMap;

/// How a waiting request stands against its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Its kind has no target.
    NoTarget,
    /// Working ms left, more than a quarter of the target.
    OnTime { left_ms: i64 },
    /// A quarter of the target or less left.
    DueSoon { left_ms: i64 },
    /// Past its target by this much working time.
    Over { by_ms: i64 },
}

impl Standing {
    /// How a request of `kind` received at `created_at` stands at `now`.
    pub fn of(q: &QueueConfig, kind: RequestKind, created_at: i64, now: i64) -> Standing {
        let Some(target) = q.target_ms(kind) else {
            return Standing::NoTarget;
        };
        let left = target - q.hours.worked_ms(created_at, now);
        if left < 0 {
            Standing::Over { by_ms: -left }
        } else if left <= target / 4 {
            Standing::DueSoon { left_ms: left }
        } else {
            Standing::OnTime { left_ms: left }
        }
    }

    /// The queue's order: least time left first, requests without a target last.
    fn sort_key(self) -> (u8, i64) {
        match self {
            Standing::Over { by_ms } => (0, -by_ms),
            Standing::DueSoon { left_ms } | Standing::OnTime { left_ms } => (0, left_ms),
            Standing::NoTarget => (1, 0),
        }
    }

    /// A class for the page's colour (the text says the same: colour is never alone).
    pub fn class(self) -> &'static str {
        match self {
            Standing::NoTarget => "target-none",
            Standing::OnTime { .. } => "target-ok",
            Standing::DueSoon { .. } => "target-soon",
            Standing::Over { .. } => "target-over",
        }
    }

    /// Words for the page: `2h 10m left`, `due soon: 20m left`, `over target by 1h 5m`.
    pub fn text(self) -> String {
        match self {
            Standing::NoTarget => "no target".into(),
            Standing::OnTime { left_ms } => format!("{} left", working(left_ms)),
            Standing::DueSoon { left_ms } => format!("due soon: {} left", working(left_ms)),
            Standing::Over { by_ms } => format!("over target by {}", working(by_ms)),
        }
    }
}

/// Working time in hours and minutes (`1h 5m`, `45m`, `0m`).
fn working(ms: i64) -> String {
    let minutes = ms / 60_000;
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// Waiting requests in the queue's order by time left (then oldest first), each with its
/// standing.
pub fn order(q: &QueueConfig, waiting: Vec<Waiting>, now: i64) -> Vec<(Waiting, Standing)> {
    let mut rows: Vec<(Waiting, Standing)> = waiting
        .into_iter()
        .map(|w| {
            let s = Standing::of(q, w.kind, w.created_at, now);
            (w, s)
        })
        .collect();
    rows.sort_by_key(|(w, s)| (s.sort_key(), w.id));
    rows
}

/// Waiting requests over their target, for every kind that has one (0s included, so that a
/// series does not vanish when the queue is clear).
pub fn over_target(q: &QueueConfig, waiting: &[Waiting], now: i64) -> BTreeMap<RequestKind, i64> {
    let mut counts: BTreeMap<RequestKind, i64> = q.targets.keys().map(|k| (*k, 0)).collect();
    for w in waiting {
        if let Standing::Over { .. } = Standing::of(q, w.kind, w.created_at, now) {
            *counts.entry(w.kind).or_insert(0) += 1;
        }
    }
    counts
}

/// One pass of the notices: each waiting request past its target that nobody was told of is
/// notified to `[queue] notify`, in one transaction (the notice's row, the mail in the
/// outbox, the audit event). The references notified; nothing without a `notify` address.
pub async fn notify_overdue(store: &Store, cfg: &Config) -> Result<Vec<String>, StoreError> {
    let Some(to) = cfg.queue.notify.as_deref() else {
        return Ok(Vec::new());
    };
    if cfg.queue.targets.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let mut tx = store.begin().await?;
    let mut notified = Vec::new();
    for r in targets::unnotified(&mut tx).await? {
        let Standing::Over { by_ms } = Standing::of(&cfg.queue, r.kind, r.created_at, now) else {
            continue;
        };
        if !targets::mark_notified(&mut tx, r.id, now).await? {
            continue;
        }
        let subject = format!(
            "[{}] over target: {} waits for a person",
            r.reference,
            r.kind.title()
        );
        let site = r.mailbox.or(r.from_address).unwrap_or_default();
        let body = format!(
            "{reference} ({kind}, from {site}) has waited longer than its target and is still in the review queue.\n\n\
             Subject: {subject}\nReceived: {received}\nOver target by {by} of working time.\n\n\
             Open it on the staff page: /requests/{reference}\n\n\
             -- \npostroom ({helpdesk}): one notice per request; [queue] notify in the config.\n",
            reference = r.reference,
            kind = r.kind.title(),
            subject = r.subject,
            received = format_ms(r.created_at),
            by = working(by_ms),
            helpdesk = cfg.helpdesk.name,
        );
        // Our own Message-ID form (`reply::is_our_message_id`), naming the request: a reply to
        // the notice is read as about it.
        let mut token = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut token);
        let message_id = format!(
            "{}.overdue{}@{}",
            r.reference,
            hex::encode(token),
            cfg.helpdesk.domain()
        );
        // Not the request's reply (request_id none): the site's answers stay its own, and
        // the site's daily cap is not spent on staff mail.
        journal::enqueue_reply(
            &mut tx,
            &NewOutboxItem {
                request_id: None,
                to,
                subject: &subject,
                body: &body,
                message_id: &message_id,
                in_reply_to: None,
                references: None,
                secret: None,
            },
        )
        .await?;
        journal::insert_audit(
            &mut tx,
            &NewAuditEvent {
                actor: "postroom",
                on_behalf_of: None,
                action: AuditAction::RequestOverTarget.as_str(),
                subject: Some(to),
                detail: json!({
                    "kind": r.kind.as_str(),
                    "over_by_ms": by_ms,
                    "notified": to,
                }),
                request_id: Some(r.id),
                message_id: None,
            },
        )
        .await?;
        notified.push(r.reference);
    }
    tx.commit().await?;
    Ok(notified)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::working_time::{WorkingHours, parse_hours};

    const H: i64 = 3_600_000;
    /// Monday 2026-12-07 00:00 UTC.
    const MONDAY: i64 = 1_796_601_600_000;

    fn queue() -> QueueConfig {
        QueueConfig {
            hours: WorkingHours::new(parse_hours(&["Mon-Fri 08:00-18:00".into()]).unwrap(), 0, []),
            targets: [
                (RequestKind::PasswordReset, H),
                (RequestKind::NewAccount, 10 * H),
            ]
            .into_iter()
            .collect(),
            notify: None,
        }
    }

    fn w(id: i64, kind: RequestKind, created_at: i64) -> Waiting {
        Waiting {
            id,
            kind,
            created_at,
        }
    }

    #[test]
    fn the_queue_is_ordered_by_time_left() {
        let q = queue();
        let now = MONDAY + 12 * H;
        let rows = vec![
            w(1, RequestKind::Leaver, MONDAY + 8 * H),
            w(2, RequestKind::NewAccount, MONDAY + 9 * H),
            w(3, RequestKind::PasswordReset, MONDAY + 11 * H + H / 2),
            w(4, RequestKind::PasswordReset, MONDAY + 9 * H),
        ];
        let ordered = order(&q, rows.clone(), now);
        let ids: Vec<i64> = ordered.iter().map(|(w, _)| w.id).collect();
        assert_eq!(ids, vec![4, 3, 2, 1]);
        assert_eq!(ordered[0].1, Standing::Over { by_ms: 2 * H });
        assert_eq!(ordered[0].1.text(), "over target by 2h");
        assert_eq!(ordered[1].1, Standing::OnTime { left_ms: H / 2 });
        assert_eq!(ordered[2].1.text(), "7h left");
        assert_eq!(ordered[3].1.text(), "no target");
        let over = over_target(&q, &rows, now);
        assert_eq!(over[&RequestKind::PasswordReset], 1);
        assert_eq!(over[&RequestKind::NewAccount], 0);
        assert!(!over.contains_key(&RequestKind::Leaver));
        // Due soon: a quarter of the hour left.
        assert_eq!(
            Standing::of(
                &q,
                RequestKind::PasswordReset,
                MONDAY + 9 * H,
                MONDAY + 9 * H + 50 * 60_000
            )
            .class(),
            "target-soon"
        );
    }
}
