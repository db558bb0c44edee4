//! CSRF tokens: every form carries one in a hidden `_csrf` field, and [`super::auth::guard`]
//! refuses any POST whose token does not match the session's.
//!
//! The token is derived from the session's secret cookie value (SHA-256 with a label), so it
//! needs no storage, differs per session, and cannot be computed from the database (which
//! holds only a different hash of the cookie). The sign-in form, before any session exists,
//! carries a [`LoginToken`]: a random pre-session id and an expiry, signed with a server key
//! (HMAC-SHA256), in a short-lived cookie and in the form. The two must be the same token *and*
//! the signature must be this server's, so a cookie+field pair an attacker made up is refused,
//! and a form minted for one browser does not work with another's cookie (issue 13).

use hmac::{KeyInit, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = hmac::Hmac<sha2_011::Sha256>;

/// How long a sign-in form stays usable.
pub const LOGIN_TOKEN_TTL_MS: i64 = 3600 * 1000;

/// The sign-in form's token: `PRESESSION.EXPIRES.MAC`, where MAC = HMAC-SHA256(server key,
/// label ‖ PRESESSION ‖ EXPIRES).
pub struct LoginToken;

impl LoginToken {
    /// A new token for a new pre-session, valid until `now_ms + LOGIN_TOKEN_TTL_MS`.
    pub fn mint(key: &[u8], now_ms: i64) -> String {
        let presession = crate::password::token(24);
        let expires = now_ms.saturating_add(LOGIN_TOKEN_TTL_MS);
        let mac = login_mac(key, &presession, expires);
        format!("{presession}.{expires}.{mac}")
    }

    /// Whether `field` (from the form) is the token in `cookie`, signed with `key` and not
    /// expired.
    pub fn check(key: &[u8], cookie: &str, field: &str, now_ms: i64) -> bool {
        if cookie.is_empty() || !same(cookie, field) {
            return false;
        }
        let mut parts = cookie.split('.');
        let (Some(presession), Some(expires), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return false;
        };
        let Ok(expires) = expires.parse::<i64>() else {
            return false;
        };
        if expires <= now_ms || expires > now_ms.saturating_add(LOGIN_TOKEN_TTL_MS) {
            return false;
        }
        let Ok(mac) = hex::decode(mac) else {
            return false;
        };
        let Ok(mut m) = HmacSha256::new_from_slice(key) else {
            return false;
        };
        login_message(&mut m, presession, expires);
        // Constant-time comparison inside.
        m.verify_slice(&mac).is_ok()
    }
}

/// How long a browser stays known after its last sign-in.
pub const KNOWN_BROWSER_TTL_MS: i64 = 90 * 24 * 3600 * 1000;

/// A browser someone signed in from: `BROWSER.EXPIRES.MAC`, MAC = HMAC-SHA256(server key,
/// label ‖ staff name ‖ BROWSER ‖ EXPIRES), in an `HttpOnly` cookie for `/login` (the
/// "device cookie" of OWASP's answer to lockout attacks). Tries from a browser known for the
/// name typed are throttled on their own, so other people's failures from the same address, or
/// for the same name, do not lock its owner out.
pub struct KnownBrowser;

impl KnownBrowser {
    /// A token for `name` on browser `id` (a new id when `None`), valid for
    /// [`KNOWN_BROWSER_TTL_MS`].
    pub fn mint(key: &[u8], name: &str, id: Option<&str>, now_ms: i64) -> String {
        let id = id.map_or_else(|| crate::password::token(24), str::to_owned);
        let expires = now_ms.saturating_add(KNOWN_BROWSER_TTL_MS);
        let mac = match HmacSha256::new_from_slice(key) {
            Ok(mut m) => {
                known_message(&mut m, name, &id, expires);
                hex::encode(m.finalize().into_bytes())
            }
            Err(_) => String::new(),
        };
        format!("{id}.{expires}.{mac}")
    }

    /// The browser's id, if `token` was minted here for `name` and has not expired.
    pub fn check(key: &[u8], token: &str, name: &str, now_ms: i64) -> Option<String> {
        let mut parts = token.split('.');
        let (Some(id), Some(expires), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let expires = expires.parse::<i64>().ok()?;
        if expires <= now_ms || expires > now_ms.saturating_add(KNOWN_BROWSER_TTL_MS) {
            return None;
        }
        let mac = hex::decode(mac).ok()?;
        let mut m = HmacSha256::new_from_slice(key).ok()?;
        known_message(&mut m, name, id, expires);
        m.verify_slice(&mac).is_ok().then(|| id.to_owned())
    }
}

fn known_message(m: &mut HmacSha256, name: &str, id: &str, expires: i64) {
    m.update(b"postroom known browser v1\0");
    m.update(name.as_bytes());
    m.update(b"\0");
    m.update(id.as_bytes());
    m.update(b".");
    m.update(expires.to_string().as_bytes());
}

fn login_message(m: &mut HmacSha256, presession: &str, expires: i64) {
    m.update(b"postroom login v1\0");
    m.update(presession.as_bytes());
    m.update(b".");
    m.update(expires.to_string().as_bytes());
}

fn login_mac(key: &[u8], presession: &str, expires: i64) -> String {
    match HmacSha256::new_from_slice(key) {
        Ok(mut m) => {
            login_message(&mut m, presession, expires);
            hex::encode(m.finalize().into_bytes())
        }
        // HMAC takes a key of any length; this cannot happen, and an empty MAC never checks.
        Err(_) => String::new(),
    }
}

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
    fn login_tokens_are_this_servers_and_this_browsers() {
        let key = b"server key";
        let now = 1_000_000;
        let a = LoginToken::mint(key, now);
        let b = LoginToken::mint(key, now);
        assert_ne!(a, b);
        assert!(LoginToken::check(key, &a, &a, now + 1));
        // Another browser's cookie, or no cookie.
        assert!(!LoginToken::check(key, &b, &a, now));
        assert!(!LoginToken::check(key, "", "", now));
        // Another server's key.
        assert!(!LoginToken::check(b"other key", &a, &a, now));
        // Expired, or an expiry the attacker moved.
        assert!(!LoginToken::check(key, &a, &a, now + LOGIN_TOKEN_TTL_MS));
        let (rest, mac) = a.rsplit_once('.').unwrap();
        let (id, _) = rest.split_once('.').unwrap();
        let moved = format!("{id}.{}.{mac}", now + 10);
        assert!(!LoginToken::check(key, &moved, &moved, now));
        // Made up.
        for t in [
            "x",
            "x.99999999999999.00",
            "a.b.c.d",
            &format!("{id}.{}.", now + 10),
        ] {
            assert!(!LoginToken::check(key, t, t, now), "{t}");
        }
    }

    #[test]
    fn known_browsers_are_this_servers_for_this_name() {
        let key = b"server key";
        let now = 1_000_000;
        let t = KnownBrowser::mint(key, "alice", None, now);
        let id = KnownBrowser::check(key, &t, "alice", now + 1).unwrap();
        assert_eq!(id.len(), 24);
        // Renewed with the same id.
        let again = KnownBrowser::mint(key, "alice", Some(&id), now + 5);
        assert_eq!(KnownBrowser::check(key, &again, "alice", now + 6), Some(id));
        assert_eq!(KnownBrowser::check(key, &t, "bob", now), None);
        assert_eq!(KnownBrowser::check(b"other", &t, "alice", now), None);
        assert_eq!(
            KnownBrowser::check(key, &t, "alice", now + KNOWN_BROWSER_TTL_MS),
            None
        );
        assert_eq!(KnownBrowser::check(key, "x.1.ab", "alice", now), None);
        // A login token is not a known browser, and the other way round.
        let login = LoginToken::mint(key, now);
        assert_eq!(KnownBrowser::check(key, &login, "alice", now), None);
        assert!(!LoginToken::check(key, &t, &t, now));
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
