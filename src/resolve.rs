//! The `resolve` step (extract → **resolve** → authorise): a person named in a request ("Ravi
//! Gupta", "Mr R Gupta", "Fatima") becomes an account of the sending mailbox's organisation, or
//! the request goes to a person with the candidates (or the name) quoted.
//!
//! Names are compared by their *keys* ([`NameKeys`]), stored with every account and indexed per
//! organisation (migration 0040): accents folded (Chloë → chloe), case, apostrophes removed
//! (O'Neil → oneil), hyphens read as spaces, titles (Mr, Mrs, Dr…) and dots dropped, spaces
//! collapsed. The rules, in the words a helpdesk lead reads them, are in
//! `docs/understanding.md` ("How names become accounts").
//!
//! The same name in another organisation never matches: every look-up is by organisation.

// The keys themselves are computed in `name_keys` (the store writes them with every account).
pub use crate::name_keys::{NameKeys, name_words, without_title};
use crate::request::RequestKind;
use crate::store::directory::{self, NameMatch};
use crate::store::{Conn, StoreError};

/// How a written name is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameQuery {
    /// "Ravi Gupta": every word.
    Full(String),
    /// "R Gupta", "Mr R. Gupta": an initial and a surname.
    Initial(String),
    /// "Ravi": a first name alone.
    First(String),
}

impl NameQuery {
    /// `None` when nothing of a name is left (titles only, punctuation).
    pub fn of(written: &str) -> Option<NameQuery> {
        let words = name_words(written);
        match words.as_slice() {
            [] => None,
            [one] => Some(NameQuery::First(one.clone())),
            [first, .., last] if first.len() == 1 => {
                Some(NameQuery::Initial(format!("{first} {last}")))
            }
            _ => Some(NameQuery::Full(words.join(" "))),
        }
    }

    /// Words for a person: how the match was made.
    fn how(&self, scope: Scope) -> &'static str {
        match (self, scope) {
            (NameQuery::Full(_), Scope::Organisation) => {
                "the only account of the organisation with that name"
            }
            (NameQuery::Full(_), Scope::Mailbox) => "the only member of the mailbox with that name",
            (NameQuery::Initial(_), Scope::Organisation) => {
                "the only account of the organisation with that initial and surname"
            }
            (NameQuery::Initial(_), Scope::Mailbox) => {
                "the only member of the mailbox with that initial and surname"
            }
            (NameQuery::First(_), Scope::Organisation) => {
                "the only account of the organisation with that first name"
            }
            (NameQuery::First(_), Scope::Mailbox) => {
                "the only member of the mailbox with that first name"
            }
        }
    }
}

// Where a name is looked for is part of what each kind says (`request::kinds`).
pub use crate::request::kinds::Scope;

impl Scope {
    /// Where the names of a request of this kind are looked for (each kind says, in its file:
    /// `Kind::names_among`).
    pub fn for_kind(kind: RequestKind) -> Scope {
        kind.def().names_among()
    }
}

/// What a name resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// Exactly one account: its address and how it was found.
    One { address: String, how: String },
    /// Several accounts share the name: their addresses.
    Several(Vec<String>),
    /// No account has the name.
    None,
    /// A first name alone for a change that cannot be undone by the site (a leaver): a person
    /// checks, with the one candidate named.
    TooLoose(String),
}

/// How many candidates are read for a name (two are enough to know it is ambiguous; a few
/// more name them for staff).
const MAX_CANDIDATES: i64 = 6;

/// Resolve a written name among the accounts of `organisation_id` (or the members of
/// `mailbox_id`), for a request of `kind`.
pub async fn name(
    conn: &mut Conn,
    written: &str,
    organisation_id: i64,
    mailbox_id: i64,
    scope: Scope,
    kind: RequestKind,
) -> Result<Resolved, StoreError> {
    let Some(query) = NameQuery::of(written) else {
        return Ok(Resolved::None);
    };
    let (column, key) = match &query {
        NameQuery::Full(k) => (NameMatch::Full, k.as_str()),
        NameQuery::Initial(k) => (NameMatch::Initial, k.as_str()),
        NameQuery::First(k) => (NameMatch::First, k.as_str()),
    };
    let mailbox = match scope {
        Scope::Mailbox => Some(mailbox_id),
        Scope::Organisation => None,
    };
    let mut found = directory::find_accounts_by_name(
        conn,
        organisation_id,
        mailbox,
        column,
        key,
        MAX_CANDIDATES,
    )
    .await?;
    // A first name alone must be unique in the whole organisation, whatever the scope: "Sam"
    // when the organisation has two Sams is not sure, even if one of them is in the mailbox.
    if matches!(query, NameQuery::First(_)) && scope == Scope::Mailbox && found.len() == 1 {
        let org_wide =
            directory::find_accounts_by_name(conn, organisation_id, None, column, key, 2).await?;
        if org_wide.len() > 1 {
            found = org_wide;
        }
    }
    Ok(match found.as_slice() {
        [] => Resolved::None,
        [one] if matches!(query, NameQuery::First(_)) && kind == RequestKind::Leaver => {
            Resolved::TooLoose(one.clone())
        }
        [one] => Resolved::One {
            address: one.clone(),
            how: query.how(scope).to_owned(),
        },
        _ => {
            found.sort();
            Resolved::Several(found)
        }
    })
}

/// Accounts of the organisation whose whole name folds to the same words as `written` (for a
/// new starter: is there one already?).
pub async fn exact_name(
    conn: &mut Conn,
    written: &str,
    organisation_id: i64,
) -> Result<Vec<String>, StoreError> {
    let key = name_words(written).join(" ");
    if key.is_empty() {
        return Ok(Vec::new());
    }
    directory::find_accounts_by_name(
        conn,
        organisation_id,
        None,
        NameMatch::Full,
        &key,
        MAX_CANDIDATES,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_case_accents_apostrophes_hyphens_titles_and_spaces() {
        assert_eq!(NameKeys::of("Ravi Gupta").full, "ravi gupta");
        assert_eq!(NameKeys::of("  ravi   GUPTA ").full, "ravi gupta");
        assert_eq!(NameKeys::of("Chloë Brontë").full, "chloe bronte");
        assert_eq!(NameKeys::of("Chloe Bronte").full, "chloe bronte");
        assert_eq!(NameKeys::of("Siobhan O'Neil").full, "siobhan oneil");
        assert_eq!(NameKeys::of("Siobhan O’Neil").full, "siobhan oneil");
        assert_eq!(NameKeys::of("Mary-Jane Smith").full, "mary jane smith");
        assert_eq!(NameKeys::of("Mary Jane Smith").full, "mary jane smith");
        assert_eq!(NameKeys::of("Dr. Ravi Gupta").full, "ravi gupta");
        assert_eq!(NameKeys::of("Ravi Gupta").initial, "r gupta");
        assert_eq!(NameKeys::of("Ravi Gupta").first, "ravi");
        assert_eq!(NameKeys::of("Cher").initial, "");
    }

    #[test]
    fn titles_come_off_a_new_name() {
        assert_eq!(without_title("Dr Tariq Aziz"), "Tariq Aziz");
        assert_eq!(without_title("Mrs. J. Smith"), "J. Smith");
        assert_eq!(without_title("Drew Barry"), "Drew Barry");
        // A title alone is left as it is (the rules then find no name).
        assert_eq!(without_title("Dr"), "Dr");
    }

    #[test]
    fn written_names_become_queries() {
        assert_eq!(
            NameQuery::of("Mr R Gupta"),
            Some(NameQuery::Initial("r gupta".into()))
        );
        assert_eq!(
            NameQuery::of("R. Gupta"),
            Some(NameQuery::Initial("r gupta".into()))
        );
        assert_eq!(
            NameQuery::of("ravi gupta"),
            Some(NameQuery::Full("ravi gupta".into()))
        );
        assert_eq!(NameQuery::of("Ravi"), Some(NameQuery::First("ravi".into())));
        assert_eq!(NameQuery::of("Mr."), None);
    }

    #[test]
    fn hostile_names_are_bounded() {
        let long = "a".repeat(10_000);
        assert!(NameKeys::of(&long).full.len() <= crate::name_keys::MAX_NAME_CHARS);
    }
}
