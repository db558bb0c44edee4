//! Making a decided change: the directory writes, with an audit event for each part of it.
//! Runs inside the message's transaction.

use crate::action::AuditAction;
use crate::desk::Mode;
use crate::password;
use crate::policy::{self, Decision, Plan};
use crate::provision::Operation;
use crate::reply::Applied;
use crate::request::Role;
use crate::store::directory::{self, AccountStatus, NewAccount};
use crate::store::journal::{self, NewAuditEvent};
use crate::store::{Conn, StoreError};
use serde_json::json;

/// Whom and what a change is recorded against in the audit trail.
pub struct Audit<'a> {
    pub actor: &'a str,
    pub request_id: i64,
    pub message_db_id: i64,
    /// The request's own event (`request.applied`…), when the caller has one to write: it is
    /// written first, with the change's events, in one statement.
    pub lead: Option<NewAuditEvent<'a>>,
}

/// What a change made: the sentences for the site, and the operations it means at the
/// directory where accounts really live (`provision`; unused when postroom's database is the
/// directory).
pub struct Made {
    pub applied: Applied,
    pub operations: Vec<Operation>,
}

/// Make the change, with an audit event for each part of it.
pub async fn apply(
    conn: &mut Conn,
    plan: &Plan,
    d: &Decision,
    audit: Audit<'_>,
    mode: Mode,
) -> Result<Made, StoreError> {
    let Audit {
        actor,
        request_id,
        message_db_id,
        lead,
    } = audit;
    let mut out = Applied::default();
    let mut ops: Vec<Operation> = Vec::new();
    let mut events: Vec<(&'static str, String, serde_json::Value)> = Vec::new();
    let target = d.target.clone().unwrap_or_default();
    let mailbox = d.mailbox.clone().unwrap_or_default();

    match plan {
        Plan::NewAccount {
            organisation_id,
            mailbox_id,
            domain,
            first,
            last,
            name,
            job_title,
            role,
        } => {
            let address = allocate_address(conn, first, last, domain).await?;
            let (pw, hash) = new_password(mode).await?;
            let account_id = directory::insert_account(
                conn,
                &NewAccount {
                    organisation_id: *organisation_id,
                    address: &address,
                    name,
                    job_title: job_title.as_deref(),
                    status: AccountStatus::Active,
                    password_hash: Some(&hash),
                    must_change: true,
                },
            )
            .await?;
            directory::upsert_membership(conn, *mailbox_id, account_id, *role).await?;
            ops.push(Operation::CreateAccount {
                address: address.clone(),
                name: name.clone(),
                first: first.clone(),
                last: last.clone(),
                job_title: job_title.clone(),
                password: pw.clone(),
            });
            ops.push(Operation::AddMember {
                mailbox: mailbox.clone(),
                account: address.clone(),
                role: *role,
            });
            out.done
                .push(format!("Created the account {address} for {name}."));
            out.done
                .push(format!("Added {address} to {mailbox} as {role}."));
            out.temporary_password = Some(pw);
            events.push((
                AuditAction::AccountCreated.as_str(),
                address.clone(),
                json!({ "name": name, "job_title": job_title }),
            ));
            events.push((
                AuditAction::MembershipAdded.as_str(),
                address,
                json!({ "mailbox": mailbox, "role": role }),
            ));
        }
        Plan::PasswordReset { account_id } => {
            let (pw, hash) = new_password(mode).await?;
            directory::set_temporary_password(conn, *account_id, &hash).await?;
            ops.push(Operation::ResetPassword {
                address: target.clone(),
                password: pw.clone(),
            });
            out.done.push(format!(
                "Reset the password of {target}; the account is unlocked."
            ));
            out.temporary_password = Some(pw);
            events.push((
                AuditAction::PasswordReset.as_str(),
                target.clone(),
                json!({ "must_change": true }),
            ));
        }
        Plan::Unlock { account_id, from } => {
            directory::set_status(conn, *account_id, AccountStatus::Active).await?;
            ops.push(Operation::Unlock {
                address: target.clone(),
            });
            out.done.push(format!(
                "{target} was {from} and is now active. The password is unchanged."
            ));
            events.push((
                AuditAction::AccountUnlocked.as_str(),
                target.clone(),
                json!({ "from": from }),
            ));
        }
        Plan::AddMember {
            mailbox_id,
            account_id,
            role,
        } => {
            directory::upsert_membership(conn, *mailbox_id, *account_id, *role).await?;
            ops.push(Operation::AddMember {
                mailbox: mailbox.clone(),
                account: target.clone(),
                role: *role,
            });
            out.done
                .push(format!("Added {target} to {mailbox} as {role}."));
            events.push((
                AuditAction::MembershipAdded.as_str(),
                target.clone(),
                json!({ "mailbox": mailbox, "role": role }),
            ));
        }
        Plan::RemoveMember {
            mailbox_id,
            account_id,
        } => {
            // The role it had goes into the trail: membership as of a date (audit::as_of)
            // cannot tell it otherwise for a membership older than the trail.
            let role = directory::account_memberships(conn, *account_id)
                .await?
                .into_iter()
                .find(|m| m.mailbox_id == *mailbox_id)
                .map(|m| m.role);
            directory::remove_membership(conn, *mailbox_id, *account_id).await?;
            ops.push(Operation::RemoveMember {
                mailbox: mailbox.clone(),
                account: target.clone(),
            });
            out.done.push(format!("Removed {target} from {mailbox}."));
            events.push((
                AuditAction::MembershipRemoved.as_str(),
                target.clone(),
                json!({ "mailbox": mailbox, "role": role }),
            ));
        }
        Plan::ChangeRole {
            mailbox_id,
            account_id,
            from,
            to,
        } => {
            directory::upsert_membership(conn, *mailbox_id, *account_id, *to).await?;
            ops.push(Operation::ChangeRole {
                mailbox: mailbox.clone(),
                account: target.clone(),
                role: *to,
            });
            out.done
                .push(format!("{target} is now {to} of {mailbox} (was {from})."));
            events.push((
                AuditAction::MembershipRoleChanged.as_str(),
                target.clone(),
                json!({ "mailbox": mailbox, "from": from, "to": to }),
            ));
        }
        Plan::Leaver {
            account_id,
            mailbox_ids,
            replacement,
        } => {
            // The replacement takes over first, so no mailbox is ever without an owner.
            if let Some(r) = replacement {
                for (mailbox_id, mailbox_address, previous) in &r.mailboxes {
                    directory::upsert_membership(conn, *mailbox_id, r.account_id, Role::Owner)
                        .await?;
                    ops.push(Operation::AddMember {
                        mailbox: mailbox_address.clone(),
                        account: r.address.clone(),
                        role: Role::Owner,
                    });
                    out.done.push(format!(
                        "{} is now owner of {mailbox_address} in place of {target}.",
                        r.address
                    ));
                    let action = if previous.is_some() {
                        AuditAction::MembershipRoleChanged.as_str()
                    } else {
                        AuditAction::MembershipAdded.as_str()
                    };
                    events.push((
                        action,
                        r.address.clone(),
                        json!({ "mailbox": mailbox_address, "from": previous, "to": Role::Owner, "replacing": target }),
                    ));
                }
            }
            let memberships = directory::account_memberships(conn, *account_id).await?;
            for m in memberships
                .iter()
                .filter(|m| mailbox_ids.contains(&m.mailbox_id))
            {
                directory::remove_membership(conn, m.mailbox_id, *account_id).await?;
                ops.push(Operation::RemoveMember {
                    mailbox: m.mailbox.clone(),
                    account: target.clone(),
                });
                out.done
                    .push(format!("Removed {target} from {}.", m.mailbox));
                events.push((
                    AuditAction::MembershipRemoved.as_str(),
                    target.clone(),
                    json!({ "mailbox": m.mailbox, "role": m.role }),
                ));
            }
            directory::set_status(conn, *account_id, AccountStatus::Disabled).await?;
            ops.push(Operation::Disable {
                address: target.clone(),
            });
            out.done.push(format!("Disabled the account {target}."));
            events.push((
                AuditAction::AccountDisabled.as_str(),
                target.clone(),
                json!({ "leaver": true }),
            ));
        }
    }

    let trail: Vec<NewAuditEvent> = lead
        .into_iter()
        .chain(
            events
                .iter()
                .map(|(action, subject, detail)| NewAuditEvent {
                    actor,
                    on_behalf_of: Some(&mailbox),
                    action,
                    subject: Some(subject),
                    detail: detail.clone(),
                    request_id: Some(request_id),
                    message_id: Some(message_db_id),
                }),
        )
        .collect();
    journal::insert_audits(conn, &trail).await?;
    Ok(Made {
        applied: out,
        operations: ops,
    })
}

/// `first.last@domain`, then `first.last2@domain`… when taken.
async fn allocate_address(
    conn: &mut Conn,
    first: &str,
    last: &str,
    domain: &str,
) -> Result<String, StoreError> {
    let base = format!(
        "{}.{}",
        policy::address_part(first),
        policy::address_part(last)
    );
    for n in 1..=10_000u32 {
        let candidate = if n == 1 {
            format!("{base}@{domain}")
        } else {
            format!("{base}{n}@{domain}")
        };
        if !directory::address_taken(conn, &candidate).await? {
            return Ok(candidate);
        }
    }
    Err(StoreError::Invalid(format!(
        "no free address for {base}@{domain}"
    )))
}

/// A temporary password and its Argon2 hash. A dry run makes neither.
async fn new_password(mode: Mode) -> Result<(String, String), StoreError> {
    if mode == Mode::DryRun {
        return Ok(("(generated when applied)".into(), String::new()));
    }
    let pw = password::temporary();
    let for_hash = pw.clone();
    // Argon2 is deliberately slow: keep it off the async worker threads.
    let hash = tokio::task::spawn_blocking(move || password::hash(&for_hash))
        .await
        .map_err(|e| StoreError::Invalid(format!("password hashing task failed: {e}")))?
        .map_err(StoreError::Invalid)?;
    Ok((pw, hash))
}
