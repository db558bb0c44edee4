//! Signed checkpoints: the chain's length and head hash at a time, signed with an Ed25519 key
//! (`[audit] signing_key_file`). A checkpoint kept outside postroom (emailed to
//! `[audit] checkpoint_to`, saved by whoever receives it) later proves that the first N events
//! are still the ones that were there: `postroom audit verify --checkpoint FILE --public-key KEY`.
//!
//! The text form, exactly as printed, stored and emailed (the signature covers the first five
//! lines, each ended by `\n`):
//!
//! ```text
//! postroom audit checkpoint v1
//! events: 1234
//! head: <64 hex digits: the hash of event #1234>
//! at: 2026-12-05T08:00:00Z
//! key: <64 hex digits: the Ed25519 public key>
//! signature: <128 hex digits>
//! ```
//!
//! Parsing looks for the first line and reads on from there, so a saved email (headers,
//! explanation, quoted) is a valid checkpoint file.

use super::chain;
use crate::config::Config;
use crate::store::audit_checkpoints::{self, NewCheckpoint, StoredCheckpoint};
use crate::store::journal::{self, NewOutboxItem};
use crate::store::{Conn, Store, StoreError, format_ms, now_ms};
use anyhow::{Context, Result, bail};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use rand::RngCore;
use serde::Serialize;
use std::path::Path;

const HEADER: &str = "postroom audit checkpoint v1";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub events: i64,
    pub head: String,
    /// RFC 3339, UTC, whole seconds.
    pub at: String,
    /// The public key, hex.
    pub key: String,
    /// The signature, hex.
    pub signature: String,
}

impl Checkpoint {
    fn signed_text(events: i64, head: &str, at: &str, key: &str) -> String {
        format!("{HEADER}\nevents: {events}\nhead: {head}\nat: {at}\nkey: {key}\n")
    }

    /// The text form (see the module documentation).
    pub fn render(&self) -> String {
        format!(
            "{}signature: {}\n",
            Self::signed_text(self.events, &self.head, &self.at, &self.key),
            self.signature
        )
    }

    /// Sign a claim about the chain.
    pub fn sign(key: &SigningKey, events: i64, head: &str, at_ms: i64) -> Checkpoint {
        let public = hex::encode(key.verifying_key().to_bytes());
        let at = format_ms(at_ms);
        let signature = key.sign(Self::signed_text(events, head, &at, &public).as_bytes());
        Checkpoint {
            events,
            head: head.to_owned(),
            at,
            key: public,
            signature: hex::encode(signature.to_bytes()),
        }
    }

    /// Read the first checkpoint in `text` (a file of its own, or a saved email).
    pub fn parse(text: &str) -> Result<Checkpoint> {
        let mut lines = text
            .lines()
            // Quoted in a reply, or indented by a mail client.
            .map(|l| l.trim().trim_start_matches('>').trim())
            .skip_while(|l| *l != HEADER);
        if lines.next().is_none() {
            bail!("no checkpoint found: expected a line `{HEADER}`");
        }
        let mut field = |name: &str| -> Result<String> {
            let line = lines
                .next()
                .with_context(|| format!("the checkpoint ends before its `{name}:` line"))?;
            line.strip_prefix(name)
                .and_then(|r| r.strip_prefix(':'))
                .map(|v| v.trim().to_owned())
                .with_context(|| format!("expected `{name}: …` in the checkpoint, found {line:?}"))
        };
        let events = field("events")?;
        let events: i64 = events
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .with_context(|| format!("`events: {events}` is not a count"))?;
        let head = field("head")?;
        if chain::from_hex(&head).is_none() {
            bail!("`head: {head}` is not a SHA-256 hash (64 hex digits)");
        }
        let at = field("at")?;
        let key = field("key")?;
        let signature = field("signature")?;
        let hex_of = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
        if !hex_of(&key, 64) {
            bail!("`key: {key}` is not an Ed25519 public key (64 hex digits)");
        }
        if !hex_of(&signature, 128) {
            bail!("`signature: {signature}` is not an Ed25519 signature (128 hex digits)");
        }
        Ok(Checkpoint {
            events,
            head: head.to_ascii_lowercase(),
            at,
            key: key.to_ascii_lowercase(),
            signature: signature.to_ascii_lowercase(),
        })
    }

    /// Read a checkpoint file: the text form as printed, or a saved checkpoint email (whose
    /// body the sender may have quoted-printable encoded: lines of 76 characters or more).
    pub fn from_file(bytes: &[u8]) -> Result<Checkpoint> {
        let text = String::from_utf8_lossy(bytes);
        if let Ok(cp) = Checkpoint::parse(&text) {
            return Ok(cp);
        }
        // A message as saved by a mail client (.eml): its decoded text body. The parser has
        // panicked on hostile input before (src/message.rs): contain that too.
        let body = std::panic::catch_unwind(|| {
            mail_parser::MessageParser::default()
                .parse(bytes)
                .and_then(|m| m.body_text(0).map(|b| b.into_owned()))
        })
        .ok()
        .flatten();
        match body {
            Some(body) => Checkpoint::parse(&body),
            None => Checkpoint::parse(&text),
        }
    }

    /// Check the signature with `expected` (the key the verifier trusts), which must also be
    /// the key the checkpoint names.
    pub fn check_signature(&self, expected: &VerifyingKey) -> Result<()> {
        let named = parse_public_key(&self.key).context("the checkpoint's `key:` line")?;
        if named != *expected {
            bail!(
                "the checkpoint is signed by key {}, not by the key given ({})",
                self.key,
                hex::encode(expected.to_bytes())
            );
        }
        let mut sig = [0u8; 64];
        hex::decode_to_slice(&self.signature, &mut sig)
            .ok()
            .context("the checkpoint's signature is not 128 hex digits")?;
        expected
            .verify(
                Self::signed_text(self.events, &self.head, &self.at, &self.key).as_bytes(),
                &Signature::from_bytes(&sig),
            )
            .ok()
            .context("the checkpoint's signature is not valid: it was altered or forged")
    }

    pub fn claim(&self, source: impl Into<String>) -> chain::Claim {
        chain::Claim {
            source: source.into(),
            events: self.events,
            head: self.head.clone(),
        }
    }
}

/// A public key given as 64 hex digits, or as a file holding them (what `keygen` prints).
pub fn parse_public_key(s: &str) -> Result<VerifyingKey> {
    let text = match std::fs::read_to_string(s) {
        Ok(t) if !s.trim().is_empty() => t,
        _ => s.to_owned(),
    };
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut bytes)
        .ok()
        .context("a public key is 64 hex digits (as `postroom audit keygen` prints it)")?;
    VerifyingKey::from_bytes(&bytes)
        .ok()
        .context("not a valid Ed25519 public key")
}

/// Write a new signing key to `path` (refusing to replace one), readable by its owner only;
/// returns the public key (hex).
pub fn keygen(path: &Path) -> Result<String> {
    let mut seed = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut seed);
    let key = SigningKey::from_bytes(&seed);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(path).with_context(|| {
        format!(
            "cannot create {} (an existing key is never replaced)",
            path.display()
        )
    })?;
    use std::io::Write;
    writeln!(f, "{}", hex::encode(seed))
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(hex::encode(key.verifying_key().to_bytes()))
}

/// Read the signing key of `[audit] signing_key_file`; refuses a file others can read.
pub fn load_key(path: &Path) -> Result<SigningKey> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .with_context(|| format!("[audit] signing_key_file = {}", path.display()))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            bail!(
                "[audit] signing_key_file = {}: readable by others (mode {mode:o}); `chmod 600` it",
                path.display()
            );
        }
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("[audit] signing_key_file = {}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .ok()
        .with_context(|| {
            format!(
                "[audit] signing_key_file = {}: not a key written by `postroom audit keygen`",
                path.display()
            )
        })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The chain's head now: event count and hash (the genesis digest when no event is chained).
async fn current_head(conn: &mut Conn) -> Result<(i64, String), StoreError> {
    let (count, head) = chain::head(conn).await?;
    Ok(match head {
        Some(h) => (count, h),
        None => (0, chain::to_hex(&chain::genesis_digest(conn).await?)),
    })
}

/// Make a checkpoint now: sign the head, store it, and queue it for `[audit] checkpoint_to`;
/// all in one transaction, so the head signed is the head stored.
pub async fn make(store: &Store, cfg: &Config, key: &SigningKey) -> Result<Checkpoint> {
    let mut tx = store.begin().await?;
    let (events, head) = current_head(&mut tx).await?;
    let cp = Checkpoint::sign(key, events, &head, now_ms());
    audit_checkpoints::insert(
        &mut tx,
        &NewCheckpoint {
            at: now_ms(),
            events: cp.events,
            head: &cp.head,
            public_key: &cp.key,
            signature: &cp.signature,
            text: &cp.render(),
        },
    )
    .await?;
    if let Some(to) = &cfg.audit.checkpoint_to {
        let body = email_body(cfg, &cp);
        let subject = format!(
            "postroom audit checkpoint: {} events at {}",
            cp.events, cp.at
        );
        // Our own Message-ID form (`reply::is_our_message_id`): an answer to it is ours.
        let mut token = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut token);
        let message_id = format!(
            "{}-000000.checkpoint{}x{}@{}",
            cfg.helpdesk.reference_prefix,
            cp.events,
            hex::encode(token),
            cfg.helpdesk.domain()
        );
        // Through the outbox like every reply: Auto-Submitted and the loop marker, retries;
        // `checkpoint_to` is never an address postroom reads (config check), so no loop.
        journal::enqueue_reply(
            &mut tx,
            &NewOutboxItem {
                request_id: None,
                to,
                subject: &subject,
                body: &body,
                message_id: &message_id,
                in_reply_to: None,
                references: None,
                secret: None,
            },
        )
        .await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok(cp)
}

fn email_body(cfg: &Config, cp: &Checkpoint) -> String {
    format!(
        "This is a signed checkpoint of {name}'s audit trail: on {at} it held {events} events, the last \
         with the hash below.\n\n\
         Keep this message somewhere postroom's administrators cannot change. Later, anyone can check \
         that those {events} events are unchanged by saving this message to a file and running:\n\n    \
         postroom audit verify --checkpoint FILE --public-key {key}\n\n\
         {text}\n-- \n{name} (automatic message from {address})\n",
        name = cfg.helpdesk.name,
        at = cp.at,
        events = cp.events,
        key = cp.key,
        text = cp.render(),
        address = cfg.helpdesk.address,
    )
}

impl From<StoredCheckpoint> for Checkpoint {
    fn from(c: StoredCheckpoint) -> Checkpoint {
        Checkpoint {
            events: c.events,
            head: c.head,
            at: format_ms(c.at),
            key: c.public_key,
            signature: c.signature,
        }
    }
}

/// Every stored checkpoint, oldest first.
pub async fn stored(conn: &mut Conn) -> Result<Vec<Checkpoint>, StoreError> {
    Ok(audit_checkpoints::all(conn)
        .await?
        .into_iter()
        .map(Checkpoint::from)
        .collect())
}

/// The most recent stored checkpoint, for `/healthz` and the daemon.
pub async fn latest(conn: &mut Conn) -> Result<Option<Checkpoint>, StoreError> {
    Ok(audit_checkpoints::latest(conn).await?.map(Checkpoint::from))
}

/// The daemon's schedule: a checkpoint when the chain grew since the last one (an unchanged
/// chain needs no new email) and the last is not younger than most of `checkpoint_every`
/// (several instances on one database each run the schedule: the first one due signs, the
/// others find its checkpoint). Returns it, or `None` when none was due.
pub async fn scheduled(store: &Store, cfg: &Config) -> Result<Option<Checkpoint>> {
    let Some(path) = &cfg.audit.signing_key_file else {
        return Ok(None);
    };
    let key = load_key(path)?;
    {
        let mut conn = store.read().await?;
        let (events, _) = chain::head(&mut conn).await?;
        if let Some(last) = audit_checkpoints::latest(&mut conn).await? {
            let every = i64::try_from(cfg.audit.checkpoint_every.as_millis()).unwrap_or(i64::MAX);
            let same_key = last.public_key == hex::encode(key.verifying_key().to_bytes());
            let recent = last.at > now_ms().saturating_sub(every / 10 * 9);
            if same_key && (last.events == events || recent) {
                return Ok(None);
            }
        }
    }
    make(store, cfg, &key).await.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[9u8; 32])
    }

    #[test]
    fn signed_checkpoints_round_trip_and_alterations_fail() {
        let k = key();
        let cp = Checkpoint::sign(&k, 42, &"ab".repeat(32), 1_700_000_000_000);
        let parsed = Checkpoint::parse(&format!("From: x\n\nhello\n\n{}", cp.render())).unwrap();
        assert_eq!(parsed, cp);
        parsed.check_signature(&k.verifying_key()).unwrap();

        let forged = Checkpoint::parse(&cp.render().replace("events: 42", "events: 41")).unwrap();
        let e = forged.check_signature(&k.verifying_key()).unwrap_err();
        assert!(e.to_string().contains("not valid"), "{e}");

        let other = SigningKey::from_bytes(&[1u8; 32]);
        let e = cp.check_signature(&other.verifying_key()).unwrap_err();
        assert!(e.to_string().contains("not by the key given"), "{e}");
    }

    #[test]
    fn quoted_checkpoints_parse_and_broken_ones_name_the_line() {
        let cp = Checkpoint::sign(&key(), 3, &"cd".repeat(32), 0);
        let quoted: String = cp.render().lines().map(|l| format!("> {l}\n")).collect();
        assert_eq!(Checkpoint::parse(&quoted).unwrap(), cp);
        let e = Checkpoint::parse("nothing here").unwrap_err();
        assert!(e.to_string().contains("no checkpoint"), "{e}");
        let e = Checkpoint::parse(&format!("{HEADER}\nevents: x\n")).unwrap_err();
        assert!(e.to_string().contains("events: x"), "{e}");
        let e = Checkpoint::parse(&format!("{HEADER}\nevents: 1\nhead: zz\n")).unwrap_err();
        assert!(e.to_string().contains("SHA-256"), "{e}");
    }

    #[test]
    fn a_saved_email_with_a_quoted_printable_body_is_a_checkpoint() {
        let cp = Checkpoint::sign(&key(), 7, &"ef".repeat(32), 0);
        // As lettre sends a body with lines of 76 characters or more: soft line breaks.
        let body: String = cp
            .render()
            .lines()
            .map(|l| {
                if l.len() < 76 {
                    format!("{l}\r\n")
                } else {
                    format!("{}=\r\n{}\r\n", &l[..70], &l[70..])
                }
            })
            .collect();
        let raw = format!(
            "From: helpdesk@nhs.example\r\nTo: archive@elsewhere.example\r\nSubject: checkpoint\r\n\
             MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Transfer-Encoding: quoted-printable\r\n\r\nKeep this.\r\n\r\n{body}"
        );
        assert!(
            Checkpoint::parse(&raw).is_err(),
            "the raw text alone is cut"
        );
        assert_eq!(Checkpoint::from_file(raw.as_bytes()).unwrap(), cp);
    }

    #[test]
    fn keygen_writes_an_owner_only_key_and_never_replaces_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let public = keygen(&path).unwrap();
        let k = load_key(&path).unwrap();
        assert_eq!(hex::encode(k.verifying_key().to_bytes()), public);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = load_key(&path).unwrap_err();
            assert!(e.to_string().contains("readable by others"), "{e}");
        }
        assert!(keygen(&path).is_err(), "an existing key is never replaced");
        assert_eq!(
            parse_public_key(&public).unwrap(),
            k.verifying_key(),
            "the printed key parses"
        );
    }
}
