//! Provisioning (issue 15): pushing each decided change to the directory where accounts really
//! live — an LDAP server (OpenLDAP or Active Directory) or a program of the operator's — and
//! answering the site only once it is done there.
//!
//! The flow: `desk::apply` makes the change in postroom's database and lists the
//! [`Operation`]s it means at the target; `desk::settle` writes them as one provisioning job
//! (`desk::provision_job::Provision`, a kind of the job queue in `jobs/`) in the same transaction, and holds
//! the request's reply until that job is done. The job's worker applies the operations in
//! order; each converges when repeated, so a job replayed after a crash never doubles. A target
//! that is down delays replies, never intake; one that refuses sends the request to staff
//! (`desk::provision_job`), and the site is told a person is on it.
//!
//! `[directory] target = "none"` (the default) keeps postroom's database as the directory: no
//! job, the reply goes at once.

pub mod command;
pub mod config;
pub mod ldap;
pub mod manual;
pub mod operation;
pub mod repair;
pub mod sync;

pub use config::{DirectoryConfig, Target};
pub use operation::{NotDone, Operation};

use serde_json::Value;

/// A target, built from its config: what applies a request's operations.
pub enum Connector {
    Ldap(ldap::LdapTarget),
    Command(command::CommandTarget),
}

impl Connector {
    /// The connector for `target`, or `None` when postroom's database is the directory.
    pub fn build(target: &Target) -> Result<Option<Connector>, String> {
        Ok(match target {
            // Nothing runs a manual job: it waits for a person (`manual`).
            Target::None | Target::Manual => None,
            Target::Ldap(cfg) => Some(Connector::Ldap(ldap::LdapTarget::new(cfg)?)),
            Target::Command(cfg) => Some(Connector::Command(command::CommandTarget::new(cfg))),
        })
    }

    /// Apply `ops` in order: what each read back, or the first that was not done.
    pub async fn apply(
        &self,
        reference: &str,
        mailbox: &str,
        ops: &[Operation],
    ) -> Result<Vec<Value>, NotDone> {
        match self {
            Connector::Ldap(l) => l.apply(ops).await,
            Connector::Command(c) => c.apply(reference, mailbox, ops).await,
        }
    }
}

/// `postroom check`: can the target be reached? `None`: postroom's database is the directory.
pub async fn check(target: &Target) -> Option<Result<String, String>> {
    Some(match target {
        Target::None => return None,
        Target::Ldap(cfg) => match ldap::LdapTarget::new(cfg) {
            Ok(l) => l.check().await,
            Err(e) => Err(e),
        },
        Target::Command(cfg) => command::CommandTarget::new(cfg).check(),
        Target::Manual => Ok("manual: people make the changes from the request page".into()),
    })
}
