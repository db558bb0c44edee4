//! `[trust] mode = "dkim"` through the real command line: postroom verifies the signature
//! itself, with keys pinned in the config (no DNS), and only a signature of the From: domain
//! proves anything.

use crate::support::{Instance, fixture};
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use serde_json::Value;

/// A key made for the run: nothing secret is committed, nothing can be replayed.
struct Key {
    pkcs8: Vec<u8>,
    record: String,
}

impl Key {
    fn new() -> Key {
        let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        let public = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap().public_key();
        Key {
            pkcs8,
            record: format!("v=DKIM1; k=ed25519; p={}", base64(&public)),
        }
    }

    /// The message with a `DKIM-Signature` of `domain` (selector `sel`) on top.
    fn sign(&self, domain: &str, message: &[u8]) -> Vec<u8> {
        let signature = DkimSigner::from_key(Ed25519Key::from_pkcs8_der(&self.pkcs8).unwrap())
            .domain(domain)
            .selector("sel")
            .headers([
                "From",
                "To",
                "Subject",
                "Date",
                "Message-ID",
                "MIME-Version",
                "Content-Type",
            ])
            .sign(message)
            .unwrap();
        let mut out = signature.to_header().into_bytes();
        out.extend_from_slice(message);
        out
    }
}

/// The password-reset fixture as it would arrive by IMAP (CRLF), without the
/// `Authentication-Results` header the fixtures carry for the other trust mode.
fn request() -> Vec<u8> {
    let text = std::fs::read_to_string(fixture("password_reset_fields.eml")).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("Authentication-Results:"))
        .map(|l| format!("{l}\r\n"))
        .collect();
    assert!(text.contains("From: Rosehill Care <rosehill.care@nhs.example>\r\n"));
    text.into_bytes()
}

struct Desk {
    instance: Instance,
    nhs: Key,
    evil: Key,
}

/// A desk trusting only its own DKIM checks, with both domains' keys pinned.
fn desk() -> Desk {
    let (nhs, evil) = (Key::new(), Key::new());
    let trust = format!(
        "[trust]\nmode = \"dkim\"\ndkim_keys = {{ \"sel._domainkey.nhs.example\" = \"{}\", \"sel._domainkey.evil.example\" = \"{}\" }}\n",
        nhs.record, evil.record
    );
    let instance = Instance::import_fixture_directory(Instance::configured(&trust, ""));
    Desk {
        instance,
        nhs,
        evil,
    }
}

impl Desk {
    fn process(&self, raw: &[u8]) -> Value {
        let path = self.instance.dir.path().join("request.eml");
        std::fs::write(&path, raw).unwrap();
        let mut out = self.instance.process(&[path.as_path()], false);
        assert_eq!(out.len(), 1, "{out:?}");
        out.remove(0)
    }

    /// The `trust` evidence of the audit event recorded for a request.
    fn trust_evidence(&self, outcome: &str) -> Value {
        let action = format!("request.{outcome}");
        let audit = self.instance.audit();
        let event = audit
            .iter()
            .find(|e| e["action"] == action.as_str())
            .unwrap_or_else(|| panic!("no {action} event in {audit:?}"));
        event["detail"]["trust"].clone()
    }

    /// Rejected as unauthenticated: not answered, nothing changed.
    fn assert_unauthenticated(&self, raw: &[u8]) -> Value {
        let before = self.instance.export();
        let v = self.process(raw);
        assert_eq!(v["outcome"], "rejected", "{v}");
        assert_eq!(v["reason"], "unauthenticated", "{v}");
        assert!(v["reply"].is_null(), "unproven mail answered: {v}");
        assert_eq!(
            self.instance.export(),
            before,
            "directory changed by unproven mail"
        );
        let trust = self.trust_evidence("rejected");
        assert_eq!(trust["proven"], false, "{trust}");
        trust
    }
}

#[test]
fn a_signature_of_the_from_domain_is_applied() {
    let d = desk();
    let v = d.process(&d.nhs.sign("nhs.example", &request()));
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["kind"], "password_reset", "{v}");
    assert_eq!(v["reply"]["to"], "rosehill.care@nhs.example", "{v}");
    let trust = d.trust_evidence("applied");
    assert_eq!(trust["proven"], true, "{trust}");
    assert_eq!(
        trust["dkim_domains"],
        serde_json::json!(["nhs.example"]),
        "{trust}"
    );
    assert_eq!(
        trust["summary"], "dkim=pass d=nhs.example verified by postroom",
        "{trust}"
    );
}

#[test]
fn a_signature_of_another_domain_proves_nothing() {
    let d = desk();
    // Valid, with a pinned key — but evil.example vouches only for evil.example.
    let trust = d.assert_unauthenticated(&d.evil.sign("evil.example", &request()));
    assert_eq!(
        trust["dkim_domains"],
        serde_json::json!(["evil.example"]),
        "{trust}"
    );
    assert!(
        trust["summary"]
            .as_str()
            .unwrap()
            .contains("do not align with nhs.example"),
        "{trust}"
    );
}

#[test]
fn a_signature_made_with_another_key_proves_nothing() {
    let d = desk();
    // Claims d=nhs.example, but signed with evil.example's key.
    let trust = d.assert_unauthenticated(&d.evil.sign("nhs.example", &request()));
    assert!(
        trust
            .get("dkim_domains")
            .is_none_or(|v| v.as_array().unwrap().is_empty()),
        "{trust}"
    );
}

#[test]
fn a_body_changed_after_signing_proves_nothing() {
    let d = desk();
    let signed = String::from_utf8(d.nhs.sign("nhs.example", &request())).unwrap();
    let altered = signed.replace(
        "Account: tom.smith@nhs.example",
        "Account: amy.jones@nhs.example",
    );
    assert_ne!(signed, altered);
    let trust = d.assert_unauthenticated(altered.as_bytes());
    assert_eq!(trust["summary"], "no valid DKIM signature", "{trust}");
}

#[test]
fn a_from_changed_after_signing_proves_nothing() {
    let d = desk();
    let signed = String::from_utf8(d.nhs.sign("nhs.example", &request())).unwrap();
    let altered = signed.replace(
        "From: Rosehill Care <rosehill.care@",
        "From: Oakview GP <oakview.gp@",
    );
    assert_ne!(signed, altered);
    d.assert_unauthenticated(altered.as_bytes());
}

#[test]
fn a_signed_header_added_again_proves_nothing() {
    let d = desk();
    // Replaying a genuine signed message under a new Subject (the kind is read from it): the
    // signature still verifies over the bottom Subject:, but postroom does not take it.
    let signed = String::from_utf8(d.nhs.sign("nhs.example", &request())).unwrap();
    let retitled = signed.replacen("From: ", "Subject: Leaver\r\nFrom: ", 1);
    let trust = d.assert_unauthenticated(retitled.as_bytes());
    assert_eq!(trust["summary"], "no valid DKIM signature", "{trust}");
}

#[test]
fn an_unsigned_message_proves_nothing() {
    let d = desk();
    let trust = d.assert_unauthenticated(&request());
    assert_eq!(trust["summary"], "no valid DKIM signature", "{trust}");
}

/// Standard base64 for the `p=` of the TXT record (the tests need nothing more).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

#[test]
fn a_message_stored_with_bare_line_feeds_verifies_too() {
    // Maildir and `postroom process FILE` see LF-only files; DKIM canonicalises line ends.
    let d = desk();
    let lf: Vec<u8> = request().into_iter().filter(|&b| b != b'\r').collect();
    let v = d.process(&d.nhs.sign("nhs.example", &lf));
    assert_eq!(v["outcome"], "applied", "{v}");
}
