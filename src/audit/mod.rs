//! The tamper-evident audit trail: every event chained to the one before it by SHA-256
//! ([`chain`]), the chain's head signed and kept elsewhere ([`checkpoint`]), and
//! `postroom audit verify` to check both ([`verify`]). SECURITY.md describes the model.

pub mod as_of;
pub mod chain;
pub mod checkpoint;
pub mod config;
pub mod report;

use crate::config::Config;
use crate::store::Store;
use anyhow::{Context, Result};
use checkpoint::Checkpoint;
use serde::Serialize;
use std::path::Path;

/// What `postroom audit verify` found, for people and (`--json`) for scripts.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub intact: bool,
    /// Chained events (the head's count when intact).
    pub events: i64,
    /// Events from before the chain existed, covered by the genesis digest.
    pub before_chain: u64,
    pub head: Option<String>,
    /// Checkpoints the chain was checked against (stored ones, then the one given).
    pub checkpoints: usize,
    /// When broken: `edited`, `deleted`, `reordered`, `unchained`, `genesis`, `link`,
    /// `truncated`, `rewritten`, `head`, `signature`.
    pub broken: Option<&'static str>,
    /// When broken: the event named (its place in the chain).
    pub event: Option<i64>,
    pub message: String,
}

/// Check the chain, against every checkpoint stored in the database and the one in
/// `given` (a file), whose signature must verify with `public_key`.
pub async fn verify(
    store: &Store,
    cfg: &Config,
    given: Option<(&Path, &str)>,
) -> Result<VerifyReport> {
    let mut conn = store.read().await?;
    let mut claims = Vec::new();
    // The configured key, when this user can read it, also checks the stored checkpoints'
    // signatures (they live in the same database as the chain: the checkpoint that counts
    // is one kept elsewhere, given with --checkpoint).
    let own_key = cfg
        .audit
        .signing_key_file
        .as_deref()
        .and_then(|p| checkpoint::load_key(p).ok())
        .map(|k| k.verifying_key());
    for cp in checkpoint::stored(&mut conn).await? {
        let source = format!("stored checkpoint of {}", cp.at);
        if let Some(k) = &own_key
            && cp.key == hex::encode(k.to_bytes())
            && let Err(e) = cp.check_signature(k)
        {
            return Ok(signature_failure(&source, &e));
        }
        claims.push(cp.claim(source));
    }
    if let Some((file, key)) = given {
        let key = checkpoint::parse_public_key(key).context("--public-key")?;
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let cp = Checkpoint::from_file(&bytes).with_context(|| file.display().to_string())?;
        let source = format!("checkpoint of {} in {}", cp.at, file.display());
        if let Err(e) = cp.check_signature(&key) {
            return Ok(signature_failure(&source, &e));
        }
        claims.push(cp.claim(source));
    }
    let verdict = chain::verify(&mut conn, &claims).await?;
    Ok(match verdict {
        chain::Verdict::Intact {
            events,
            before_chain,
            head,
            claims_checked,
        } => VerifyReport {
            intact: true,
            events,
            before_chain,
            message: format!(
                "audit chain intact: {events} chained event(s){}, head {}; checked against {claims_checked} \
                 checkpoint(s)",
                if before_chain > 0 {
                    format!(" after {before_chain} from before the chain")
                } else {
                    String::new()
                },
                head.as_deref().unwrap_or("(none yet)")
            ),
            head,
            checkpoints: claims_checked,
            broken: None,
            event: None,
        },
        chain::Verdict::Broken { kind, seq, message } => VerifyReport {
            intact: false,
            events: 0,
            before_chain: 0,
            head: None,
            checkpoints: claims.len(),
            broken: Some(kind),
            event: seq,
            message: format!("audit chain BROKEN: {message}"),
        },
    })
}

fn signature_failure(source: &str, e: &anyhow::Error) -> VerifyReport {
    VerifyReport {
        intact: false,
        events: 0,
        before_chain: 0,
        head: None,
        checkpoints: 0,
        broken: Some("signature"),
        event: None,
        message: format!("the {source} cannot be trusted: {e:#}"),
    }
}
