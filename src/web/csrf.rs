//! CSRF tokens: every form carries one in a hidden `_csrf` field, and [`super::auth::guard`]
//! refuses any POST whose token does not match the session's.
//!
//! The token is derived from the session's secret cookie value (SHA-256 with a label), so it
//! needs no storage, differs per session, and cannot be computed from the database (which
//! holds only a different hash of the cookie). The sign-in form, before any session exists,
//! uses a double-submit token instead: a random value in a short-lived cookie and in the form.

use sha2::{Digest, Sha256};

/// The form field every POST carries.
pub const FIELD: &str = "_csrf";

/// The token for forms shown to the session with this cookie value.
pub fn token_for_session(session_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"postroom csrf v1\0");
    h.update(session_token.as_bytes());
    hex::encode(h.finalize())
}

/// Compare without stopping at the first difference, so timing does not reveal how much of a
/// guessed token was right.
pub fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `_csrf` value of a urlencoded form body, if there is exactly one.
pub fn from_form(body: &[u8]) -> Option<String> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).ok()?;
    let mut found = pairs
        .into_iter()
        .filter(|(k, _)| k == FIELD)
        .map(|(_, v)| v);
    let first = found.next()?;
    // Two tokens in one form is not something a page of ours sends.
    found.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_per_session_and_compared_whole() {
        let a = token_for_session("session-a");
        assert_eq!(a.len(), 64);
        assert_ne!(a, token_for_session("session-b"));
        assert!(same(&a, &token_for_session("session-a")));
        assert!(!same(&a, &a[..63]));
        assert!(!same(&a, ""));
    }

    #[test]
    fn the_field_is_read_from_a_form_body() {
        assert_eq!(
            from_form(b"name=x&_csrf=abc%20d&y=1").as_deref(),
            Some("abc d")
        );
        assert_eq!(from_form(b"name=x"), None);
        assert_eq!(from_form(b"_csrf=a&_csrf=b"), None);
        assert_eq!(from_form(&[0xff, 0xfe]), None);
    }
}
