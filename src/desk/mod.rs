//! The request desk: what happens to a request once it is decided, whoever decided it.
//!
//! The pipeline (a new message), the staff page (apply as, reject) and a confirmation code all
//! end the same way, in [`settle`]: record the decision, make the change ([`apply`]) or write
//! its audit event, issue a confirmation code ([`code`]) when the change waits for one, and
//! answer the site ([`answer`]). What every path reads first — the directory around a message
//! ([`snapshot`]) and, for a request decided again, its stored message ([`stored`]) — is here
//! too. See `docs/architecture.md`.

pub mod answer;
pub mod apply;
pub mod code;
pub mod processed;
pub mod provision_job;
pub mod settle;
pub mod snapshot;
pub mod stored;

/// Whether the transaction is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    /// Run every step, then roll back: nothing is written.
    DryRun,
}
