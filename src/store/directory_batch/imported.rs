//! The account row an import writes, as both forms of `directory_batch` take it.

use crate::accounts::AccountStatus;

/// An account an import makes: no job title, no password, nothing to change at sign-in.
pub struct ImportedAccount<'a> {
    pub organisation_id: i64,
    pub address: &'a str,
    pub name: &'a str,
    pub status: AccountStatus,
}
