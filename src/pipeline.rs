//! The one path every message takes, whoever hands it over (`process`, the IMAP watcher, the
//! staff page): parse → screen → trust → extract → authorise → decide, then ONE transaction
//! that stores the message, the request, the directory change, the audit events and the
//! replies.
//!
//! Everything before the transaction is pure or read-only; the transaction waits on no
//! network (DKIM keys are looked up before it starts).

use crate::accounts::MailboxSummary;
use crate::action::AuditAction;
use crate::config::Config;
use crate::confirm;
use crate::desk::answer::enqueue_filing;
use crate::desk::settle::{self, Answer, Row, Settle};
use crate::desk::snapshot::load_snapshot;
use crate::message::{self, Message};
use crate::outcome::Outcome;
use crate::policy::{self, Decision};
use crate::reason::Reason;
use crate::reply::{self, Reply};
use crate::request::RequestKind;
use crate::request::extract::{
    self, Ask, ExtractContext, Extracted, Field, KindMatch, Mention, NotAsked,
};
use crate::resolve;
use crate::screen;
use crate::store::directory;
use crate::store::journal::{self, Filing, NewAuditEvent, NewMessage};
use crate::store::{Conn, Store, StoreError, Tx};
use crate::trust::{self, Evidence};
use serde_json::json;

// What a message's processing gives back, and whether it is committed: the desk's, named here
// too because callers think of them as the pipeline's.
pub use crate::desk::Mode;
pub use crate::desk::processed::{Processed, Resolution, Understood};

/// Process one message; the result the message is filed under (see [`headline`]). A message
/// that asks for several things makes several requests: [`process_all`] returns each.
pub async fn process(
    store: &Store,
    cfg: &Config,
    raw: &[u8],
    source: &str,
    mode: Mode,
) -> Result<Processed, StoreError> {
    run(store, cfg, raw, source, mode, None).await.map(headline)
}

/// Process one message: one result per request it made (one, unless it asked for several
/// things), in the order asked. What `process` prints and `eval` judges.
pub async fn process_all(
    store: &Store,
    cfg: &Config,
    raw: &[u8],
    source: &str,
    mode: Mode,
) -> Result<Vec<Processed>, StoreError> {
    run(store, cfg, raw, source, mode, None).await
}

/// How much a person's attention an outcome needs: the message is filed under the outcome of
/// its request that needs the most (a message with one applied and one held request goes where
/// staff look).
fn attention(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::NeedsReview => 6,
        Outcome::AwaitingConfirmation => 5,
        Outcome::Rejected => 4,
        Outcome::Applied => 3,
        Outcome::Ignored => 2,
        Outcome::Duplicate => 1,
    }
}

/// The result a message is filed and reported under: its request needing the most attention
/// (the first of those), or the only one.
pub fn headline(mut all: Vec<Processed>) -> Processed {
    let best = all
        .iter()
        .enumerate()
        .max_by_key(|(i, p)| (attention(p.outcome), std::cmp::Reverse(*i)))
        .map(|(i, _)| i)
        .unwrap_or(0);
    if best < all.len() {
        all.swap_remove(best)
    } else {
        Processed::new(Outcome::Ignored, RequestKind::Unknown, None, None)
    }
}

/// A message over the size limit: only its header was downloaded. It is stored (header only)
/// and held for a person, with the reason.
pub async fn process_oversized(
    store: &Store,
    cfg: &Config,
    header: &[u8],
    size: u64,
    limit: u64,
    source: &str,
) -> Result<Processed, StoreError> {
    run(
        store,
        cfg,
        header,
        source,
        Mode::Apply,
        Some(Reason::TooLarge { size, limit }),
    )
    .await
    .map(headline)
}

async fn run(
    store: &Store,
    cfg: &Config,
    raw: &[u8],
    source: &str,
    mode: Mode,
    hold: Option<Reason>,
) -> Result<Vec<Processed>, StoreError> {
    run_parsed(store, cfg, raw, message::parse(raw), source, mode, hold).await
}

/// Decide a stored message again under today's rules and directory, writing nothing: what
/// `postroom replay` reports. The message is treated as new (its Message-ID and hash are
/// set aside so it is not a duplicate of itself).
pub async fn replay(
    store: &Store,
    cfg: &Config,
    raw: &[u8],
    source: &str,
) -> Result<Processed, StoreError> {
    let mut msg = message::parse(raw);
    msg.message_id = None;
    msg.sha256 = format!("replay:{}", msg.sha256);
    run_parsed(store, cfg, raw, msg, source, Mode::DryRun, None)
        .await
        .map(headline)
}

async fn run_parsed(
    store: &Store,
    cfg: &Config,
    raw: &[u8],
    msg: Message,
    source: &str,
    mode: Mode,
    hold: Option<Reason>,
) -> Result<Vec<Processed>, StoreError> {
    let prepared = prepare_parsed(cfg, raw, msg).await;
    let input = Input {
        cfg,
        raw,
        msg: &prepared.msg,
        evidence: &prepared.evidence,
        source,
        mode,
    };
    // Two messages touching the same mailbox at once (two owners removing each other) cannot
    // both pass the last-owner guard: the database serialises them, and the loser is decided
    // again from scratch on the directory the winner left.
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let result = attempt_once(store, &input, hold.clone()).await;
        match result {
            Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                tracing::debug!(attempt, error = %e, "transaction conflict, trying again");
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt) * 20)).await;
            }
            other => return other,
        }
    }
}

/// A message read and its trust evidence gathered: everything before the transaction.
pub struct Prepared<'r> {
    raw: &'r [u8],
    msg: Message,
    evidence: Evidence,
}

/// Parse the message and check its DKIM signatures (which may look keys up: do it before
/// joining a [`Group`], or with the group committed).
pub async fn prepare<'r>(cfg: &Config, raw: &'r [u8]) -> Prepared<'r> {
    prepare_parsed(cfg, raw, message::parse(raw)).await
}

async fn prepare_parsed<'r>(cfg: &Config, raw: &'r [u8], msg: Message) -> Prepared<'r> {
    let dkim_domains = crate::dkim::verified_domains(raw, &cfg.trust).await;
    let evidence = trust::assess(&msg, &cfg.trust, &dkim_domains);
    Prepared { raw, msg, evidence }
}

/// Group commit, for the IMAP watcher and LMTP deliveries on SQLite (`lmtp/deliver.rs`): the
/// messages of one fetch, or the deliveries that arrived during the last commit, share ONE
/// transaction. Nothing about any of them is visible, replied to or moved until
/// [`Group::commit`] returns; a crash before it loses the lot, and the next sync fetches and
/// processes them again, as after a crash between two ordinary transactions. The caller
/// commits before it waits on the network, so the write lock is never held across an IMAP
/// read.
///
/// A message's writes go straight into the group's transaction, without a savepoint of its
/// own (a savepoint and its release would be two more round trips to SQLite's worker per
/// message). So a message that fails takes the group with it: [`Group::process`] consumes the
/// group and gives it back only on success; on an error it is rolled back, and the caller
/// leaves every message of it for the next pass, which processes them one transaction each
/// (`imap/sync.rs`), so one bad message cannot hold the others back.
///
/// Only for SQLite, where this process's writers take turns ([`Store::begin`]) and a
/// transaction cannot meet a conflict: on PostgreSQL a serialisation failure would undo the
/// whole group, so messages keep their own transaction (and retry loop) there.
pub struct Group {
    tx: Tx,
    messages: usize,
}

impl Group {
    pub async fn begin(store: &Store) -> Result<Group, StoreError> {
        Ok(Group {
            tx: store.begin().await?,
            messages: 0,
        })
    }

    /// Messages processed in the group so far.
    pub fn len(&self) -> usize {
        self.messages
    }

    pub fn is_empty(&self) -> bool {
        self.messages == 0
    }

    /// Process one prepared message in the group: the group back with the result, or the
    /// error, the group then rolled back (dropped) with everything in it.
    pub async fn process(
        mut self,
        cfg: &Config,
        prepared: &Prepared<'_>,
        source: &str,
    ) -> Result<(Group, Processed), StoreError> {
        let input = Input {
            cfg,
            raw: prepared.raw,
            msg: &prepared.msg,
            evidence: &prepared.evidence,
            source,
            mode: Mode::Apply,
        };
        match process_in(&mut self.tx, &input, None).await {
            Ok(all) => {
                self.messages += 1;
                Ok((self, headline(all)))
            }
            Err(e) => {
                if let Err(rollback) = self.tx.rollback().await {
                    tracing::warn!("rolling back a failed group of messages: {rollback}");
                }
                Err(e)
            }
        }
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit().await?)
    }
}

/// Transaction attempts per message before a conflict is reported as an error.
const MAX_ATTEMPTS: u32 = 4;

async fn attempt_once(
    store: &Store,
    input: &Input<'_>,
    hold: Option<Reason>,
) -> Result<Vec<Processed>, StoreError> {
    let mut tx = store.begin().await?;
    let result = process_in(&mut tx, input, hold).await;
    match (&result, input.mode) {
        (Ok(_), Mode::Apply) => tx.commit().await?,
        _ => tx.rollback().await?,
    }
    result
}

/// What every step may look at.
pub(crate) struct Input<'a> {
    pub cfg: &'a Config,
    pub raw: &'a [u8],
    pub msg: &'a Message,
    pub evidence: &'a Evidence,
    pub source: &'a str,
    pub mode: Mode,
}

async fn process_in(
    conn: &mut Conn,
    input: &Input<'_>,
    hold: Option<Reason>,
) -> Result<Vec<Processed>, StoreError> {
    let msg = input.msg;
    let stored = journal::insert_message_if_new(
        conn,
        &NewMessage {
            message_id: msg.message_id.as_deref(),
            sha256: &msg.sha256,
            raw: input.raw,
            from_address: msg.from.as_deref(),
            subject: &msg.subject,
            source: input.source,
        },
    )
    .await?;
    let Some(message_db_id) = stored else {
        // Seen before (same Message-ID, or the same bytes): change nothing.
        let seen = journal::find_seen_message(conn, msg.message_id.as_deref(), &msg.sha256)
            .await?
            .ok_or_else(|| {
                StoreError::Invalid(format!(
                    "message {} was refused as a duplicate but no stored copy was found",
                    msg.sha256
                ))
            })?;
        let duplicate = Reason::Duplicate {
            outcome: seen.outcome.map(|o| o.as_str().to_owned()),
        };
        let mut p = Processed::new(
            Outcome::Duplicate,
            RequestKind::Unknown,
            seen.reference,
            Some(&duplicate),
        );
        p.previous_outcome = seen.outcome;
        p.previous_source = Some(seen.source);
        return Ok(vec![p]);
    };

    // The requests are recorded; the one reply that answers them is queued last, by the
    // statement that also files the message (one round trip for both).
    let (mut all, reply) = match classify(conn, input, hold, message_db_id).await? {
        Step::Done(p) => (vec![p], None),
        Step::Decided(d) => {
            let understood = Understood::of(&d);
            let mut p = record(conn, input, d, understood, message_db_id, Answer::Later).await?;
            // An answer that waits for its provisioning job is queued already, held for it.
            let reply = if p.answered_alone {
                None
            } else {
                p.reply.take()
            };
            (vec![p], reply)
        }
        Step::Asks(decided) => record_asks(conn, input, decided, message_db_id).await?,
    };
    // The message row points at its first request, under the outcome it is filed by.
    let filed = all
        .iter()
        .map(|p| p.outcome)
        .max_by_key(|o| attention(*o))
        .unwrap_or(Outcome::Ignored);
    let first_request = all.iter().find_map(|p| p.request_id);
    let filing = Filing {
        message_id: message_db_id,
        outcome: filed.as_str(),
        request_id: first_request,
    };
    match reply {
        Some(r) => {
            let queued = enqueue_filing(conn, input.cfg, r, first_request, Some(&filing))
                .await?
                .map(|(_, r)| r);
            for p in &mut all {
                p.reply = queued.clone();
            }
        }
        None => journal::set_message_outcome(conn, &filing).await?,
    }
    Ok(all)
}

/// Several requests from one message: each recorded (own reference, outcome, audit), and ONE
/// reply to the mailbox that lists each outcome, returned for the caller to queue.
async fn record_asks(
    conn: &mut Conn,
    input: &Input<'_>,
    decided: Vec<(Decision, Understood)>,
    message_db_id: i64,
) -> Result<(Vec<Processed>, Option<Reply>), StoreError> {
    let mut all = Vec::new();
    let mut parts = Vec::new();
    for (d, understood) in decided {
        let mut p = record(conn, input, d, understood, message_db_id, Answer::Later).await?;
        if p.answered_alone {
            all.push(p);
            continue;
        }
        if let (Some(r), Some(reference)) = (p.reply.take(), p.reference.clone()) {
            parts.push(reply::Part {
                reference,
                outcome: p.outcome,
                kind: p.kind,
                reply: r,
                understood: p
                    .understood
                    .as_ref()
                    .map(Understood::lines)
                    .unwrap_or_default(),
            });
        }
        all.push(p);
    }
    let combined = reply::combine(&input.cfg.helpdesk, parts);
    Ok((all, combined))
}

enum Step {
    /// Handled without a new request (a comment, a confirmation).
    Done(Processed),
    Decided(Decision),
    /// Several things asked: a request each, answered together.
    Asks(Vec<(Decision, Understood)>),
}

/// Everything up to the decision, in the order that fails closed.
async fn classify(
    conn: &mut Conn,
    input: &Input<'_>,
    hold: Option<Reason>,
    message_db_id: i64,
) -> Result<Step, StoreError> {
    let (msg, cfg) = (input.msg, input.cfg);
    let helpdesk = &cfg.helpdesk;
    let unknown =
        |outcome, reason| Step::Decided(Decision::new(outcome, RequestKind::Unknown, Some(reason)));

    if msg.unparsable {
        return Ok(unknown(Outcome::NeedsReview, Reason::Unparsable));
    }
    if let Some(why) = screen::screen(msg, &helpdesk.address) {
        return Ok(unknown(
            Outcome::Ignored,
            Reason::NotARequest(why.describe()),
        ));
    }
    // Our own loop marker: one of our replies came back (RFC 3834 §2 loop prevention).
    if msg.header("x-postroom-loop").is_some() {
        return Ok(unknown(Outcome::Ignored, Reason::Loop));
    }
    // Unproven mail is never applied and never answered: answering a forged From: is
    // backscatter.
    if !input.evidence.proven {
        return Ok(unknown(
            Outcome::Rejected,
            Reason::Unauthenticated(input.evidence.summary.clone()),
        ));
    }
    if let Some(reason) = hold {
        let mut d = Decision::new(Outcome::NeedsReview, RequestKind::Unknown, Some(reason));
        if let Some(from) = &msg.from {
            d.mailbox = directory::find_mailbox(conn, from)
                .await?
                .map(|m| m.address);
        }
        return Ok(Step::Decided(d));
    }
    if let Some(what) = too_complex(msg, cfg) {
        return Ok(unknown(Outcome::NeedsReview, Reason::TooComplex(what)));
    }

    let ctx = ExtractContext {
        mailbox: msg.from.as_deref(),
        helpdesk: &helpdesk.address,
        reference_prefix: &helpdesk.reference_prefix,
    };
    let ex = extract::extract(msg, &ctx);
    let incoming = confirm::Input {
        cfg,
        msg,
        mode: input.mode,
    };
    if let Some(p) = confirm::handle(conn, &incoming, &ex, message_db_id).await? {
        return Ok(Step::Done(p));
    }
    if let Some(p) = attach_to_thread(conn, msg, &ex, message_db_id).await? {
        return Ok(Step::Done(p));
    }
    // Answers one of our own messages but names no request of ours: an autoresponder that
    // does not say so. Not answered again.
    if msg
        .in_reply_to
        .iter()
        .chain(&msg.references)
        .any(|id| reply::is_our_message_id(helpdesk, id))
    {
        return Ok(unknown(Outcome::Ignored, Reason::Loop));
    }

    // Only a registered mailbox's mail is read further than this: anything else is refused by
    // the rules below, whatever it asks.
    // Read with its counts, which the rules' snapshot takes from here rather than reading the
    // mailbox again.
    let sender = match &msg.from {
        Some(from) => directory::find_mailbox_summary(conn, from).await?,
        None => None,
    };
    // A message naming another mailbox is refused whole by the rules (a mailbox changes only
    // its own membership), however many asks it makes.
    let other_mailbox = |m: &crate::accounts::Mailbox| {
        ex.fields
            .get(&Field::Mailbox)
            .is_some_and(|named| *named != m.address)
    };
    if let Some(summary) = sender.as_ref().filter(|s| !other_mailbox(&s.mailbox)) {
        let mailbox = &summary.mailbox;
        let held = |kind, reason| {
            let mut d = Decision::new(Outcome::NeedsReview, kind, Some(reason));
            d.mailbox = Some(mailbox.address.clone());
            Step::Decided(d)
        };
        // `[HD-…]` that is not one of ours (attach_to_thread found none): an answer to
        // something, not a new request — its text is about an old one.
        if let Some(reference) = &ex.thread_reference {
            return Ok(held(
                RequestKind::Unknown,
                Reason::UnknownThread(reference.clone()),
            ));
        }
        if ex.asks.is_empty()
            && let Some(why) = ex.not_asked
        {
            return Ok(not_asked(mailbox, why));
        }
        if ex.asks.len() > MAX_ASKS {
            return Ok(held(
                RequestKind::Unknown,
                Reason::TooManyAsks {
                    asks: ex.asks.len(),
                    max: MAX_ASKS,
                },
            ));
        }
        if ex.asks.len() > 1 {
            let mut decided = Vec::new();
            for ask in &ex.asks {
                let (mut d, understood) =
                    decide_ask(conn, input, &ex, Some(ask), summary, true).await?;
                // Splitting one email into several asks is the least certain reading there
                // is: an ask the rules would refuse may be one we misread, and a refusal
                // blames the site. A person looks at it instead (with the same reason).
                // Who is asking is the message's, not the split's: those refusals stand.
                let about_the_requester = matches!(
                    d.reason,
                    Some(
                        Reason::RequesterMissing
                            | Reason::RequesterNotFound(_)
                            | Reason::RequesterInactive(_)
                            | Reason::RequesterNotMember { .. }
                            | Reason::RequesterRoleTooLow { .. }
                    )
                );
                if d.outcome == Outcome::Rejected && !about_the_requester {
                    d.outcome = Outcome::NeedsReview;
                }
                decided.push((d, understood));
            }
            return Ok(Step::Asks(decided));
        }
        let (mut d, understood) =
            decide_ask(conn, input, &ex, ex.asks.first(), summary, false).await?;
        // "Add a Name: line" is only fair to a site that wrote no name at all: when the
        // starter's name was to be read from sentences, a name we could not read is ours to
        // check, not the site's to resend.
        if d.outcome == Outcome::Rejected
            && d.reason == Some(Reason::NameMissing)
            && ![Field::Name, Field::FirstName, Field::LastName]
                .iter()
                .any(|f| ex.fields.contains_key(f))
        {
            d.outcome = Outcome::NeedsReview;
        }
        return Ok(Step::Asks(vec![(d, understood)]));
    }
    let snapshot = load_snapshot(conn, msg, &ex, sender.as_ref()).await?;
    Ok(Step::Decided(settle::decide(msg, &ex, &snapshot, cfg)))
}

/// The most asks one message may make before a person handles them all.
pub const MAX_ASKS: usize = 20;

/// Mail that uses a request's words but asks nothing: never acted on, never refused. A thanks
/// or a hypothetical ("if it fails we'll be in touch") needs nobody; a question, a negation
/// ("don't take Joe off" may cancel an earlier request) or words only in quoted text are read
/// by a person.
fn not_asked(mailbox: &crate::accounts::Mailbox, why: NotAsked) -> Step {
    let (outcome, words) = match why {
        NotAsked::Thanks => (Outcome::Ignored, "a thank-you"),
        NotAsked::Hypothetical => (Outcome::Ignored, "something that may happen later"),
        NotAsked::InPassing => (Outcome::NeedsReview, "a mention in passing"),
        NotAsked::Question => (Outcome::NeedsReview, "a question"),
        NotAsked::Negated => (Outcome::NeedsReview, "something not to do"),
        NotAsked::QuotedOnly => (Outcome::NeedsReview, "only quoted or forwarded text asks"),
    };
    let mut d = Decision::new(
        outcome,
        RequestKind::Unknown,
        Some(Reason::NotAsked(words.into())),
    );
    d.mailbox = Some(mailbox.address.clone());
    Step::Decided(d)
}

/// Resolve one ask's people to accounts, then decide it under the rules. `several`: the
/// message made other asks too, so only this ask's own target is read (not every address of
/// the text).
async fn decide_ask(
    conn: &mut Conn,
    input: &Input<'_>,
    ex: &Extracted,
    ask: Option<&Ask>,
    sender: &MailboxSummary,
    several: bool,
) -> Result<(Decision, Understood), StoreError> {
    let (msg, cfg) = (input.msg, input.cfg);
    let mailbox = &sender.mailbox;
    let mut one = ex.clone();
    let mut targets = Vec::new();
    let mut requester = None;
    let kind = ask.map_or(RequestKind::Unknown, |a| a.kind);
    let held = |reason, targets: Vec<Resolution>| {
        let mut d = Decision::new(Outcome::NeedsReview, kind, Some(reason));
        d.mailbox = Some(mailbox.address.clone());
        // What was read stays with the request: the staff page's form starts from it.
        if let Some(ask) = ask {
            d.fields = policy::field_names(&ask.fields);
        }
        let understood = Understood {
            kind,
            targets,
            requester: None,
            fields: d.fields.clone(),
        };
        (d, understood)
    };
    if let Some(ask) = ask {
        one.kind = KindMatch::One(ask.kind);
        one.fields = ask.fields.clone();
        one.asks = vec![ask.clone()];
        if several {
            one.candidate_accounts.clear();
        }
        let scope = resolve::Scope::for_kind(ask.kind);
        match &ask.target {
            Some(Mention::Address(address)) => {
                one.fields.insert(Field::Account, address.clone());
                targets.push(by_address(address));
            }
            Some(Mention::Name(name)) => {
                let found = resolve::name(
                    conn,
                    name,
                    mailbox.organisation_id,
                    mailbox.id,
                    scope,
                    ask.kind,
                )
                .await?;
                match found {
                    resolve::Resolved::One { address, how } => {
                        one.fields.insert(Field::Account, address.clone());
                        one.candidate_accounts.clear();
                        targets.push(Resolution {
                            as_written: name.clone(),
                            account: Some(address),
                            how,
                            candidates: Vec::new(),
                        });
                    }
                    resolve::Resolved::Several(candidates) => {
                        let unresolved = vec![unresolved(
                            name,
                            "several accounts have that name",
                            &candidates,
                        )];
                        return Ok(held(
                            Reason::AmbiguousName {
                                name: name.clone(),
                                candidates,
                            },
                            unresolved,
                        ));
                    }
                    resolve::Resolved::None => {
                        let unresolved = vec![unresolved(name, "no account has that name", &[])];
                        return Ok(held(Reason::UnknownName(name.clone()), unresolved));
                    }
                    resolve::Resolved::TooLoose(candidate) => {
                        let unresolved = vec![unresolved(
                            name,
                            "a first name only",
                            std::slice::from_ref(&candidate),
                        )];
                        return Ok(held(
                            Reason::NameTooLoose {
                                name: name.clone(),
                                candidate,
                            },
                            unresolved,
                        ));
                    }
                }
            }
            None => {}
        }
        // An account's name carries no title ("Dr Tariq Aziz" is Tariq Aziz).
        if ask.kind == RequestKind::NewAccount {
            for field in [Field::Name, Field::FirstName] {
                if let Some(value) = one.fields.get(&field) {
                    let untitled = resolve::without_title(value);
                    if !untitled.is_empty() && untitled != *value {
                        one.fields.insert(field, untitled);
                    }
                }
            }
        }
        // A new starter whose name an account of the organisation already has: the same
        // person coming back, or a namesake? A person checks before a second account is made.
        if ask.kind == RequestKind::NewAccount
            && let Some(name) = starter_name(&one.fields)
        {
            let existing = resolve::exact_name(conn, &name, mailbox.organisation_id).await?;
            if !existing.is_empty() {
                // Named in what was understood, so the audit and the staff page's form show
                // which accounts to compare the starter with.
                let same_name = vec![unresolved(
                    &name,
                    "an account of the organisation already has that name",
                    &existing,
                )];
                return Ok(held(
                    Reason::StarterExists {
                        name,
                        accounts: existing,
                    },
                    same_name,
                ));
            }
        }
    }
    // The requester named in words: among the mailbox's members, as an address would be.
    let personal_sender = msg.sender.as_deref().is_some_and(|s| s != mailbox.address);
    let written_requester = one.fields.get(&Field::RequestedBy).cloned();
    match written_requester {
        Some(written) if !written.contains('@') => {
            match resolve::name(
                conn,
                &written,
                mailbox.organisation_id,
                mailbox.id,
                resolve::Scope::Mailbox,
                RequestKind::Unknown,
            )
            .await?
            {
                resolve::Resolved::One { address, how } => {
                    one.fields.insert(Field::RequestedBy, address.clone());
                    requester = Some(Resolution {
                        as_written: written,
                        account: Some(address),
                        how: format!("named on the Requested by line: {how}"),
                        candidates: Vec::new(),
                    });
                }
                resolve::Resolved::Several(candidates) => {
                    return Ok(held(
                        Reason::AmbiguousName {
                            name: written,
                            candidates,
                        },
                        targets,
                    ));
                }
                // Left as written: the rules refuse an unknown requester by what was written.
                resolve::Resolved::None | resolve::Resolved::TooLoose(_) => {}
            }
        }
        Some(_) => {}
        None if !personal_sender && cfg.policy.requester_from_signature => {
            if let Some(signed) = &ex.signed_by
                && let resolve::Resolved::One { address, how } = resolve::name(
                    conn,
                    signed,
                    mailbox.organisation_id,
                    mailbox.id,
                    resolve::Scope::Mailbox,
                    RequestKind::Unknown,
                )
                .await?
            {
                one.fields.insert(Field::RequestedBy, address.clone());
                requester = Some(Resolution {
                    as_written: signed.clone(),
                    account: Some(address),
                    how: format!("signed the email: {how}"),
                    candidates: Vec::new(),
                });
            }
        }
        None => {}
    }
    let snapshot = load_snapshot(conn, msg, &one, Some(sender)).await?;
    let d = settle::decide(msg, &one, &snapshot, cfg);
    let mut understood = Understood::of(&d);
    if !targets.is_empty() {
        understood.targets = targets;
    }
    if let Some(r) = requester {
        understood.requester = Some(r);
    } else if let Some(r) = &mut understood.requester
        && personal_sender
        && msg.sender.as_deref() == r.account.as_deref()
    {
        r.how = "the Sender header (sent on behalf of the mailbox)".into();
    }
    Ok((d, understood))
}

fn by_address(address: &str) -> Resolution {
    Resolution {
        as_written: address.to_owned(),
        account: Some(address.to_owned()),
        how: "named by address".into(),
        candidates: Vec::new(),
    }
}

fn unresolved(name: &str, why: &str, candidates: &[String]) -> Resolution {
    Resolution {
        as_written: name.to_owned(),
        account: None,
        how: why.to_owned(),
        candidates: candidates.to_vec(),
    }
}

/// The new starter's name as the rules will read it (`Name:`, or first and last name).
fn starter_name(fields: &std::collections::BTreeMap<Field, String>) -> Option<String> {
    match (fields.get(&Field::FirstName), fields.get(&Field::LastName)) {
        (Some(f), Some(l)) if !f.trim().is_empty() && !l.trim().is_empty() => {
            Some(format!("{} {}", f.trim(), l.trim()))
        }
        _ => fields
            .get(&Field::Name)
            .map(|n| n.trim().to_owned())
            .filter(|n| !n.is_empty()),
    }
}

/// Structural limits against hostile input; `None` when within them.
fn too_complex(msg: &Message, cfg: &Config) -> Option<String> {
    let l = &cfg.limits;
    let checks = [
        (msg.header_count, l.max_headers, "headers"),
        (msg.header_bytes, l.max_header_bytes, "bytes of header"),
        (msg.part_count, l.max_parts, "MIME parts"),
        (msg.mime_depth, l.max_mime_depth, "levels of MIME nesting"),
        (msg.text.len(), l.max_text_bytes, "bytes of text"),
    ];
    checks
        .iter()
        .find(|(n, max, _)| *n > *max as usize)
        .map(|(n, max, what)| format!("{n} {what}, limit {max}"))
}

/// Record the request, make the change or audit it, queue the answer (see `desk::settle`).
async fn record(
    conn: &mut Conn,
    input: &Input<'_>,
    decision: Decision,
    understood: Understood,
    message_db_id: i64,
    when: Answer,
) -> Result<Processed, StoreError> {
    let msg = input.msg;
    let actor = decision
        .requester
        .clone()
        .or_else(|| msg.from.clone())
        .unwrap_or_else(|| "unknown".into());
    let detail = json!({
        "kind": decision.kind,
        "reason": decision.reason.as_ref().map(Reason::code),
        "fields": decision.fields,
        "from": msg.from,
        "sender": msg.sender,
        "reply_to": msg.reply_to,
        "message_id": msg.message_id,
        "sha256": msg.sha256,
        "source": input.source,
        "trust": input.evidence,
        "understood": understood,
    });
    let mut p = settle::settle(
        conn,
        input.cfg,
        Row::New {
            message_db_id,
            prefix: &input.cfg.helpdesk.reference_prefix,
        },
        Settle {
            decision: &decision,
            original: msg,
            actor: &actor,
            event: Some(detail),
            mode: input.mode,
            answer: when,
        },
    )
    .await?;
    p.understood = Some(understood);
    Ok(p)
}

/// A reply in the thread of a known request (`[HD-000042]` in the subject) is a comment on
/// it, not a new request. Returns `None` when the subject names no known request.
async fn attach_to_thread(
    conn: &mut Conn,
    msg: &Message,
    ex: &Extracted,
    message_db_id: i64,
) -> Result<Option<Processed>, StoreError> {
    let Some(reference) = &ex.thread_reference else {
        return Ok(None);
    };
    let Some(request) = journal::find_request(conn, reference).await? else {
        return Ok(None);
    };
    let author = msg.from.clone().unwrap_or_else(|| "unknown".into());
    journal::insert_comment(conn, request.id, Some(message_db_id), &author, &ex.new_text).await?;
    journal::insert_audit(
        conn,
        &NewAuditEvent {
            actor: &author,
            on_behalf_of: request.mailbox.as_deref(),
            action: AuditAction::RequestComment.as_str(),
            subject: request.target.as_deref(),
            detail: json!({ "message_id": msg.message_id, "sha256": msg.sha256 }),
            request_id: Some(request.id),
            message_id: Some(message_db_id),
        },
    )
    .await?;
    let reason = Reason::CommentAdded(reference.clone());
    let mut p = Processed::new(
        Outcome::Ignored,
        request.kind,
        Some(reference.clone()),
        Some(&reason),
    );
    p.request_id = Some(request.id);
    Ok(Some(p))
}
