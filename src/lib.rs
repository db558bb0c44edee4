//! postroom: an email request desk for shared mailboxes.
//!
//! One path for every message (see `docs/architecture.md`):
//! parse → screen → extract → authorise → decide → one transaction → reply.

pub mod audit;
pub mod check;
pub mod cli;
pub mod clock;
pub mod config;
pub mod confirm;
pub mod continuity;
pub mod daemon;
pub mod desk;
pub mod directory_csv;
pub mod dkim;
pub mod imap;
pub mod message;
pub mod name_keys;
pub mod oauth;
pub mod ops;
pub mod outcome;
pub mod password;
pub mod pipeline;
pub mod policy;
pub mod reason;
pub mod reply;
pub mod request;
pub mod resolve;
pub mod review;
pub mod screen;
pub mod secret;
pub mod smtp;
pub mod status;
pub mod store;
pub mod text;
pub mod trust;
pub mod web;

pub use outcome::Outcome;
pub use request::{RequestKind, Role};
