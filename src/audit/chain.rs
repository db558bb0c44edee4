//! The audit trail as a hash chain: each event stores the SHA-256 of its canonical form, which
//! includes the hash of the event before it. Changing, removing or reordering a stored event
//! breaks a link that [`verify`] finds and names.
//!
//! # Canonical form (version 1)
//!
//! An event's hash is SHA-256 over these bytes, in this order (`u32`, `u64`, `i64`: big
//! endian; `text`: `u32` byte length then the UTF-8 bytes exactly as stored; `opt(x)`: one
//! byte `0` for NULL, or `1` followed by `x`):
//!
//! | field          | encoding                                   |
//! |----------------|--------------------------------------------|
//! | domain         | the 24 bytes `postroom-audit-event-v1\0`   |
//! | `seq`          | `u64` (1 for the first chained event)      |
//! | `prev_hash`    | 32 raw bytes (the previous event's hash)   |
//! | `at`           | `i64` (Unix milliseconds)                  |
//! | `actor`        | `text`                                     |
//! | `on_behalf_of` | `opt(text)`                                |
//! | `action`       | `text`                                     |
//! | `subject`      | `opt(text)`                                |
//! | `detail`       | `text` (the stored JSON text, byte for byte: never re-rendered) |
//! | `request_id`   | `opt(i64)`                                 |
//! | `message_id`   | `opt(i64)`                                 |
//!
//! Every stored column is in it except `id` (the row's storage key, given by the database
//! after the hash is computed) and `hash` itself. The order of the trail is `seq`, which is
//! hashed; [`verify`] also checks that `id` order follows `seq` order. Length prefixes make
//! the encoding unambiguous, and nothing in it depends on how a database renders text or
//! JSON.
//!
//! # Genesis
//!
//! Events written before the chain existed (migration 0050) have no `seq` and no hash. They
//! are covered as a block: the `prev_hash` of event 1 is the *genesis digest*
//! `G_n`, where `G_0 = SHA-256("postroom-audit-genesis-v1\0")` and
//! `G_k = SHA-256(G_{k-1} ‖ i64(id) ‖ fields)` for the k-th such event in `id` order, `fields`
//! being the canonical encoding above from `at` on. On a new database `G_0` is event 1's
//! `prev_hash`. Changing, removing or reordering an event from before the chain therefore
//! breaks event 1's link.

use crate::store::audit_chain::{self, ChainedEvent, event_with_seq, take_head};
use crate::store::{self, Conn, StoreError, format_ms};
use sha2::{Digest, Sha256};
use std::collections::HashMap;

/// The stored chain: its events and its head, read where the store keeps them.
pub use crate::store::audit_chain::{StoredEvent, events_after, head};

pub type Hash = [u8; 32];

const EVENT_DOMAIN: &[u8] = b"postroom-audit-event-v1\0";
const GENESIS_DOMAIN: &[u8] = b"postroom-audit-genesis-v1\0";

/// The stored columns of one event that its hash covers (besides `seq` and `prev_hash`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFields<'a> {
    pub at: i64,
    pub actor: &'a str,
    pub on_behalf_of: Option<&'a str>,
    pub action: &'a str,
    pub subject: Option<&'a str>,
    pub detail: &'a str,
    pub request_id: Option<i64>,
    pub message_id: Option<i64>,
}

fn put_text(h: &mut Sha256, s: &str) {
    // An audit field over 4 GiB cannot be stored; saturate rather than wrap.
    h.update(u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes());
    h.update(s.as_bytes());
}

fn put_opt_text(h: &mut Sha256, s: Option<&str>) {
    match s {
        None => h.update([0u8]),
        Some(s) => {
            h.update([1u8]);
            put_text(h, s);
        }
    }
}

fn put_opt_i64(h: &mut Sha256, v: Option<i64>) {
    match v {
        None => h.update([0u8]),
        Some(v) => {
            h.update([1u8]);
            h.update(v.to_be_bytes());
        }
    }
}

fn put_fields(h: &mut Sha256, f: &EventFields<'_>) {
    h.update(f.at.to_be_bytes());
    put_text(h, f.actor);
    put_opt_text(h, f.on_behalf_of);
    put_text(h, f.action);
    put_opt_text(h, f.subject);
    put_text(h, f.detail);
    put_opt_i64(h, f.request_id);
    put_opt_i64(h, f.message_id);
}

/// The hash of event `seq` whose predecessor's hash is `prev` (the canonical form above).
pub fn event_hash(seq: u64, prev: &Hash, f: &EventFields<'_>) -> Hash {
    let mut h = Sha256::new();
    h.update(EVENT_DOMAIN);
    h.update(seq.to_be_bytes());
    h.update(prev);
    put_fields(&mut h, f);
    h.finalize().into()
}

/// The genesis digest, fed the events from before the chain one by one in `id` order.
#[derive(Debug, Clone)]
pub struct Genesis {
    digest: Hash,
    pub events: u64,
}

impl Default for Genesis {
    fn default() -> Self {
        Genesis {
            digest: Sha256::digest(GENESIS_DOMAIN).into(),
            events: 0,
        }
    }
}

impl Genesis {
    pub fn add(&mut self, id: i64, f: &EventFields<'_>) {
        let mut h = Sha256::new();
        h.update(self.digest);
        h.update(id.to_be_bytes());
        put_fields(&mut h, f);
        self.digest = h.finalize().into();
        self.events += 1;
    }

    pub fn digest(&self) -> Hash {
        self.digest
    }
}

pub fn to_hex(h: &Hash) -> String {
    hex::encode(h)
}

/// A stored hash back to bytes; `None` when it is not 64 hex digits.
pub fn from_hex(s: &str) -> Option<Hash> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s.trim(), &mut out).ok()?;
    Some(out)
}

// ---------------------------------------------------------------------------------------------
// Writing.

/// One event to append, its detail already rendered as the text that is stored.
pub struct Append<'a> {
    pub actor: &'a str,
    pub on_behalf_of: Option<&'a str>,
    pub action: &'a str,
    pub subject: Option<&'a str>,
    pub detail: String,
    pub request_id: Option<i64>,
    pub message_id: Option<i64>,
}

/// Append events to the chain in the caller's transaction: take the head (its row lock makes
/// writers take turns), hash in Rust, insert all events in ONE statement, move the head. A
/// caller outside a transaction gets one of its own, so that the head and the events are
/// never written apart.
pub async fn append(conn: &mut Conn, at: i64, events: &[Append<'_>]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    if store::in_transaction(conn) {
        return append_in_tx(conn, at, events).await;
    }
    let mut tx = store::begin_on(conn).await?;
    append_in_tx(&mut tx, at, events).await?;
    tx.commit().await?;
    Ok(())
}

std::thread_local! {
    /// SQLite: the head this thread's last append left (event count ≥ 1, hash), so that the
    /// next append can skip reading it. The pipeline's messages, the web page's actions and
    /// LMTP deliveries all append from the daemon's one worker thread, so in service it is
    /// almost always the database's head; it is only ever used through
    /// [`audit_chain::insert_events_if_head`], which writes nothing unless the stored head
    /// still is exactly this one (another process, connection or thread appended since, or
    /// the transaction that wrote it rolled back: the head is then read as before). Two
    /// databases can share it safely for the same reason: equal counts and hashes are equal
    /// chains. A head of 0 events is never kept: what the first event links to depends on
    /// the events from before the chain, which the head does not name.
    ///
    /// Why: reading the head was one round trip to SQLite's thread per message out of about
    /// eight (README, Performance). PostgreSQL reads it as before: there the read takes the
    /// row's lock that orders concurrent writers, and several instances append.
    static LAST_HEAD: std::cell::RefCell<Option<(i64, String)>> =
        const { std::cell::RefCell::new(None) };
}

fn last_head() -> Option<(i64, String)> {
    LAST_HEAD.with(|h| h.borrow().clone())
}

fn remember_head(count: i64, hash: String) {
    LAST_HEAD.with(|h| *h.borrow_mut() = Some((count, hash)));
}

/// Events hashed onto a head: each one's place, the hash it links to and its own (hex), and
/// the head after them.
struct Chained {
    links: Vec<(i64, String, String)>,
    count: i64,
    head: String,
}

fn chain_onto(
    count: i64,
    mut prev: Hash,
    at: i64,
    events: &[Append<'_>],
) -> Result<Chained, StoreError> {
    let first_seq = u64::try_from(count)
        .map_err(|_| StoreError::Invalid(format!("audit_head event_count is {count}")))?
        + 1;
    let mut links = Vec::with_capacity(events.len());
    for (i, e) in events.iter().enumerate() {
        let seq = first_seq + i as u64;
        let h = event_hash(
            seq,
            &prev,
            &EventFields {
                at,
                actor: e.actor,
                on_behalf_of: e.on_behalf_of,
                action: e.action,
                subject: e.subject,
                detail: &e.detail,
                request_id: e.request_id,
                message_id: e.message_id,
            },
        );
        links.push((
            i64::try_from(seq).unwrap_or(i64::MAX),
            to_hex(&prev),
            to_hex(&h),
        ));
        prev = h;
    }
    Ok(Chained {
        links,
        count: count.saturating_add(i64::try_from(events.len()).unwrap_or(i64::MAX)),
        head: to_hex(&prev),
    })
}

impl Chained {
    fn rows<'a>(&'a self, events: &'a [Append<'a>]) -> Vec<ChainedEvent<'a>> {
        events
            .iter()
            .zip(&self.links)
            .map(|(e, (seq, prev_hex, hash_hex))| ChainedEvent {
                actor: e.actor,
                on_behalf_of: e.on_behalf_of,
                action: e.action,
                subject: e.subject,
                detail: e.detail.as_str(),
                request_id: e.request_id,
                message_id: e.message_id,
                seq: *seq,
                prev_hash: prev_hex.as_str(),
                hash: hash_hex.as_str(),
            })
            .collect()
    }
}

async fn append_in_tx(conn: &mut Conn, at: i64, events: &[Append<'_>]) -> Result<(), StoreError> {
    let sqlite = store::is_sqlite(conn);
    if sqlite {
        // Onto the head this thread last left, if it still is the database's (`LAST_HEAD`).
        if let Some((count, hash)) = last_head()
            && let Some(prev) = from_hex(&hash)
        {
            let chained = chain_onto(count, prev, at, events)?;
            let rows = chained.rows(events);
            let to = (chained.count, chained.head.as_str());
            if audit_chain::insert_events_if_head(conn, at, &rows, (count, &hash), to).await? {
                remember_head(chained.count, chained.head);
                return Ok(());
            }
        }
    }
    // Takes the head row's lock until commit (see `take_head`): writers take turns.
    let (count, head) = take_head(conn, at).await?;
    let prev = match head {
        Some(h) => from_hex(&h).ok_or_else(|| {
            StoreError::Invalid(format!(
                "audit_head holds {h:?}, not a SHA-256 hash: run `postroom audit verify`"
            ))
        })?,
        // The first chained event: it links to the events from before the chain.
        None => genesis_of_unchained(conn).await?.digest(),
    };
    let chained = chain_onto(count, prev, at, events)?;
    audit_chain::insert_events(
        conn,
        at,
        &chained.rows(events),
        chained.count,
        &chained.head,
    )
    .await?;
    if sqlite {
        remember_head(chained.count, chained.head);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading.

// The row type is the store's (`store::audit_chain`); what the chain makes of it is here.
impl StoredEvent {
    pub fn fields(&self) -> EventFields<'_> {
        EventFields {
            at: self.at,
            actor: &self.actor,
            on_behalf_of: self.on_behalf_of.as_deref(),
            action: &self.action,
            subject: self.subject.as_deref(),
            detail: &self.detail,
            request_id: self.request_id,
            message_id: self.message_id,
        }
    }

    /// How a report names it: place in the chain, row id, time, action and subject.
    pub fn describe(&self) -> String {
        let place = match self.seq {
            Some(s) => format!("event #{s}"),
            None => "unchained event".to_owned(),
        };
        let on = self
            .subject
            .as_deref()
            .map(|s| format!(" on {s}"))
            .unwrap_or_default();
        format!(
            "{place} (id {}, {}, {}{on} by {})",
            self.id,
            format_ms(self.at),
            self.action,
            self.actor
        )
    }
}

const PAGE: i64 = 2000;

/// The genesis digest over the events that have no place in the chain (all of them before
/// the first chained event is written).
async fn genesis_of_unchained(conn: &mut Conn) -> Result<Genesis, StoreError> {
    let mut g = Genesis::default();
    let mut after = i64::MIN;
    loop {
        let page = events_after(conn, after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for e in page.iter().filter(|e| e.seq.is_none()) {
            g.add(e.id, &e.fields());
        }
    }
    Ok(g)
}

/// The genesis digest as it stands (over the events from before the chain).
pub async fn genesis_digest(conn: &mut Conn) -> Result<Hash, StoreError> {
    Ok(genesis_of_unchained(conn).await?.digest())
}

// ---------------------------------------------------------------------------------------------
// Verifying.

/// What a checkpoint claims: the chain had `events` events and the last one's hash was `head`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Where the claim comes from, for the report (`checkpoint of 2026-… (stored)`).
    pub source: String,
    pub events: i64,
    pub head: String,
}

/// The first broken link found, or the chain's summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Intact {
        events: i64,
        before_chain: u64,
        head: Option<String>,
        claims_checked: usize,
    },
    Broken {
        /// A stable code for scripts: `edited`, `deleted`, `reordered`, `unchained`,
        /// `genesis`, `link`, `truncated`, `rewritten`, `head`.
        kind: &'static str,
        /// The event named (its seq), when one is.
        seq: Option<i64>,
        message: String,
    },
}

impl Verdict {
    pub fn is_intact(&self) -> bool {
        matches!(self, Verdict::Intact { .. })
    }
}

fn broken(kind: &'static str, seq: Option<i64>, message: String) -> Verdict {
    Verdict::Broken { kind, seq, message }
}

/// Walk the whole chain in id order and check every link; then the head row and each claim
/// (checkpoints) against what was found. Reports the first broken link.
pub async fn verify(conn: &mut Conn, claims: &[Claim]) -> Result<Verdict, StoreError> {
    let wanted: HashMap<i64, ()> = claims.iter().map(|c| (c.events, ())).collect();
    let mut found_at: HashMap<i64, String> = HashMap::new();
    let mut genesis = Genesis::default();
    let mut chained = false;
    let mut expected_seq: i64 = 1;
    let mut prev: Hash = genesis.digest();
    let mut prev_hex = to_hex(&prev);
    let mut after = i64::MIN;
    // On a live system events are appended while the walk goes on: the head is read after the
    // walk (an event seen was committed with its head, so the head read later covers it), and
    // if it has moved past what was walked, the walk goes on over the new events. Only a head
    // ahead of the events with no new event to read is a truncation.
    // A head is taken as final when a walk made after reading it found nothing more: the
    // first walk may well see no event at all and the head read after it several.
    let mut passes = 0;
    let mut head_seen: Option<i64> = None;
    let (head_count, head_hash) = loop {
        passes += 1;
        loop {
            let page = events_after(conn, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for e in &page {
                let Some(seq) = e.seq else {
                    if chained {
                        return Ok(broken(
                            "unchained",
                            None,
                            format!(
                                "{} has no place in the chain but was stored after event #{}: it was inserted \
                             behind postroom's back",
                                e.describe(),
                                expected_seq - 1
                            ),
                        ));
                    }
                    genesis.add(e.id, &e.fields());
                    continue;
                };
                if !chained {
                    chained = true;
                    prev = genesis.digest();
                    prev_hex = to_hex(&prev);
                }
                if seq != expected_seq {
                    return out_of_place(conn, e, seq, expected_seq).await;
                }
                let stored_prev = e.prev_hash.as_deref().unwrap_or("");
                if stored_prev != prev_hex {
                    return Ok(if seq == 1 {
                        broken(
                            "genesis",
                            Some(seq),
                            format!(
                                "{} does not link to the {} event(s) stored from before the chain: one of them \
                             was edited, deleted or reordered (or an event was added among them)",
                                e.describe(),
                                genesis.events
                            ),
                        )
                    } else {
                        broken(
                            "link",
                            Some(seq),
                            format!(
                                "{} does not link to event #{}: the event before it was replaced (edited with its \
                             hash recomputed), or this one was",
                                e.describe(),
                                seq - 1
                            ),
                        )
                    });
                }
                let recomputed = event_hash(seq.cast_unsigned(), &prev, &e.fields());
                let recomputed_hex = to_hex(&recomputed);
                if e.hash.as_deref() != Some(recomputed_hex.as_str()) {
                    return Ok(broken(
                        "edited",
                        Some(seq),
                        format!(
                            "{} was edited: its stored content no longer matches its hash",
                            e.describe()
                        ),
                    ));
                }
                if wanted.contains_key(&seq) {
                    found_at.insert(seq, recomputed_hex.clone());
                }
                prev = recomputed;
                prev_hex = recomputed_hex;
                expected_seq = seq + 1;
            }
        }
        let h = head(conn).await?;
        if h.0 > expected_seq - 1 && head_seen != Some(h.0) && passes < 1000 {
            head_seen = Some(h.0);
            continue;
        }
        break h;
    };
    let events = expected_seq - 1;
    let last_hash = chained.then(|| prev_hex.clone());

    // The head row: a tail removed without also rewinding the head (the trigger refuses that).
    if head_count > events {
        return Ok(broken(
            "truncated",
            Some(events + 1),
            format!(
                "the chain ends at event #{events} but its head records {head_count} events: events #{}–#{head_count} \
                 were removed (truncated tail)",
                events + 1
            ),
        ));
    }
    if head_count != events || head_hash != last_hash {
        return Ok(broken(
            "head",
            None,
            format!(
                "the chain has {events} events (last hash {}) but its head records {head_count} ({}): the head \
                 was rewritten or events were added behind postroom's back",
                last_hash.as_deref().unwrap_or("none"),
                head_hash.as_deref().unwrap_or("none")
            ),
        ));
    }
    for c in claims {
        if c.events > events {
            return Ok(broken(
                "truncated",
                Some(events + 1),
                format!(
                    "the {} covers {} events but the chain has only {events}: events #{}–#{} were removed \
                     (truncated tail)",
                    c.source,
                    c.events,
                    events + 1,
                    c.events
                ),
            ));
        }
        let found = if c.events == 0 {
            Some(to_hex(&genesis.digest()))
        } else {
            found_at.get(&c.events).cloned()
        };
        if found.as_deref() != Some(c.head.as_str()) {
            return Ok(broken(
                "rewritten",
                Some(c.events),
                format!(
                    "event #{} does not have the hash the {} gives ({}): the chain was rewritten at or \
                     before it",
                    c.events, c.source, c.head
                ),
            ));
        }
    }
    Ok(Verdict::Intact {
        events,
        before_chain: genesis.events,
        head: last_hash,
        claims_checked: claims.len(),
    })
}

/// Event `e` has seq `seq` where `expected` was due: a removed event, or rows reordered.
async fn out_of_place(
    conn: &mut Conn,
    e: &StoredEvent,
    seq: i64,
    expected: i64,
) -> Result<Verdict, StoreError> {
    if seq > expected {
        // Is the missing one stored further on (reordered), or gone (deleted)?
        return Ok(match event_with_seq(conn, expected).await? {
            Some(missing) => broken(
                "reordered",
                Some(expected),
                format!(
                    "rows were reordered: {} is stored after {}, which comes later in the chain",
                    missing.describe(),
                    e.describe()
                ),
            ),
            None => broken(
                "deleted",
                Some(expected),
                format!(
                    "event #{expected}{} was deleted: {} follows {}",
                    if seq > expected + 1 {
                        format!("–#{}", seq - 1)
                    } else {
                        String::new()
                    },
                    e.describe(),
                    if expected > 1 {
                        format!("event #{}", expected - 1)
                    } else {
                        "the start of the chain".to_owned()
                    }
                ),
            ),
        });
    }
    Ok(broken(
        "reordered",
        Some(seq),
        format!(
            "rows were reordered: {} is stored after event #{}",
            e.describe(),
            expected - 1
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields() -> EventFields<'static> {
        EventFields {
            at: 1_700_000_000_000,
            actor: "ann@nhs.example",
            on_behalf_of: Some("ward@nhs.example"),
            action: "account.unlocked",
            subject: Some("bob@nhs.example"),
            detail: "{\"why\":\"x\"}",
            request_id: Some(7),
            message_id: None,
        }
    }

    #[test]
    fn every_field_changes_the_hash() {
        let prev = [7u8; 32];
        let base = event_hash(3, &prev, &fields());
        assert_ne!(base, event_hash(4, &prev, &fields()));
        assert_ne!(base, event_hash(3, &[8u8; 32], &fields()));
        let variants: Vec<EventFields<'static>> = vec![
            EventFields { at: 1, ..fields() },
            EventFields {
                actor: "eve@nhs.example",
                ..fields()
            },
            EventFields {
                on_behalf_of: None,
                ..fields()
            },
            EventFields {
                action: "account.disabled",
                ..fields()
            },
            EventFields {
                subject: None,
                ..fields()
            },
            EventFields {
                detail: "{\"why\": \"x\"}",
                ..fields()
            },
            EventFields {
                request_id: None,
                ..fields()
            },
            EventFields {
                message_id: Some(7),
                ..fields()
            },
        ];
        for v in &variants {
            assert_ne!(base, event_hash(3, &prev, v), "{v:?}");
        }
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        // The same bytes split differently between two fields must not collide.
        let prev = [0u8; 32];
        let a = EventFields {
            actor: "ab",
            action: "c",
            ..fields()
        };
        let b = EventFields {
            actor: "a",
            action: "bc",
            ..fields()
        };
        assert_ne!(event_hash(1, &prev, &a), event_hash(1, &prev, &b));
        // NULL and the empty string differ.
        let c = EventFields {
            subject: Some(""),
            ..fields()
        };
        let d = EventFields {
            subject: None,
            ..fields()
        };
        assert_ne!(event_hash(1, &prev, &c), event_hash(1, &prev, &d));
    }

    #[test]
    fn the_canonical_form_is_fixed() {
        // A known answer, computed independently from the documented encoding (a few lines
        // of Python's hashlib and struct): a change to the encoding must be a new version,
        // not a silent edit.
        let h = event_hash(1, &Genesis::default().digest(), &fields());
        assert_eq!(
            to_hex(&h),
            "521dde508b5f2c47733f44c048ba2eba29f91a756bcb24fe3bd4b0b49f9a6f9d",
            "the canonical form changed: existing chains would no longer verify"
        );
    }

    #[test]
    fn genesis_covers_each_event_and_its_order() {
        let mut a = Genesis::default();
        a.add(1, &fields());
        a.add(2, &fields());
        let mut b = Genesis::default();
        b.add(2, &fields());
        b.add(1, &fields());
        assert_ne!(a.digest(), b.digest());
        let mut c = Genesis::default();
        c.add(1, &fields());
        assert_ne!(a.digest(), c.digest());
        assert_eq!(a.events, 2);
    }

    fn test_event(subject: &str) -> Append<'_> {
        Append {
            actor: "postroom",
            on_behalf_of: None,
            action: "test.event",
            subject: Some(subject),
            detail: "{}".into(),
            request_id: None,
            message_id: None,
        }
    }

    /// Append one event in a transaction of its own on `store`.
    async fn append_one(store: &crate::store::Store, subject: &str) {
        let mut tx = store.begin().await.unwrap();
        append(&mut tx, crate::store::now_ms(), &[test_event(subject)])
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }

    /// Writes of the head so far, as the TEMP trigger `head_writes_counted` counts them.
    async fn head_writes(store: &crate::store::Store) -> i64 {
        let mut c = store.write().await.unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM head_writes")
            .fetch_one(&mut *c)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn sqlite_appends_onto_the_head_it_left_and_reads_it_again_when_that_is_stale() {
        let store = crate::store::Store::in_memory().await;
        {
            // Every row write of the head, counted by a trigger of this (only) connection.
            let mut c = store.write().await.unwrap();
            for sql in [
                "CREATE TEMP TABLE head_writes (n INTEGER)",
                "CREATE TEMP TRIGGER head_writes_counted AFTER UPDATE ON audit_head \
                 BEGIN INSERT INTO head_writes VALUES (1); END",
            ] {
                sqlx::query(sql).execute(&mut *c).await.unwrap();
            }
        }
        // The first event: the head (0 events) is read and taken, then moved: two writes.
        append_one(&store, "one@nhs.example").await;
        assert_eq!(head_writes(&store).await, 2);
        // The next onto the head this thread left: moved once, nothing read before.
        append_one(&store, "two@nhs.example").await;
        assert_eq!(head_writes(&store).await, 3);
        // An append whose transaction is rolled back leaves this thread remembering a head
        // the database never got (the TEMP table's row goes with it)…
        let mut tx = store.begin().await.unwrap();
        append(
            &mut tx,
            crate::store::now_ms(),
            &[test_event("lost@nhs.example")],
        )
        .await
        .unwrap();
        tx.rollback().await.unwrap();
        assert_eq!(head_writes(&store).await, 3);
        // …so nothing is written onto it: the head is read again and the event follows the
        // last one stored. (Other threads, connections and processes moving the head meet
        // the same test: `tests/audit_chain.rs`, `concurrent_writers_make_one_chain`.)
        append_one(&store, "three@nhs.example").await;
        assert_eq!(head_writes(&store).await, 5);
        let mut c = store.read().await.unwrap();
        match verify(&mut c, &[]).await.unwrap() {
            Verdict::Intact { events, .. } => assert_eq!(events, 3),
            broken => panic!("{broken:?}"),
        }
        let order: Vec<String> =
            sqlx::query_scalar("SELECT subject FROM audit_events ORDER BY seq")
                .fetch_all(&mut *c)
                .await
                .unwrap();
        assert_eq!(
            order,
            ["one", "two", "three"].map(|n| format!("{n}@nhs.example"))
        );
    }

    #[test]
    fn hex_round_trip() {
        let h = [0xabu8; 32];
        assert_eq!(from_hex(&to_hex(&h)), Some(h));
        assert_eq!(from_hex("zz"), None);
        assert_eq!(from_hex(&"a".repeat(63)), None);
    }
}
