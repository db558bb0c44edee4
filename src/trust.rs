//! Evidence that a message really comes from its `From:` address. postroom fails closed: with
//! no evidence configured, nothing is trusted.
//!
//! Modes (`[trust] mode`, one or a list; any one that proves the message is enough):
//! - `authentication_results`: the topmost `Authentication-Results` header (RFC 8601) stamped
//!   by one of our own mail boundaries (`authserv_id`). Anything below it may have been written
//!   by the sender and is ignored. It must say `dmarc=pass`, or `dkim=pass` with `header.d`
//!   aligned with the `From:` domain, or (when allowed) `spf=pass` aligned — a passing
//!   signature of some other domain proves nothing (Sympa dropped its DKIM mode for exactly
//!   that mistake).
//! - `dkim`: postroom verifies the DKIM signature itself (see `dkim.rs`); alignment as above.
//! - `exchange_internal`: Exchange / Microsoft 365 stamps `X-MS-Exchange-Organization-AuthAs:
//!   Internal` on mail authenticated inside the tenant and strips that header from mail
//!   arriving from outside, so it is only evidence when postroom reads the tenant's own
//!   mailbox.
//! - `none`: trials and tests only; `run` warns at start.

use crate::config_value::{ConfigError, OneOrMany, key_err};
use crate::message::Message;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustMode {
    AuthenticationResults,
    Dkim,
    ExchangeInternal,
    None,
}

/// Which `Authentication-Results` methods count as proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Dmarc,
    Dkim,
    Spf,
}

#[derive(Debug, Clone)]
pub struct TrustConfig {
    pub modes: Vec<TrustMode>,
    /// Our own boundaries' authserv-ids, lower-case.
    pub authserv_ids: Vec<String>,
    pub accept: Vec<Method>,
    /// Pinned DKIM keys (DNS name → TXT record) answered before DNS: for air-gapped sites and
    /// tests.
    pub dkim_keys: BTreeMap<String, String>,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            modes: vec![TrustMode::AuthenticationResults],
            authserv_ids: Vec::new(),
            accept: vec![Method::Dmarc, Method::Dkim],
            dkim_keys: Default::default(),
        }
    }
}

impl TrustConfig {
    pub fn trusts_everything(&self) -> bool {
        self.modes.contains(&TrustMode::None)
    }
}

/// `[trust]` as the file gives it; [`check_trust`] makes it a [`TrustConfig`] (the section is
/// this module's; `config` composes it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTrust {
    mode: Option<OneOrMany<String>>,
    authserv_id: Option<OneOrMany<String>>,
    accept: Option<Vec<String>>,
    /// Pinned DKIM keys: DNS name → TXT record, answered before DNS.
    dkim_keys: Option<BTreeMap<String, String>>,
}

pub(crate) fn check_trust(r: RawTrust) -> Result<TrustConfig, ConfigError> {
    let mut cfg = TrustConfig::default();
    if let Some(modes) = r.mode {
        cfg.modes = modes
            .into_vec()
            .iter()
            .map(|m| match m.trim().to_ascii_lowercase().as_str() {
                "authentication_results" => Ok(TrustMode::AuthenticationResults),
                "dkim" => Ok(TrustMode::Dkim),
                "exchange_internal" => Ok(TrustMode::ExchangeInternal),
                "none" => Ok(TrustMode::None),
                other => Err(key_err(
                    "trust.mode",
                    format!("`{other}` is not one of authentication_results, dkim, exchange_internal, none"),
                )),
            })
            .collect::<Result<_, _>>()?;
        if cfg.modes.is_empty() {
            return Err(key_err("trust.mode", "name at least one mode"));
        }
    }
    if let Some(ids) = r.authserv_id {
        cfg.authserv_ids = ids
            .into_vec()
            .into_iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
    }
    if let Some(accept) = r.accept {
        cfg.accept = accept
            .iter()
            .map(|m| match m.trim().to_ascii_lowercase().as_str() {
                "dmarc" => Ok(Method::Dmarc),
                "dkim" => Ok(Method::Dkim),
                "spf" => Ok(Method::Spf),
                other => Err(key_err(
                    "trust.accept",
                    format!("`{other}` is not one of dmarc, dkim, spf"),
                )),
            })
            .collect::<Result<_, _>>()?;
    }
    cfg.dkim_keys = r.dkim_keys.unwrap_or_default();
    Ok(cfg)
}

/// A warning for the start of `postroom run` when the trust settings make postroom either
/// believe every `From:` or refuse every message.
pub fn startup_warning(cfg: &TrustConfig) -> Option<String> {
    if cfg.trusts_everything() {
        return Some(
            "[trust] mode = \"none\": every From: address is believed, so anyone can forge requests. For trials and tests only.".into(),
        );
    }
    if cfg.modes == [TrustMode::AuthenticationResults] && cfg.authserv_ids.is_empty() {
        return Some(
            "[trust] has no authserv_id: no Authentication-Results header is trusted, so every request will be rejected as unauthenticated. Set authserv_id to your mail boundary's id.".into(),
        );
    }
    None
}

/// What was found, kept in the audit trail whatever the verdict.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evidence {
    pub proven: bool,
    /// How it was proven (e.g. `dmarc=pass by mx.nhs.example`), or why not.
    pub summary: String,
    /// Headers that tried to steer postroom and were ignored (forged A-R below ours,
    /// `X-Postroom-*`).
    pub ignored_headers: Vec<String>,
    /// The domains of passing DKIM signatures postroom verified itself (`dkim` mode).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dkim_domains: Vec<String>,
}

/// Check the evidence. `dkim_pass_domains` are the `d=` of signatures verified by postroom
/// (empty unless the `dkim` mode ran).
pub fn assess(msg: &Message, cfg: &TrustConfig, dkim_pass_domains: &[String]) -> Evidence {
    let mut ev = Evidence {
        ignored_headers: steering_headers(msg, cfg),
        dkim_domains: dkim_pass_domains.to_vec(),
        ..Default::default()
    };
    let Some(from_domain) = msg.from.as_deref().and_then(domain_of) else {
        ev.summary = "no From: address".into();
        return ev;
    };
    // RFC 5322 §3.6 allows exactly one From: (and one Sender:); DMARC (RFC 7489 §6.6.1) says
    // mail with several should be rejected: a boundary may check one From: and a reader take
    // another. One From: header naming more than one mailbox is refused for the same reason.
    if let Some(why) = ambiguous_author(msg) {
        ev.summary = why;
        return ev;
    }
    let mut why_not = Vec::new();
    for mode in &cfg.modes {
        let verdict = match mode {
            TrustMode::None => Ok("trust mode `none`: nothing checked".to_owned()),
            TrustMode::ExchangeInternal => exchange_internal(msg),
            TrustMode::AuthenticationResults => authentication_results(msg, cfg, from_domain),
            TrustMode::Dkim => dkim_pass_domains
                .iter()
                .find(|d| aligned(d, from_domain))
                .map(|d| format!("dkim=pass d={d} verified by postroom"))
                .ok_or_else(|| {
                    if dkim_pass_domains.is_empty() {
                        "no valid DKIM signature".to_owned()
                    } else {
                        format!(
                            "DKIM signatures of {} do not align with {from_domain}",
                            dkim_pass_domains.join(", ")
                        )
                    }
                }),
        };
        match verdict {
            Ok(s) => {
                ev.proven = true;
                ev.summary = s;
                return ev;
            }
            Err(e) => why_not.push(e),
        }
    }
    ev.summary = if why_not.is_empty() {
        "no trust mode configured".into()
    } else {
        why_not.join("; ")
    };
    ev
}

/// Why the message's author is ambiguous: several `From:` or `Sender:` headers, or a `From:`
/// naming several mailboxes; `None` when there is one of each at most.
pub fn ambiguous_author(msg: &Message) -> Option<String> {
    for name in ["from", "sender"] {
        let n = msg.header_values(name).count();
        if n > 1 {
            return Some(format!(
                "{n} {name}: headers (RFC 5322 allows one; RFC 7489 §6.6.1: reject)"
            ));
        }
    }
    let mailboxes = msg.from_mailboxes;
    (mailboxes > 1).then(|| format!("the From: header names {mailboxes} mailboxes"))
}

fn exchange_internal(msg: &Message) -> Result<String, String> {
    match msg.header("x-ms-exchange-organization-authas") {
        Some(v) if v.trim().eq_ignore_ascii_case("internal") => {
            Ok("X-MS-Exchange-Organization-AuthAs: Internal".into())
        }
        Some(v) => Err(format!(
            "X-MS-Exchange-Organization-AuthAs is `{}`",
            v.trim()
        )),
        None => Err("no X-MS-Exchange-Organization-AuthAs header".into()),
    }
}

fn authentication_results(
    msg: &Message,
    cfg: &TrustConfig,
    from_domain: &str,
) -> Result<String, String> {
    if cfg.authserv_ids.is_empty() {
        return Err(
            "no [trust] authserv_id configured, so no Authentication-Results header is trusted"
                .into(),
        );
    }
    // Headers are in message order: the first one of ours is the topmost, the one our own
    // boundary added last. Any other claiming our id below it was there before: forged.
    let ours = msg
        .header_values("authentication-results")
        .map(parse_authentication_results)
        .find(|ar| cfg.authserv_ids.contains(&ar.authserv_id))
        .ok_or_else(|| {
            format!(
                "no Authentication-Results header from {}",
                cfg.authserv_ids.join(", ")
            )
        })?;
    let mut seen = Vec::new();
    for r in &ours.results {
        seen.push(format!("{}={}", r.method, r.result));
        if r.result != "pass" {
            continue;
        }
        let ok = match r.method.as_str() {
            "dmarc" if cfg.accept.contains(&Method::Dmarc) => {
                // DMARC evaluates a From: domain: it counts only when the result says which,
                // and it is ours (a pass for another, or for an unnamed, domain proves nothing).
                r.property("header.from")
                    .is_some_and(|d| d.eq_ignore_ascii_case(from_domain))
            }
            "dkim" if cfg.accept.contains(&Method::Dkim) => r
                .property("header.d")
                .or_else(|| r.property("header.i").and_then(domain_of))
                .is_some_and(|d| aligned(d, from_domain)),
            "spf" if cfg.accept.contains(&Method::Spf) => r
                .property("smtp.mailfrom")
                .map(|m| domain_of(m).unwrap_or(m))
                .is_some_and(|d| aligned(d, from_domain)),
            _ => false,
        };
        if ok {
            let detail = r
                .property("header.d")
                .or_else(|| r.property("header.from"))
                .or_else(|| r.property("smtp.mailfrom"))
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            return Ok(format!("{}=pass{detail} by {}", r.method, ours.authserv_id));
        }
    }
    Err(format!(
        "Authentication-Results from {} proves nothing aligned with {from_domain}: {}",
        ours.authserv_id,
        if seen.is_empty() {
            "none".to_owned()
        } else {
            seen.join(" ")
        }
    ))
}

/// Headers that try to steer postroom: every `X-Postroom-*` but our own loop marker, and
/// `Authentication-Results` claiming our id below the topmost one of ours.
fn steering_headers(msg: &Message, cfg: &TrustConfig) -> Vec<String> {
    let mut out = Vec::new();
    let mut ours_seen = false;
    for (name, value) in &msg.headers {
        if name.starts_with("x-postroom-") && name != "x-postroom-loop" {
            out.push(format!("{name}: {}", truncate(value)));
        }
        if name == "authentication-results" {
            let ar = parse_authentication_results(value);
            if cfg.authserv_ids.contains(&ar.authserv_id) {
                if ours_seen {
                    out.push(format!("{name}: {}", truncate(value)));
                }
                ours_seen = true;
            }
        }
    }
    out
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

/// `d` aligns with `from` when equal, or (relaxed alignment, RFC 7489 §3.1) when one is a
/// subdomain of the other. Without a public-suffix list this is stricter than DMARC's
/// organisational domain for sibling subdomains, never looser: a bare TLD never aligns.
pub fn aligned(d: &str, from: &str) -> bool {
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    let from = from.trim().trim_end_matches('.').to_ascii_lowercase();
    if !d.contains('.') || !from.contains('.') {
        return false;
    }
    d == from || from.ends_with(&format!(".{d}")) || d.ends_with(&format!(".{from}"))
}

fn domain_of(address: &str) -> Option<&str> {
    address
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>'))
        .filter(|d| !d.is_empty())
}

/// One `method=result` with its properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResult {
    pub method: String,
    pub result: String,
    pub properties: Vec<(String, String)>,
}

impl AuthResult {
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticationResults {
    pub authserv_id: String,
    pub results: Vec<AuthResult>,
}

/// Parse an `Authentication-Results` value (RFC 8601 §2.2), leniently: comments dropped,
/// quoted strings unquoted, unknown parts skipped. Never fails.
pub fn parse_authentication_results(value: &str) -> AuthenticationResults {
    let cleaned = strip_comments(value);
    let mut parts = split_outside_quotes(&cleaned, ';').into_iter();
    let authserv_id = parts
        .next()
        .and_then(|p| p.split_whitespace().next().map(|s| s.to_ascii_lowercase()))
        .unwrap_or_default();
    let mut results = Vec::new();
    for part in parts {
        let mut tokens = split_outside_quotes(part.trim(), ' ')
            .into_iter()
            .filter(|t| !t.is_empty());
        let Some((method, result)) = tokens.next().and_then(|t| {
            t.split_once('=').map(|(m, r)| {
                (
                    m.trim().to_ascii_lowercase(),
                    unquote(r).to_ascii_lowercase(),
                )
            })
        }) else {
            continue;
        };
        let method = method.split('/').next().unwrap_or_default().to_owned();
        let properties = tokens
            .filter_map(|t| {
                t.split_once('=')
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), unquote(v).to_owned()))
            })
            .collect();
        results.push(AuthResult {
            method,
            result,
            properties,
        });
    }
    AuthenticationResults {
        authserv_id,
        results,
    }
}

fn unquote(s: &str) -> &str {
    let s = s.trim();
    s.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s)
}

/// Remove RFC 5322 comments `( … )`, nested, outside quoted strings.
fn strip_comments(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let (mut depth, mut quoted, mut escaped) = (0usize, false, false);
    for c in s.chars() {
        if escaped {
            escaped = false;
            if depth == 0 {
                out.push(c);
            }
            continue;
        }
        match c {
            '\\' => {
                escaped = true;
                if depth == 0 {
                    out.push(c);
                }
            }
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(c);
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(if c == '\t' || c == '\r' || c == '\n' {
                ' '
            } else {
                c
            }),
            _ => {}
        }
    }
    out
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(s.get(start..i).unwrap_or(""));
            start = i + c.len_utf8();
        }
    }
    out.push(s.get(start..).unwrap_or(""));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(headers: &[(&str, &str)], from: &str) -> Message {
        Message {
            from: Some(from.to_owned()),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        }
    }

    fn cfg() -> TrustConfig {
        TrustConfig {
            authserv_ids: vec!["mx.nhs.example".into()],
            ..Default::default()
        }
    }

    #[test]
    fn parses_rfc8601_examples() {
        let ar = parse_authentication_results(
            "mx.nhs.example (Postfix) 1; dkim=pass (2048-bit key) header.d=nhs.example header.i=@nhs.example header.b=\"abc;def\";\r\n\tspf=pass smtp.mailfrom=site@nhs.example; dmarc=pass (p=reject) header.from=nhs.example",
        );
        assert_eq!(ar.authserv_id, "mx.nhs.example");
        assert_eq!(ar.results.len(), 3);
        assert_eq!(ar.results[0].property("header.d"), Some("nhs.example"));
        assert_eq!(ar.results[0].property("header.b"), Some("abc;def"));
        assert_eq!(ar.results[2].method, "dmarc");
        assert_eq!(
            parse_authentication_results("example.org 1; none")
                .results
                .len(),
            0
        );
    }

    #[test]
    fn default_trusts_nothing() {
        let m = msg(
            &[(
                "Authentication-Results",
                "mx.nhs.example; dmarc=pass header.from=nhs.example",
            )],
            "site@nhs.example",
        );
        let ev = assess(&m, &TrustConfig::default(), &[]);
        assert!(!ev.proven);
        assert!(ev.summary.contains("authserv_id"), "{}", ev.summary);
    }

    #[test]
    fn dmarc_pass_from_our_boundary_proves() {
        let m = msg(
            &[(
                "Authentication-Results",
                "mx.nhs.example; dmarc=pass header.from=nhs.example",
            )],
            "site@nhs.example",
        );
        assert!(assess(&m, &cfg(), &[]).proven);
    }

    #[test]
    fn a_signature_of_another_domain_proves_nothing() {
        let m = msg(
            &[(
                "Authentication-Results",
                "mx.nhs.example; dkim=pass header.d=evil.example; dmarc=fail",
            )],
            "site@nhs.example",
        );
        let ev = assess(&m, &cfg(), &[]);
        assert!(!ev.proven, "{}", ev.summary);
        assert!(
            !assess(
                &m,
                &TrustConfig {
                    modes: vec![TrustMode::Dkim],
                    ..cfg()
                },
                &["evil.example".into()]
            )
            .proven
        );
    }

    #[test]
    fn only_the_topmost_of_ours_counts_and_forgeries_are_noted() {
        // Our boundary said fail; the sender had planted a "pass" under our name further down.
        let m = msg(
            &[
                (
                    "Authentication-Results",
                    "mx.nhs.example; dmarc=fail header.from=nhs.example",
                ),
                ("Received", "from evil"),
                (
                    "Authentication-Results",
                    "mx.nhs.example; dmarc=pass header.from=nhs.example",
                ),
                ("X-Postroom-Trusted", "yes"),
            ],
            "site@nhs.example",
        );
        let ev = assess(&m, &cfg(), &[]);
        assert!(!ev.proven);
        assert_eq!(ev.ignored_headers.len(), 2, "{:?}", ev.ignored_headers);
    }

    #[test]
    fn someone_elses_authserv_id_is_ignored() {
        let m = msg(
            &[(
                "Authentication-Results",
                "mx.evil.example; dmarc=pass header.from=nhs.example",
            )],
            "site@nhs.example",
        );
        assert!(!assess(&m, &cfg(), &[]).proven);
    }

    #[test]
    fn spf_only_when_accepted() {
        let m = msg(
            &[(
                "Authentication-Results",
                "mx.nhs.example; spf=pass smtp.mailfrom=site@nhs.example",
            )],
            "site@nhs.example",
        );
        assert!(!assess(&m, &cfg(), &[]).proven);
        let c = TrustConfig {
            accept: vec![Method::Spf],
            ..cfg()
        };
        assert!(assess(&m, &c, &[]).proven);
    }

    #[test]
    fn exchange_internal_header() {
        let c = TrustConfig {
            modes: vec![TrustMode::ExchangeInternal],
            ..Default::default()
        };
        assert!(
            assess(
                &msg(
                    &[("X-MS-Exchange-Organization-AuthAs", "Internal")],
                    "a@b.example"
                ),
                &c,
                &[]
            )
            .proven
        );
        assert!(
            !assess(
                &msg(
                    &[("X-MS-Exchange-Organization-AuthAs", "Anonymous")],
                    "a@b.example"
                ),
                &c,
                &[]
            )
            .proven
        );
    }

    #[test]
    fn alignment() {
        assert!(aligned("nhs.example", "nhs.example"));
        assert!(aligned("nhs.example", "mail.nhs.example"));
        assert!(aligned("mail.nhs.example", "nhs.example"));
        assert!(!aligned("example", "nhs.example"));
        assert!(!aligned("evilnhs.example", "nhs.example"));
    }
}
