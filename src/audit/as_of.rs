//! "Who could read this mailbox on 3 March?": membership as of any time, rebuilt from the
//! audit trail (`postroom directory at DATE [--mailbox M]`).
//!
//! The directory holds only today's memberships; the trail holds every change postroom made
//! (`membership.added`, `membership.removed`, `membership.role_changed`, each with the request
//! that made it). Walking the trail backwards from today undoes each change and gives every
//! membership as an interval: from when (and by which request) to when (and by which), with its
//! role. A membership older than the trail's first change of it (imported, or from before
//! postroom) has no start: `from` is null.
//!
//! Limits, said where they apply: a directory import records a summary, not each membership it
//! changed, so the history of memberships changed by an import after the time asked is not
//! exact (`imports_after` counts them). Removals record the role they ended; older removal
//! events did not, and the change before it tells the role when there is one (`role` null
//! otherwise).

use crate::action::AuditAction;
use crate::store::{Conn, StoreError, format_ms, membership_history};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One membership over a stretch of time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Interval {
    pub mailbox: String,
    pub account: String,
    /// `member` or `owner`; `None` when the trail does not say (a removal of an imported one).
    pub role: Option<String>,
    /// RFC 3339; `None`: before the trail's record of it (imported or older).
    pub from: Option<String>,
    /// The request (`HD-000042`) or actor that made it, when the trail says.
    pub added_by: Option<String>,
    /// RFC 3339; `None`: still a member.
    pub until: Option<String>,
    pub removed_by: Option<String>,
    #[serde(skip)]
    from_ms: Option<i64>,
    #[serde(skip)]
    until_ms: Option<i64>,
}

impl Interval {
    /// Whether it overlaps `[start, end]` (a day asked: anyone who had access at any moment
    /// of it; an instant: start = end).
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.from_ms.is_none_or(|f| f <= end) && self.until_ms.is_none_or(|u| u > start)
    }
}

/// What `directory at` answers.
#[derive(Debug, Clone, Serialize)]
pub struct AsOf {
    pub memberships: Vec<Interval>,
    /// Directory imports after the start of the time asked: their changes are not itemised.
    pub imports_after: i64,
}

struct Change {
    at: i64,
    action: AuditAction,
    account: String,
    mailbox: String,
    role: Option<String>,
    from_role: Option<String>,
    by: Option<String>,
}

/// Every membership, with its history, overlapping `[start, end]` (Unix ms), optionally of
/// one mailbox.
pub async fn memberships(
    conn: &mut Conn,
    start: i64,
    end: i64,
    mailbox: Option<&str>,
) -> Result<AsOf, StoreError> {
    let all = history(conn, mailbox).await?;
    let imports_after = membership_history::imports_after(conn, start).await?;
    Ok(AsOf {
        memberships: all.into_iter().filter(|i| i.overlaps(start, end)).collect(),
        imports_after,
    })
}

/// Every membership interval the directory and the trail know of, sorted by mailbox, account
/// and start.
pub async fn history(conn: &mut Conn, mailbox: Option<&str>) -> Result<Vec<Interval>, StoreError> {
    let now = membership_history::current(conn, mailbox).await?;
    let events = membership_history::events(conn).await?;
    let mut changes = Vec::with_capacity(events.len());
    for e in events {
        let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
        let text = |k: &str| detail.get(k).and_then(|v| v.as_str()).map(str::to_owned);
        let (Some(account), Some(mb)) = (e.subject, text("mailbox")) else {
            continue;
        };
        if mailbox.is_some_and(|m| !m.eq_ignore_ascii_case(&mb)) {
            continue;
        }
        changes.push(Change {
            at: e.at,
            role: text("role").or_else(|| text("to")),
            from_role: text("from"),
            action: e.action,
            account,
            mailbox: mb,
            by: e.reference.or(Some(e.actor)),
        });
    }

    // Walk backwards from today. `open`: the interval each membership is in at the point
    // reached, whose start is not known yet.
    let mut open: HashMap<(String, String), Interval> = HashMap::new();
    for m in now {
        open.insert(
            (m.mailbox.clone(), m.account.clone()),
            Interval {
                mailbox: m.mailbox,
                account: m.account,
                role: Some(m.role.as_str().to_owned()),
                from: None,
                added_by: None,
                until: None,
                removed_by: None,
                from_ms: None,
                until_ms: None,
            },
        );
    }
    let mut done: Vec<Interval> = Vec::new();
    let ending = |c: &Change, role: Option<String>| Interval {
        mailbox: c.mailbox.clone(),
        account: c.account.clone(),
        role,
        from: None,
        added_by: None,
        until: Some(format_ms(c.at)),
        removed_by: c.by.clone(),
        from_ms: None,
        until_ms: Some(c.at),
    };
    let started = |mut i: Interval, c: &Change, role: Option<String>| {
        i.from = Some(format_ms(c.at));
        i.from_ms = Some(c.at);
        i.added_by = c.by.clone();
        if i.role.is_none() {
            i.role = role;
        }
        i
    };
    for c in changes.iter().rev() {
        let key = (c.mailbox.clone(), c.account.clone());
        match c.action {
            AuditAction::MembershipRemoved => {
                // Not a member after it; an interval ends here, with the role it recorded
                // (removals before it did not: then the change before it tells, if any).
                if let Some(stray) = open.insert(key, ending(c, c.role.clone())) {
                    // The trail and the directory disagree (a change not itemised, e.g. an
                    // import): keep what was known as it stands.
                    done.push(stray);
                }
            }
            AuditAction::MembershipAdded => {
                if let Some(i) = open.remove(&key) {
                    done.push(started(i, c, c.role.clone()));
                }
            }
            AuditAction::MembershipRoleChanged => {
                if let Some(i) = open.remove(&key) {
                    done.push(started(i, c, c.role.clone()));
                }
                open.insert(key, ending(c, c.from_role.clone()));
            }
            // Every other act leaves the intervals as they are.
            AuditAction::RequestApplied
            | AuditAction::RequestRejected
            | AuditAction::RequestNeedsReview
            | AuditAction::RequestAwaitingConfirmation
            | AuditAction::RequestIgnored
            | AuditAction::RequestDuplicate
            | AuditAction::RequestComment
            | AuditAction::RequestClaimed
            | AuditAction::RequestReleased
            | AuditAction::RequestMerged
            | AuditAction::AccountCreated
            | AuditAction::AccountUnlocked
            | AuditAction::AccountDisabled
            | AuditAction::AccountDeleted
            | AuditAction::PasswordReset
            | AuditAction::DirectoryImport
            | AuditAction::DirectoryRepaired
            | AuditAction::ConfirmationAccepted
            | AuditAction::ConfirmationWrongPerson
            | AuditAction::ConfirmationBadCode
            | AuditAction::ConfirmationCodeVoid
            | AuditAction::ConfirmationCodeExpired
            | AuditAction::ConfirmationCodeUsed
            | AuditAction::ConfirmationMessageGone
            | AuditAction::ReplySuppressed
            | AuditAction::OutboxRetry
            | AuditAction::JobDone
            | AuditAction::JobRetried
            | AuditAction::JobFailed
            | AuditAction::JobRetry
            | AuditAction::ContinuityReminded
            | AuditAction::ContinuityFixed
            | AuditAction::RequestOverTarget
            | AuditAction::SavedReplyAdded
            | AuditAction::SavedReplyChanged
            | AuditAction::SavedReplyDeleted
            | AuditAction::SearchSaved
            | AuditAction::SearchDeleted
            | AuditAction::MessagesRawDropped
            | AuditAction::AuditExported
            | AuditAction::ReportExported
            | AuditAction::StaffSignedIn
            | AuditAction::StaffSignedOut
            | AuditAction::StaffAdded
            | AuditAction::StaffPasswordSet
            | AuditAction::StaffDisabled
            | AuditAction::StaffEnabled
            | AuditAction::StaffRoleSet => {}
        }
    }
    done.extend(open.into_values());
    // One sort order for people and tests: mailbox, account, then oldest first.
    let mut sorted: BTreeMap<(String, String, i64, i64), Interval> = BTreeMap::new();
    for i in done {
        let k = (
            i.mailbox.clone(),
            i.account.clone(),
            i.from_ms.unwrap_or(i64::MIN),
            i.until_ms.unwrap_or(i64::MAX),
        );
        sorted.insert(k, i);
    }
    Ok(sorted.into_values().collect())
}
