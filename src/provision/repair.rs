//! Repairing drift, only where told (issue 15): make the target agree with postroom's directory
//! for the kinds of difference a person names (`postroom directory repair memberships …`) or the
//! config names (`[directory] reconcile_repair`), and nothing else.
//!
//! postroom's directory is the side that is right: every change in it was decided (by the rules,
//! by a person on the staff page, or by an import someone ran), and audited. A difference means
//! the target was changed behind postroom's back, or a change never reached it. Which way to
//! settle that is a person's call, so nothing is repaired unless asked: an administrator who
//! trusts the target instead runs `directory import --from-target`.
//!
//! Each repair is one operation through the same connector as a request's job (so it converges
//! when repeated), and one audit event `directory.repaired` with what was done or refused.

use super::Target;
use super::config::DriftKind;
use super::ldap::LdapTarget;
use super::operation::{NotDone, Operation};
use super::sync::{Difference, diff};
use crate::action::AuditAction;
use crate::request::Role;
use crate::store::Store;
use crate::store::journal::{self, NewAuditEvent};
use anyhow::{Result, bail};
use serde::Serialize;
use serde_json::json;
use std::str::FromStr;

/// The kind of a difference: what one names to have it repaired.
pub fn kind_of(d: &Difference) -> DriftKind {
    match d {
        Difference::OnlyInPostroom { .. } | Difference::OnlyInTarget { .. } => {
            DriftKind::Memberships
        }
        Difference::Role { .. } => DriftKind::Roles,
        Difference::Status { .. } => DriftKind::Statuses,
    }
}

/// The operation that makes the target agree with postroom, or why there is none.
pub fn operation_for(d: &Difference) -> Result<Operation, String> {
    match d {
        Difference::OnlyInPostroom {
            mailbox,
            account,
            role,
        } => Ok(Operation::AddMember {
            mailbox: mailbox.clone(),
            account: account.clone(),
            role: Role::from_str(role)?,
        }),
        Difference::OnlyInTarget {
            mailbox, account, ..
        } => Ok(Operation::RemoveMember {
            mailbox: mailbox.clone(),
            account: account.clone(),
        }),
        Difference::Role {
            mailbox,
            account,
            postroom,
            ..
        } => Ok(Operation::ChangeRole {
            mailbox: mailbox.clone(),
            account: account.clone(),
            role: Role::from_str(postroom)?,
        }),
        Difference::Status {
            account, postroom, ..
        } => match postroom.as_str() {
            "active" => Ok(Operation::Unlock {
                address: account.clone(),
            }),
            "disabled" => Ok(Operation::Disable {
                address: account.clone(),
            }),
            // postroom records a lock the directory made (failed sign-ins); writing one is not
            // a change postroom makes, and unlocking is what a person asks for.
            other => Err(format!(
                "postroom has {account} {other}: a lock is the directory's own doing, not something to write to it; a person decides"
            )),
        },
    }
}

/// What became of one difference.
#[derive(Debug, Clone, Serialize)]
pub struct Repair {
    #[serde(flatten)]
    pub difference: Difference,
    /// `done`, `refused`, `not_now`, `no_repair` (nothing postroom writes would fix it) or
    /// `planned` (a dry run).
    pub result: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What a repair pass did, and the differences it was not told to repair.
#[derive(Debug, Default, Serialize)]
pub struct RepairPass {
    pub repairs: Vec<Repair>,
    pub left: usize,
}

impl RepairPass {
    pub fn done(&self) -> usize {
        self.repairs.iter().filter(|r| r.result == "done").count()
    }

    /// Repairs asked for that did not happen (refused, not now, or no repair exists).
    pub fn failed(&self) -> usize {
        self.repairs
            .iter()
            .filter(|r| !matches!(r.result, "done" | "planned"))
            .count()
    }
}

/// Repair the differences of the `kinds` named (and of `account` only, if given) by making the
/// target agree with postroom; `dry_run` lists what would be done. Each attempt is audited as
/// `actor`'s.
pub async fn repair(
    store: &Store,
    target: &Target,
    kinds: &[DriftKind],
    account: Option<&str>,
    dry_run: bool,
    actor: &str,
) -> Result<RepairPass> {
    if kinds.is_empty() {
        bail!("name what to repair: memberships, roles, statuses");
    }
    let Target::Ldap(cfg) = target else {
        bail!(
            "[directory] target = \"{}\" cannot be compared: only an ldap target can",
            target.name()
        );
    };
    let connector = LdapTarget::new(cfg).map_err(anyhow::Error::msg)?;
    let differences = diff(store, target).await?;
    let mut pass = RepairPass::default();
    for d in differences {
        let about = match &d {
            Difference::OnlyInPostroom { account, .. }
            | Difference::OnlyInTarget { account, .. }
            | Difference::Role { account, .. }
            | Difference::Status { account, .. } => account.clone(),
        };
        if !kinds.contains(&kind_of(&d)) || account.is_some_and(|a| !a.eq_ignore_ascii_case(&about))
        {
            pass.left += 1;
            continue;
        }
        let op = match operation_for(&d) {
            Ok(op) => op,
            Err(why) => {
                pass.repairs.push(Repair {
                    difference: d,
                    result: "no_repair",
                    operation: None,
                    detail: Some(why),
                });
                continue;
            }
        };
        if dry_run {
            pass.repairs.push(Repair {
                difference: d,
                result: "planned",
                operation: Some(op.name()),
                detail: Some(op.describe()),
            });
            continue;
        }
        let (result, detail, read_back) = match connector.apply(std::slice::from_ref(&op)).await {
            Ok(mut read) => ("done", None, read.pop()),
            Err(NotDone::Rejected(m)) => ("refused", Some(m), None),
            Err(NotDone::RetryLater(m)) => ("not_now", Some(m), None),
        };
        let mut tx = store.begin().await?;
        journal::insert_audit(
            &mut tx,
            &NewAuditEvent {
                actor,
                on_behalf_of: None,
                action: AuditAction::DirectoryRepaired.as_str(),
                subject: Some(&about),
                detail: json!({
                    "difference": &d,
                    "operation": op.name(),
                    "result": result,
                    "target_said": &detail,
                    "read_back": read_back,
                }),
                request_id: None,
                message_id: None,
            },
        )
        .await?;
        tx.commit().await?;
        pass.repairs.push(Repair {
            difference: d,
            result,
            operation: Some(op.name()),
            detail,
        });
    }
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_difference_has_its_kind_and_the_operation_that_settles_it_for_postroom() {
        let only_ours = Difference::OnlyInPostroom {
            mailbox: "m@x".into(),
            account: "a@x".into(),
            role: "owner".into(),
        };
        assert_eq!(kind_of(&only_ours), DriftKind::Memberships);
        assert!(matches!(
            operation_for(&only_ours),
            Ok(Operation::AddMember { role: Role::Owner, ref account, .. }) if account == "a@x"
        ));
        let only_theirs = Difference::OnlyInTarget {
            mailbox: "m@x".into(),
            account: "b@x".into(),
            role: "member".into(),
        };
        assert_eq!(kind_of(&only_theirs), DriftKind::Memberships);
        assert!(matches!(
            operation_for(&only_theirs),
            Ok(Operation::RemoveMember { .. })
        ));
        let role = Difference::Role {
            mailbox: "m@x".into(),
            account: "c@x".into(),
            postroom: "member".into(),
            target: "owner".into(),
        };
        assert_eq!(kind_of(&role), DriftKind::Roles);
        assert!(matches!(
            operation_for(&role),
            Ok(Operation::ChangeRole {
                role: Role::Member,
                ..
            })
        ));
        let status = |ours: &str, theirs: &str| Difference::Status {
            account: "d@x".into(),
            postroom: ours.into(),
            target: theirs.into(),
        };
        assert_eq!(kind_of(&status("active", "locked")), DriftKind::Statuses);
        assert!(matches!(
            operation_for(&status("active", "disabled")),
            Ok(Operation::Unlock { .. })
        ));
        assert!(matches!(
            operation_for(&status("disabled", "active")),
            Ok(Operation::Disable { .. })
        ));
        // postroom never writes a lock: a person decides.
        assert!(
            operation_for(&status("locked", "active")).is_err_and(|e| e.contains("person decides"))
        );
    }

    #[test]
    fn kinds_are_named_in_config_and_on_the_command_line() {
        assert_eq!("roles".parse::<DriftKind>(), Ok(DriftKind::Roles));
        assert!(
            "everything"
                .parse::<DriftKind>()
                .is_err_and(|e| e.contains("memberships"))
        );
        for k in [
            DriftKind::Memberships,
            DriftKind::Roles,
            DriftKind::Statuses,
        ] {
            assert_eq!(k.as_str().parse::<DriftKind>(), Ok(k));
        }
    }
}
