//! postroom: an email request desk for shared mailboxes.
//!
//! One path for every message (see `docs/architecture.md`):
//! parse → screen → extract → authorise → decide → one transaction → reply.

// An `as` cast that can cut a number short, change its sign or wrap it is refused: use
// `try_from` and say what happens when the value does not fit (issue 14).
#![warn(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss
)]

pub mod accounts;
pub mod action;
pub mod audit;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod config_value;
pub mod confirm;
pub mod confirm_config;
pub mod continuity;
pub mod continuity_config;
pub mod cpu;
pub mod daemon;
pub mod deadlines;
pub mod desk;
pub mod directory_csv;
pub mod dkim;
pub mod helpdesk;
pub mod imap;
pub mod jobs;
pub mod lmtp;
pub mod merge;
pub mod message;
pub mod name_keys;
pub mod oauth;
pub mod ops;
pub mod outcome;
pub mod password;
pub mod pipeline;
pub mod policy;
pub mod policy_config;
pub mod provision;
pub mod queue_config;
pub mod reason;
pub mod reply;
pub mod request;
pub mod resolve;
pub mod review;
pub mod saved_reply;
pub mod screen;
pub mod secret;
pub mod smtp;
pub mod status;
pub mod store;
pub mod text;
pub mod tls_client;
pub mod trust;
pub mod web;
pub mod working_time;

pub use outcome::Outcome;
pub use request::{RequestKind, Role};
