//! Continuity (issue 16): a shared mailbox must not be lost. The helpdesk's guidance is at least
//! two members, because "if a single member leaves, and does not arrange for a colleague to be
//! added in their place", mail to the site goes unread and the next manager cannot get in.
//!
//! [`assess`] lists the mailboxes at risk under `[continuity]`; [`remind`] is one pass of the
//! reminders: each at-risk mailbox is emailed (through the outbox, under the daily reply cap
//! like every answer) at most once per `remind_every`, and its episode is closed, with no
//! more reminders, as soon as a pass finds it no longer at risk. `postroom run` makes a pass
//! every hour; `postroom continuity remind` makes one now.

use crate::action::AuditAction;
use crate::config::Config;
use crate::store::continuity::{self as rows, Episode, MailboxCounts};
use crate::store::journal::{self, NewAuditEvent, NewOutboxItem, ReplyCap};
use crate::store::{Conn, Store, StoreError, format_ms, now_ms};
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;

/// Why a mailbox is at risk. Each has a stable code (CLI, JSON, page, audit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "code", rename_all = "snake_case")]
pub enum Risk {
    /// Fewer active members than `min_members`.
    FewMembers { active: i64, min: u32 },
    /// Owners exist but none is active (locked or disabled): nobody may ask for changes.
    OwnerUnavailable { owners: i64 },
    /// No owner at all.
    NoOwner,
    /// No request from the mailbox for `days` days (by postroom's record).
    Inactive { days: u32 },
}

impl Risk {
    pub fn code(&self) -> &'static str {
        match self {
            Risk::FewMembers { .. } => "few_members",
            Risk::OwnerUnavailable { .. } => "owner_unavailable",
            Risk::NoOwner => "no_owner",
            Risk::Inactive { .. } => "inactive",
        }
    }

    /// A few words for staff, from a stored code (the page lists episodes by their codes).
    pub fn label(code: &str) -> &'static str {
        match code {
            "few_members" => "too few active members",
            "owner_unavailable" => "owner locked or disabled",
            "no_owner" => "no owner",
            "inactive" => "no request for a long time",
            _ => "unknown",
        }
    }

    /// One line for the site and for staff.
    pub fn sentence(&self) -> String {
        match self {
            Risk::FewMembers { active, min } => format!(
                "it has {active} active member{} (we advise at least {min})",
                if *active == 1 { "" } else { "s" }
            ),
            Risk::OwnerUnavailable { owners } => format!(
                "its owner{} locked or disabled, so nobody can ask us for changes to it",
                if *owners == 1 { " is" } else { "s are all" }
            ),
            Risk::NoOwner => "it has no owner, so nobody can ask us for changes to it".into(),
            Risk::Inactive { days } => {
                format!("we have had no request from it for more than {days} days")
            }
        }
    }
}

/// A mailbox at risk, with its reminders so far.
#[derive(Debug, Clone, Serialize)]
pub struct AtRisk {
    pub mailbox: String,
    pub organisation: String,
    pub members: i64,
    pub active_members: i64,
    pub owners: i64,
    pub active_owners: i64,
    pub risks: Vec<Risk>,
    /// When it was first found at risk (RFC 3339), once a pass has seen it.
    pub since: Option<String>,
    pub reminders_sent: i64,
    pub last_reminded: Option<String>,
    #[serde(skip)]
    mailbox_id: i64,
}

fn risks_of(m: &MailboxCounts, last_request: Option<i64>, cfg: &Config, now: i64) -> Vec<Risk> {
    let c = &cfg.continuity;
    let mut risks = Vec::new();
    if c.min_members > 0 && m.active_members < i64::from(c.min_members) {
        risks.push(Risk::FewMembers {
            active: m.active_members,
            min: c.min_members,
        });
    }
    if m.owners == 0 {
        risks.push(Risk::NoOwner);
    } else if m.active_owners == 0 {
        risks.push(Risk::OwnerUnavailable { owners: m.owners });
    }
    if c.inactive_days > 0 {
        let last = last_request.unwrap_or(m.created_at).max(m.created_at);
        if now.saturating_sub(last) > i64::from(c.inactive_days) * 86_400_000 {
            risks.push(Risk::Inactive {
                days: c.inactive_days,
            });
        }
    }
    risks
}

/// Every mailbox at risk now, with its open reminder episode.
pub async fn assess(conn: &mut Conn, cfg: &Config) -> Result<Vec<AtRisk>, StoreError> {
    let counts = rows::mailbox_counts(conn).await?;
    let last: HashMap<String, i64> = if cfg.continuity.inactive_days > 0 {
        rows::last_requests(conn).await?.into_iter().collect()
    } else {
        HashMap::new()
    };
    let episodes: HashMap<i64, Episode> = rows::episodes(conn)
        .await?
        .into_iter()
        .filter(|e| e.fixed_at.is_none())
        .map(|e| (e.mailbox_id, e))
        .collect();
    let now = now_ms();
    Ok(counts
        .into_iter()
        .filter_map(|m| {
            let risks = risks_of(&m, last.get(&m.address).copied(), cfg, now);
            if risks.is_empty() {
                return None;
            }
            let open = episodes.get(&m.mailbox_id);
            Some(AtRisk {
                mailbox_id: m.mailbox_id,
                mailbox: m.address,
                organisation: m.organisation,
                members: m.members,
                active_members: m.active_members,
                owners: m.owners,
                active_owners: m.active_owners,
                risks,
                since: open.map(|e| format_ms(e.since)),
                reminders_sent: open.map_or(0, |e| e.sent_count),
                last_reminded: open.and_then(|e| e.last_sent_at).map(format_ms),
            })
        })
        .collect())
}

/// What one pass did.
#[derive(Debug, Default, Serialize)]
pub struct Pass {
    pub at_risk: usize,
    /// Mailboxes emailed in this pass.
    pub reminded: Vec<String>,
    /// Mailboxes not reminded because their last reminder is recent.
    pub waiting: usize,
    /// Mailboxes the daily reply cap kept from being reminded (tried again next pass).
    pub capped: Vec<String>,
    /// Mailboxes no longer at risk: their episode is closed, reminders stop.
    pub fixed: Vec<String>,
}

/// One pass of the reminders, in one transaction. With `send` false (`[continuity]
/// reminders = false`), episodes are still opened and closed but nobody is emailed.
pub async fn remind(store: &Store, cfg: &Config, send: bool) -> Result<Pass, StoreError> {
    let mut tx = store.begin().await?;
    let at_risk = assess(&mut tx, cfg).await?;
    let all = rows::episodes(&mut tx).await?;
    let addresses: HashMap<i64, String> = rows::mailbox_counts(&mut tx)
        .await?
        .into_iter()
        .map(|m| (m.mailbox_id, m.address))
        .collect();
    let now = now_ms();
    let every = i64::try_from(cfg.continuity.remind_every.as_millis()).unwrap_or(i64::MAX);
    let mut pass = Pass {
        at_risk: at_risk.len(),
        ..Pass::default()
    };
    let risky: HashMap<i64, &AtRisk> = at_risk.iter().map(|a| (a.mailbox_id, a)).collect();

    // Episodes whose mailbox is fine now: closed, and said so in the audit.
    for e in all.iter().filter(|e| e.fixed_at.is_none()) {
        if risky.contains_key(&e.mailbox_id) {
            continue;
        }
        let address = addresses.get(&e.mailbox_id).cloned().unwrap_or_default();
        rows::save_episode(
            &mut tx,
            &Episode {
                fixed_at: Some(now),
                ..e.clone()
            },
        )
        .await?;
        journal::insert_audit(
            &mut tx,
            &NewAuditEvent {
                actor: "postroom",
                on_behalf_of: None,
                action: AuditAction::ContinuityFixed.as_str(),
                subject: Some(&address),
                detail: json!({ "risks": e.risks, "reminders_sent": e.sent_count }),
                request_id: None,
                message_id: None,
            },
        )
        .await?;
        pass.fixed.push(address);
    }

    let open: HashMap<i64, &Episode> = all
        .iter()
        .filter(|e| e.fixed_at.is_none())
        .map(|e| (e.mailbox_id, e))
        .collect();
    for a in &at_risk {
        let codes: Vec<&str> = a.risks.iter().map(Risk::code).collect();
        let mut episode = match open.get(&a.mailbox_id) {
            Some(e) => (*e).clone(),
            None => Episode {
                mailbox_id: a.mailbox_id,
                since: now,
                risks: String::new(),
                sent_count: 0,
                last_sent_at: None,
                fixed_at: None,
            },
        };
        episode.risks = codes.join(",");
        let due = episode
            .last_sent_at
            .is_none_or(|last| now.saturating_sub(last) >= every);
        if !send || !due {
            if send {
                pass.waiting += 1;
            }
            rows::save_episode(&mut tx, &episode).await?;
            continue;
        }
        let n = episode.sent_count + 1;
        if queue_reminder(&mut tx, cfg, a, n).await? {
            episode.sent_count = n;
            episode.last_sent_at = Some(now);
            journal::insert_audit(
                &mut tx,
                &NewAuditEvent {
                    actor: "postroom",
                    on_behalf_of: None,
                    action: AuditAction::ContinuityReminded.as_str(),
                    subject: Some(&a.mailbox),
                    detail: json!({ "risks": a.risks, "reminder": n }),
                    request_id: None,
                    message_id: None,
                },
            )
            .await?;
            pass.reminded.push(a.mailbox.clone());
        } else {
            pass.capped.push(a.mailbox.clone());
        }
        rows::save_episode(&mut tx, &episode).await?;
    }
    tx.commit().await?;
    Ok(pass)
}

/// Queue reminder number `n` to the mailbox, under the daily reply cap (false: the cap is
/// reached; a reminder never pushes an answer to a request out of the day's quota by more
/// than the cap allows).
async fn queue_reminder(
    conn: &mut Conn,
    cfg: &Config,
    a: &AtRisk,
    n: i64,
) -> Result<bool, StoreError> {
    let subject = format!("Your shared mailbox {} needs attention", a.mailbox);
    let body = reminder_body(cfg, a, n);
    // Our own Message-ID form (`reply::is_our_message_id`): a reply to it is recognised as an
    // answer to us, and what a person writes back is read by a person.
    let mut token = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut token);
    let message_id = format!(
        "{}-000000.continuity{}x{}@{}",
        cfg.helpdesk.reference_prefix,
        n,
        hex::encode(token),
        cfg.helpdesk.domain()
    );
    let cap = i64::from(cfg.limits.max_replies_per_mailbox_per_day);
    let queued = journal::enqueue_reply_capped(
        conn,
        &NewOutboxItem {
            request_id: None,
            to: &a.mailbox,
            subject: &subject,
            body: &body,
            message_id: &message_id,
            in_reply_to: None,
            references: None,
            secret: None,
        },
        &ReplyCap {
            max: cap,
            since_ms: now_ms() - 24 * 3600 * 1000,
            last_note: "",
        },
    )
    .await?;
    Ok(queued.is_some())
}

/// The note to the site: kind, why it matters, and exactly what to send.
pub fn reminder_body(cfg: &Config, a: &AtRisk, n: i64) -> String {
    let helpdesk = &cfg.helpdesk;
    let why: String = a
        .risks
        .iter()
        .map(|r| format!("  - {}.\n", r.sentence()))
        .collect();
    let ownerless = a
        .risks
        .iter()
        .any(|r| matches!(r, Risk::NoOwner | Risk::OwnerUnavailable { .. }));
    let fix = if ownerless {
        format!(
            "As no owner can ask for it, please reply to this email with the name and address of the \
             person who should become an owner of {mb}. A member of the helpdesk team will check it \
             with you and make the change.\n",
            mb = a.mailbox
        )
    } else {
        format!(
            "To fix it, an owner of the mailbox can send a new email from {mb} to {hd} like this one \
             (fill in your colleague's address and your own):\n\n\
             \x20   Subject: Add member\n\n\
             \x20   Please add a colleague to this shared mailbox.\n\
             \x20   Account: colleague.name@{domain}\n\
             \x20   Requested by: your.name@{domain}\n",
            mb = a.mailbox,
            hd = helpdesk.address,
            domain = a.mailbox.rsplit_once('@').map_or("", |(_, d)| d),
        )
    };
    format!(
        "Hello,\n\n\
         This is a friendly note about the shared mailbox {mb} ({org}). It is at risk of being lost:\n\n\
         {why}\n\
         Why this matters: if the only person who can read a shared mailbox is away or leaves, the \
         emails sent to it go unread, and nobody is left who can ask us to let a new colleague in.\n\n\
         {fix}\n\
         We will remind you every {every} until it is fixed (this is reminder {n}); once it is, \
         these notes stop by themselves.\n\n\
         -- \n{name} (automatic message from {hd})\n",
        mb = a.mailbox,
        org = a.organisation,
        every = humantime::format_duration(cfg.continuity.remind_every),
        name = helpdesk.name,
        hd = helpdesk.address,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        Config::from_toml_with_env(
            &format!("[helpdesk]\naddress = \"helpdesk@nhs.example\"\n{extra}"),
            &[],
        )
        .unwrap()
    }

    fn counts(members: i64, active: i64, owners: i64, active_owners: i64) -> MailboxCounts {
        MailboxCounts {
            mailbox_id: 1,
            address: "rosehill.care@nhs.example".into(),
            organisation: "Rosehill".into(),
            created_at: 0,
            members,
            active_members: active,
            owners,
            active_owners,
        }
    }

    #[test]
    fn the_rules() {
        let c = cfg("");
        let now = 100 * 86_400_000;
        assert!(risks_of(&counts(2, 2, 1, 1), None, &c, now).is_empty());
        assert_eq!(
            risks_of(&counts(2, 1, 1, 1), None, &c, now),
            [Risk::FewMembers { active: 1, min: 2 }]
        );
        assert_eq!(
            risks_of(&counts(3, 2, 1, 0), None, &c, now),
            [Risk::OwnerUnavailable { owners: 1 }]
        );
        assert_eq!(
            risks_of(&counts(3, 3, 0, 0), None, &c, now),
            [Risk::NoOwner]
        );
        // Inactivity counts only when configured, from the last request or the mailbox's
        // creation, whichever is later.
        let c = cfg("[continuity]\ninactive_days = 30\nmin_members = 0\n");
        assert_eq!(
            risks_of(&counts(1, 1, 1, 1), Some(now - 31 * 86_400_000), &c, now),
            [Risk::Inactive { days: 30 }]
        );
        assert!(risks_of(&counts(1, 1, 1, 1), Some(now - 86_400_000), &c, now).is_empty());
    }

    #[test]
    fn a_bad_setting_names_its_key() {
        let e = Config::from_toml_with_env(
            "[helpdesk]\naddress = \"helpdesk@nhs.example\"\n[continuity]\nremind_every = \"5m\"\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("continuity.remind_every"), "{e}");
        let e = Config::from_toml_with_env(
            "[helpdesk]\naddress = \"helpdesk@nhs.example\"\n[continuity]\nremind = true\n",
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("remind"), "{e}");
    }
}
