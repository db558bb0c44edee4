//! What a site asks for: the closed set of kinds and the grammar that reads them from email.
pub mod extract;
pub mod kinds;

pub use kinds::{RequestKind, Role};
