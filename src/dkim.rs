//! DKIM verification by postroom itself (`[trust] mode = "dkim"`).
//!
//! Built on `mail-auth` (0.13, the line that shares `mail-parser` 0.11 with us). This module
//! only answers "which `d=` domains signed this exact message, From: included"; whether one of
//! them proves the sender is `trust::assess`'s job (alignment with the From: domain).
//!
//! Keys: `[trust] dkim_keys` (pinned TXT records, for air-gapped sites and tests) are answered
//! first through mail-auth's TXT cache; any other selector is looked up in DNS through one
//! resolver built lazily from the system configuration. Everything fails closed: a key that
//! cannot be had, a lookup that times out, a message mail-auth reads differently from us — no
//! domain is returned, so the message is not proven.
//!
//! Hostile mail is bounded: at most [`MAX_SIGNATURES`] signatures are looked at, each with at
//! most [`MAX_SIGNED_HEADERS`] `h=` entries, on messages of at most [`MAX_HEADER_FIELDS`]
//! fields, each signature gets [`SIGNATURE_BUDGET`] (they run concurrently), and `l=` body
//! lengths are refused by mail-auth's strict parser (otherwise a signed body with an
//! attacker's text appended would verify).

use crate::trust::{TrustConfig, TrustMode};
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::verify::DomainKey;
use mail_auth::hickory_resolver::config::ResolverConfig;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};
use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::OnceLock;
use std::time::Duration;

/// Signatures looked at per message, topmost first (the most recent signer, normally the
/// sender's own outbound server, is on top). Real mail carries one to three.
pub const MAX_SIGNATURES: usize = 10;
/// `h=` entries per signature: each entry costs a walk over the header section, so a hostile
/// `h=from:from:…` of thousands of entries would burn CPU. Heavy over-signers use ~60.
pub const MAX_SIGNED_HEADERS: usize = 128;
/// Header fields per message (the default `[limits] max_headers` is 500; the pipeline holds
/// such a message anyway, but DKIM runs before it looks).
pub const MAX_HEADER_FIELDS: usize = 500;
/// Wall-clock budget of one signature's verification (key lookup included). Signatures are
/// verified concurrently, so this is also about the budget of the whole message.
pub const SIGNATURE_BUDGET: Duration = Duration::from_secs(5);
/// One DNS query's timeout, below the signature budget so a slow first server still leaves
/// room for a clean error instead of a cancelled lookup.
const DNS_TIMEOUT: Duration = Duration::from_secs(3);

/// The `d=` domains (lower-case, deduplicated, in header order) of the message's DKIM
/// signatures that verify and cover what postroom reads: the one `From:` (the same address
/// our own parser finds), `Subject:`, and every instance of each header they sign. Empty when
/// the `dkim` mode is not configured, or on any doubt.
/// True when `raw` has no NUL and the body starts right after an empty line.
fn cleanly_split(raw: &[u8], body_offset: usize) -> bool {
    if raw.contains(&0) {
        return false;
    }
    let head = raw.get(..body_offset).unwrap_or(raw);
    // Control characters have no place in a header (RFC 5322 §2.2); mail-auth's relaxed
    // canonicalisation and mail-parser do not treat all of them alike.
    if head
        .iter()
        .any(|&b| (b < 0x20 && b != b'\t' && b != b'\r' && b != b'\n') || b == 0x7f)
    {
        return false;
    }
    head.ends_with(b"\r\n\r\n")
        || head.ends_with(b"\n\n")
        || (body_offset >= raw.len() && !raw.is_empty())
}

pub async fn verified_domains(raw: &[u8], cfg: &TrustConfig) -> Vec<String> {
    if !cfg.modes.contains(&TrustMode::Dkim) {
        return Vec::new();
    }
    let Some(authenticator) = authenticator() else {
        return Vec::new();
    };
    // Strict parsing: signatures with `l=` are reported as errors, never verified.
    let Some(message) = AuthenticatedMessage::parse(raw) else {
        return Vec::new();
    };
    if message.dkim_headers.is_empty() {
        return Vec::new();
    }
    // The signature covers what mail-auth takes for the header and the body; postroom reads the
    // message with mail-parser. Where the two could split the message differently — a NUL, or
    // a header block ended by something other than an empty line (a line mail-auth would drop
    // but mail-parser might read as body text) — no signature proves what postroom reads.
    if !cleanly_split(raw, message.body_offset as usize) {
        tracing::info!("DKIM not checked: the header block does not end with an empty line");
        return Vec::new();
    }
    if message.headers.len() > MAX_HEADER_FIELDS {
        tracing::info!(
            fields = message.headers.len(),
            "DKIM not checked: too many header fields"
        );
        return Vec::new();
    }
    // A second From: above the signed one is the classic way to reuse a genuine signature
    // (h=from covers only the bottom one): with anything but exactly one From: address, no
    // signature says who wrote the message.
    let from_fields = message
        .headers
        .iter()
        .filter(|(name, _)| is_from(name))
        .count();
    if from_fields != 1 || message.from.len() != 1 {
        tracing::info!(
            from_fields,
            addresses = message.from.len(),
            "DKIM not checked: not exactly one From: address"
        );
        return Vec::new();
    }

    let pinned = PinnedKeys::new(&cfg.dkim_keys);
    // One single-signature copy per signature, so that each gets its own time budget and a
    // slow key server of one signer cannot cost the others their result.
    let singles: Vec<AuthenticatedMessage<'_>> = message
        .dkim_headers
        .iter()
        .take(MAX_SIGNATURES)
        .filter(|h| signs_what_we_read(&h.header, &message.headers))
        .map(|h| {
            let mut header = h.clone();
            // Failure reports (`r=`) and third-party authorisation (`atps=`) each cost another
            // DNS lookup and prove nothing postroom uses: the signature itself is the evidence.
            header.header.r = false;
            header.header.atps = None;
            header.header.atpsh = None;
            AuthenticatedMessage {
                dkim_headers: vec![header],
                errors: Vec::new(),
                ..message.clone()
            }
        })
        .collect();
    let checks = singles
        .iter()
        .map(|single| verify_one(authenticator, single, &pinned));
    let results = futures::future::join_all(checks).await;

    let mut domains: Vec<String> = Vec::new();
    for domain in results.into_iter().flatten() {
        if !domains.contains(&domain) {
            domains.push(domain);
        }
    }
    if domains.is_empty() {
        return domains;
    }
    // mail-auth and our own parser must agree on who the message is from, or a signature over
    // one From: could be credited to another (our parser reads a normalised copy of the bytes).
    let ours = crate::message::parse(raw).from;
    let theirs = message.from.first().map(|a| a.trim().to_lowercase());
    if ours.is_none() || ours != theirs {
        tracing::warn!(
            ?ours,
            ?theirs,
            "DKIM ignored: the signed From: differs from the one postroom reads"
        );
        return Vec::new();
    }
    domains
}

/// Verify one single-signature message; the signer's domain when it passes.
async fn verify_one(
    authenticator: &MessageAuthenticator,
    single: &AuthenticatedMessage<'_>,
    pinned: &PinnedKeys,
) -> Option<String> {
    let params = Parameters::new(single).with_txt_cache(pinned);
    let Ok(outputs) =
        tokio::time::timeout(SIGNATURE_BUDGET, authenticator.verify_dkim(params)).await
    else {
        tracing::info!("DKIM signature not verified: key lookup timed out");
        return None;
    };
    let mut passed = None;
    for output in &outputs {
        let Some(signature) = output.signature() else {
            continue;
        };
        match output.result() {
            DkimResult::Pass => passed = Some(normalise_domain(&signature.d)),
            other => {
                let key = format!("{}._domainkey.{}", signature.s, signature.d);
                if pinned.is_invalid(&key) {
                    tracing::warn!(%key, "pinned DKIM key in [trust] dkim_keys is not a valid DKIM1 record");
                }
                tracing::info!(d = %signature.d, s = %signature.s, result = ?other, "DKIM signature did not pass");
            }
        }
    }
    passed
}

/// Headers a signature must cover to be evidence for postroom: From: (RFC 6376 §5.4: MUST),
/// and Subject:, which names the request kind — unsigned, a replayed genuine "Password
/// reset" could be re-titled "Leaver". Every major signer signs both.
const MUST_SIGN: [&[u8]; 2] = [b"from", b"subject"];

/// Whether a signature covers what postroom reads: the [`MUST_SIGN`] headers, and every
/// instance of each header it names. DKIM signs the bottom-most instances only, so a second
/// `Subject:` (or any signed name) added above a genuine one would otherwise ride on the
/// signature; signers that "over-sign" (name a header more often than it occurs) are fine.
fn signs_what_we_read(signature: &mail_auth::dkim::Signature, headers: &[(&[u8], &[u8])]) -> bool {
    let signed = &signature.h;
    if signed.len() > MAX_SIGNED_HEADERS {
        return false;
    }
    let signs = |name: &[u8]| {
        signed
            .iter()
            .filter(|h| same_name(h.as_bytes(), name))
            .count()
    };
    MUST_SIGN.iter().all(|name| signs(name) > 0)
        && signed.iter().all(|name| {
            let present = headers
                .iter()
                .filter(|(h, _)| same_name(h, name.as_bytes()))
                .count();
            present <= signs(name.as_bytes())
        })
}

fn same_name(a: &[u8], b: &[u8]) -> bool {
    a.trim_ascii().eq_ignore_ascii_case(b.trim_ascii())
}

fn is_from(name: &[u8]) -> bool {
    same_name(name, b"from")
}

fn normalise_domain(d: &str) -> String {
    d.trim().trim_end_matches('.').to_lowercase()
}

/// The one resolver of the process, built on first use. `None` only when not even a resolver
/// without name servers could be built: then nothing verifies.
fn authenticator() -> Option<&'static MessageAuthenticator> {
    static AUTHENTICATOR: OnceLock<Option<MessageAuthenticator>> = OnceLock::new();
    AUTHENTICATOR.get_or_init(build_authenticator).as_ref()
}

fn build_authenticator() -> Option<MessageAuthenticator> {
    let system = mail_auth::hickory_resolver::system_conf::read_system_conf().map(
        |(config, mut options)| {
            options.timeout = DNS_TIMEOUT;
            options.attempts = 1;
            (config, options)
        },
    );
    match system
        .map_err(|e| e.to_string())
        .and_then(|(c, o)| MessageAuthenticator::new(c, o).map_err(|e| e.to_string()))
    {
        Ok(a) => Some(a),
        Err(e) => {
            // Air-gapped sites may have no resolv.conf at all, and that is what pinned keys are
            // for: keep them working with a resolver that has no name server, so every DNS
            // lookup fails (closed) and only pinned keys can verify.
            tracing::warn!(error = %e, "no DNS resolver for DKIM keys: only [trust] dkim_keys can verify signatures");
            let mut options = mail_auth::hickory_resolver::config::ResolverOpts::default();
            options.timeout = DNS_TIMEOUT;
            options.attempts = 1;
            match MessageAuthenticator::new(ResolverConfig::from_name_servers(Vec::new()), options)
            {
                Ok(a) => Some(a),
                Err(e) => {
                    tracing::error!(error = %e, "no resolver at all for DKIM: no signature will verify");
                    None
                }
            }
        }
    }
}

/// `[trust] dkim_keys` as mail-auth's TXT cache: answered before any DNS lookup. A pinned key
/// that does not parse is answered as an error, never looked up in DNS instead: the operator
/// said where that key lives.
struct PinnedKeys {
    records: HashMap<Box<str>, Txt>,
    invalid: Vec<String>,
}

impl PinnedKeys {
    fn new(keys: &BTreeMap<String, String>) -> PinnedKeys {
        let mut records = HashMap::with_capacity(keys.len());
        let mut invalid = Vec::new();
        for (name, record) in keys {
            let fqdn = fqdn(name);
            let parsed = DomainKey::parse(record.trim().as_bytes());
            if parsed.is_err() {
                invalid.push(fqdn.clone());
            }
            records.insert(fqdn.into_boxed_str(), Txt::from(parsed));
        }
        PinnedKeys { records, invalid }
    }

    fn is_invalid(&self, name: &str) -> bool {
        self.invalid.contains(&fqdn(name))
    }
}

/// The DNS names of pinned keys that are not valid DKIM1 records, for configuration checks.
pub fn invalid_pinned_keys(keys: &BTreeMap<String, String>) -> Vec<String> {
    keys.iter()
        .filter(|(_, record)| DomainKey::parse(record.trim().as_bytes()).is_err())
        .map(|(name, _)| name.clone())
        .collect()
}

/// mail-auth looks names up lower-case with a trailing dot.
fn fqdn(name: &str) -> String {
    let mut n = name.trim().trim_end_matches('.').to_lowercase();
    n.push('.');
    n
}

impl ResolverCache<Box<str>, Txt> for PinnedKeys {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.records.get(name).cloned()
    }

    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }

    // DNS answers are not kept here: the resolver has its own cache, with the records' TTLs.
    fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::common::crypto::Ed25519Key;
    use mail_auth::common::headers::HeaderWriter;
    use mail_auth::dkim::DkimSigner;

    const MESSAGE: &str = "From: Rosehill Care <rosehill.care@nhs.example>\r\nTo: helpdesk@nhs.example\r\nSubject: Password reset\r\nMessage-ID: <t@nhs.example>\r\n\r\nAccount: tom.smith@nhs.example\r\n";
    const HEADERS: &[&str] = &["From", "To", "Subject", "Message-ID"];

    /// A key made for the test; `Ed25519Key` is not `Clone`, so keep its PKCS#8 bytes.
    struct Key {
        pkcs8: Vec<u8>,
        record: String,
    }

    fn key() -> Key {
        let pkcs8 = Ed25519Key::generate_pkcs8().unwrap();
        let public = Ed25519Key::from_pkcs8_der(&pkcs8).unwrap().public_key();
        Key {
            pkcs8,
            record: format!("v=DKIM1; k=ed25519; p={}", base64(&public)),
        }
    }

    fn sign(k: &Key, domain: &str, headers: &[&str], message: &str) -> String {
        let sig = DkimSigner::from_key(Ed25519Key::from_pkcs8_der(&k.pkcs8).unwrap())
            .domain(domain)
            .selector("sel")
            .headers(headers.iter().copied())
            .sign(message.as_bytes())
            .unwrap();
        format!("{}{message}", sig.to_header())
    }

    fn cfg(keys: &[(&str, &str)]) -> TrustConfig {
        TrustConfig {
            modes: vec![TrustMode::Dkim],
            dkim_keys: keys
                .iter()
                .map(|(n, r)| ((*n).to_owned(), (*r).to_owned()))
                .collect(),
            ..Default::default()
        }
    }

    fn base64(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
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

    #[tokio::test]
    async fn a_pinned_key_verifies_and_a_changed_body_does_not() {
        let k = key();
        let c = cfg(&[("Sel._DomainKey.NHS.example.", &k.record)]);
        let signed = sign(&k, "nhs.example", HEADERS, MESSAGE);
        assert_eq!(
            verified_domains(signed.as_bytes(), &c).await,
            vec!["nhs.example".to_owned()]
        );
        let altered = signed.replace("tom.smith", "amy.jones");
        assert!(verified_domains(altered.as_bytes(), &c).await.is_empty());
        // Not configured: nothing is verified at all.
        let off = TrustConfig {
            dkim_keys: c.dkim_keys.clone(),
            ..Default::default()
        };
        assert!(verified_domains(signed.as_bytes(), &off).await.is_empty());
    }

    #[tokio::test]
    async fn a_second_from_above_the_signed_one_voids_the_signature() {
        let k = key();
        let c = cfg(&[("sel._domainkey.nhs.example", &k.record)]);
        let signed = sign(&k, "nhs.example", HEADERS, MESSAGE);
        // Still cryptographically valid (h=from covers the bottom From:), but not evidence.
        let forged = format!("From: boss@nhs.example\r\n{signed}");
        assert!(verified_domains(forged.as_bytes(), &c).await.is_empty());
    }

    #[tokio::test]
    async fn a_signature_must_cover_from_and_subject() {
        let k = key();
        let c = cfg(&[("sel._domainkey.nhs.example", &k.record)]);
        for headers in [&["To", "Subject"][..], &["From", "To"]] {
            let signed = sign(&k, "nhs.example", headers, MESSAGE);
            assert!(
                verified_domains(signed.as_bytes(), &c).await.is_empty(),
                "{headers:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_signed_header_added_again_voids_the_signature() {
        let k = key();
        let c = cfg(&[("sel._domainkey.nhs.example", &k.record)]);
        let signed = sign(&k, "nhs.example", HEADERS, MESSAGE);
        // Cryptographically still valid (h=subject covers the bottom Subject:) — but postroom
        // may read the top one.
        let retitled = signed.replacen("From: ", "Subject: Leaver\r\nFrom: ", 1);
        assert!(verified_domains(retitled.as_bytes(), &c).await.is_empty());
        // Over-signing (naming Subject twice for one instance) is how signers prevent exactly
        // that, and verifies.
        let oversigned = sign(
            &k,
            "nhs.example",
            &["From", "Subject", "Subject", "To"],
            MESSAGE,
        );
        assert_eq!(
            verified_domains(oversigned.as_bytes(), &c).await,
            vec!["nhs.example".to_owned()]
        );
    }

    #[tokio::test]
    async fn only_the_topmost_signatures_are_considered() {
        let good = key();
        let other = key();
        let c = cfg(&[
            ("sel._domainkey.nhs.example", &good.record),
            ("sel._domainkey.evil.example", &other.record),
        ]);
        let mut message = sign(&good, "nhs.example", HEADERS, MESSAGE);
        // Signatures with the wrong key for their selector: each fails, and MAX_SIGNATURES of
        // them on top push the good one out of reach.
        let junk = sign(&other, "nhs.example", HEADERS, MESSAGE);
        let junk_header = junk.strip_suffix(MESSAGE).unwrap();
        for _ in 0..MAX_SIGNATURES - 1 {
            message.insert_str(0, junk_header);
        }
        assert_eq!(
            verified_domains(message.as_bytes(), &c).await,
            vec!["nhs.example".to_owned()]
        );
        message.insert_str(0, junk_header);
        assert!(verified_domains(message.as_bytes(), &c).await.is_empty());
    }

    #[tokio::test]
    async fn every_passing_domain_is_reported_once() {
        let a = key();
        let b = key();
        let c = cfg(&[
            ("sel._domainkey.nhs.example", &a.record),
            ("sel._domainkey.list.example", &b.record),
        ]);
        let once = sign(&a, "nhs.example", HEADERS, MESSAGE);
        let twice = sign(&b, "list.example", HEADERS, &once);
        let thrice = sign(&a, "nhs.example", HEADERS, &twice);
        assert_eq!(
            verified_domains(thrice.as_bytes(), &c).await,
            vec!["nhs.example".to_owned(), "list.example".to_owned()]
        );
    }

    #[tokio::test]
    async fn a_broken_pinned_key_fails_closed_and_is_reported() {
        let k = key();
        let c = cfg(&[("sel._domainkey.nhs.example", "v=DKIM1; k=ed25519; p=@@@")]);
        let signed = sign(&k, "nhs.example", HEADERS, MESSAGE);
        assert!(verified_domains(signed.as_bytes(), &c).await.is_empty());
        assert_eq!(
            invalid_pinned_keys(&c.dkim_keys),
            vec!["sel._domainkey.nhs.example".to_owned()]
        );
        assert!(invalid_pinned_keys(&cfg(&[("x", &k.record)]).dkim_keys).is_empty());
    }

    #[tokio::test]
    async fn junk_never_panics() {
        let c = cfg(&[]);
        for raw in [
            &b""[..],
            b"\r\n\r\n",
            b"DKIM-Signature: v=1; a=rsa-sha256; d=; s=; b=; bh=; h=from\r\nFrom: a@b\r\n\r\n",
            b"DKIM-Signature: \xff\xfe\r\nFrom: \xff@\xfe\r\n\r\n\xff",
            b"From: a@b.example\nDKIM-Signature: v=1; a=ed25519-sha256; d=b.example; s=\x00; h=from; bh=AAAA; b=AAAA; l=1\n\nx",
        ] {
            assert!(verified_domains(raw, &c).await.is_empty());
        }
    }
}
