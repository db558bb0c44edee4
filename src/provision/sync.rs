//! The target's directory read into postroom, and where the two disagree (issue 15):
//! `postroom directory import --from-target` and `postroom directory diff`.
//!
//! Import goes through the CSV import itself (the same checks on every name and address, all
//! or nothing, one audit event), so a directory read from LDAP is held to what a file is.
//! Diff compares memberships, roles and account states; it repairs nothing.

use super::Target;
use super::ldap::{LdapTarget, TargetDirectory, TargetRow};
use crate::directory_csv::{self, ImportSummary};
use crate::store::{Store, directory};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;

/// Read the whole target (only an LDAP target can be read).
pub async fn read_target(target: &Target) -> Result<(String, TargetDirectory)> {
    let Target::Ldap(ldap) = target else {
        bail!(
            "[directory] target = \"{}\" cannot be read: only an ldap target can",
            target.name()
        );
    };
    let connector = LdapTarget::new(ldap).map_err(anyhow::Error::msg)?;
    let read = connector
        .read_all()
        .await
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .with_context(|| format!("reading {}", ldap.url))?;
    Ok((ldap.url.clone(), read))
}

/// What an import from the target did.
#[derive(Debug, Serialize)]
pub struct TargetImport {
    #[serde(flatten)]
    pub summary: ImportSummary,
    pub groups_skipped: usize,
    pub accounts_without_mailbox: usize,
}

/// Import what the target holds, all or nothing.
pub async fn import_from_target(store: &Store, target: &Target) -> Result<TargetImport> {
    let (url, read) = read_target(target).await?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "organisation",
        "mailbox",
        "account",
        "name",
        "role",
        "status",
    ])?;
    for r in &read.rows {
        csv.write_record([
            r.organisation.as_str(),
            r.mailbox.as_str(),
            r.account.as_str(),
            r.name.as_str(),
            r.role.as_str(),
            r.status.as_str(),
        ])?;
    }
    let bytes = csv.into_inner().context("writing the rows")?;
    let summary = directory_csv::import(store, bytes.as_slice(), &url)
        .await
        .with_context(|| format!("{url}: nothing was imported"))?;
    Ok(TargetImport {
        summary,
        groups_skipped: read.groups_skipped,
        accounts_without_mailbox: read.accounts_without_mailbox,
    })
}

/// One place where postroom and the target disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "difference", rename_all = "snake_case")]
pub enum Difference {
    /// postroom lists the membership, the target does not.
    OnlyInPostroom {
        mailbox: String,
        account: String,
        role: String,
    },
    OnlyInTarget {
        mailbox: String,
        account: String,
        role: String,
    },
    Role {
        mailbox: String,
        account: String,
        postroom: String,
        target: String,
    },
    Status {
        account: String,
        postroom: String,
        target: String,
    },
}

/// Compare postroom's directory with the target's: every difference, mailbox by mailbox.
pub async fn diff(store: &Store, target: &Target) -> Result<Vec<Difference>> {
    let (_, read) = read_target(target).await?;
    let ours = directory::export_rows(&mut *store.read().await?).await?;
    let mut postroom: BTreeMap<(String, String), String> = BTreeMap::new();
    let mut status: BTreeMap<String, String> = BTreeMap::new();
    for r in ours {
        if !r.account.is_empty() {
            status.insert(r.account.clone(), r.status.clone());
        }
        if !r.mailbox.is_empty() && !r.account.is_empty() {
            postroom.insert((r.mailbox, r.account), r.role);
        }
    }
    Ok(compare(&postroom, &status, &read.rows))
}

fn compare(
    postroom: &BTreeMap<(String, String), String>,
    status: &BTreeMap<String, String>,
    target: &[TargetRow],
) -> Vec<Difference> {
    let theirs: BTreeMap<(String, String), &TargetRow> = target
        .iter()
        .map(|r| ((r.mailbox.clone(), r.account.clone()), r))
        .collect();
    let mut out = Vec::new();
    for ((mailbox, account), role) in postroom {
        match theirs.get(&(mailbox.clone(), account.clone())) {
            None => out.push(Difference::OnlyInPostroom {
                mailbox: mailbox.clone(),
                account: account.clone(),
                role: role.clone(),
            }),
            Some(t) if t.role.as_str() != role => out.push(Difference::Role {
                mailbox: mailbox.clone(),
                account: account.clone(),
                postroom: role.clone(),
                target: t.role.as_str().to_owned(),
            }),
            Some(_) => {}
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for ((mailbox, account), t) in &theirs {
        if !postroom.contains_key(&(mailbox.clone(), account.clone())) {
            out.push(Difference::OnlyInTarget {
                mailbox: mailbox.clone(),
                account: account.clone(),
                role: t.role.as_str().to_owned(),
            });
        }
        if seen.insert(account.clone())
            && let Some(ours) = status.get(account)
            && ours != t.status.as_str()
        {
            out.push(Difference::Status {
                account: account.clone(),
                postroom: ours.clone(),
                target: t.status.as_str().to_owned(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::AccountStatus;
    use crate::request::Role;

    #[test]
    fn memberships_roles_and_states_are_compared() {
        let row = |mb: &str, a: &str, role: Role, status: AccountStatus| TargetRow {
            organisation: "O".into(),
            mailbox: mb.into(),
            account: a.into(),
            name: a.into(),
            role,
            status,
        };
        let postroom: BTreeMap<_, _> = [
            (("m@x".into(), "a@x".into()), "owner".to_string()),
            (("m@x".into(), "b@x".into()), "member".to_string()),
            (("m@x".into(), "c@x".into()), "member".to_string()),
        ]
        .into();
        let status: BTreeMap<_, _> = [
            ("a@x".to_string(), "active".to_string()),
            ("b@x".to_string(), "active".to_string()),
            ("c@x".to_string(), "active".to_string()),
        ]
        .into();
        let target = vec![
            row("m@x", "a@x", Role::Owner, AccountStatus::Active),
            row("m@x", "b@x", Role::Owner, AccountStatus::Disabled),
            row("m@x", "d@x", Role::Member, AccountStatus::Active),
        ];
        let d = compare(&postroom, &status, &target);
        assert_eq!(d.len(), 4, "{d:?}");
        assert!(d.contains(&Difference::OnlyInPostroom {
            mailbox: "m@x".into(),
            account: "c@x".into(),
            role: "member".into()
        }));
        assert!(d.contains(&Difference::OnlyInTarget {
            mailbox: "m@x".into(),
            account: "d@x".into(),
            role: "member".into()
        }));
        assert!(
            d.iter()
                .any(|x| matches!(x, Difference::Role { account, .. } if account == "b@x"))
        );
        assert!(d.iter().any(|x| matches!(x, Difference::Status { account, target, .. } if account == "b@x" && target == "disabled")));
    }
}
