//! What a site asks for: the closed set of kinds and the grammar that reads them from email.
//!
//! `extract` reads a message (pure: no I/O); the grammar is split by what each part does:
//! [`tokens`] (sentences and words), [`wording`] (how each kind is asked), [`names`] (people
//! named), [`intent`] (questions, negations, hypotheticals, mentions in passing), [`asks`]
//! (one ask per person and kind), [`disclaimer`] (confidentiality notices, cut off), [`signature`] (the closing and its signer) and [`understand`]
//! (the whole message: subject, fields, forwards, thanks). See `docs/understanding.md`.
pub mod asks;
pub mod block_kind;
pub mod disclaimer;
pub mod extract;
pub mod intent;
pub mod kinds;
pub mod lines;
pub mod model;
pub mod names;
pub mod signature;
pub mod tokens;
pub mod understand;
pub mod wording;

pub use kinds::{RequestKind, Role};
