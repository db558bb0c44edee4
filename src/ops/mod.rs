//! What an operator runs besides the daemon: backups, data retention, replaying stored mail
//! under new rules, a status report, measuring understanding on a labelled corpus, and
//! progress for long work.

pub mod backup;
pub mod config;
pub mod eval;
pub mod jobs;
pub mod progress;
pub mod replay;
pub mod retention;
pub mod status;
