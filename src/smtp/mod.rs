//! The outbox worker: sends the replies the pipeline queued, over SMTP (lettre's client, on
//! connections of our own: [`transport`]), with retries.
//!
//! One pass ([`send_due`]): read the due rows, check the server once (connect, EHLO,
//! STARTTLS/TLS, AUTH), then claim them a handful at a time, send them over up to
//! [`SENDERS`] connections, and record the results as they come, several per statement. The
//! database is touched only in single short statements between network steps, never in a
//! transaction that waits on the server (architecture rule; see `store::outbox` for the
//! claim that keeps several instances from sending one reply twice).
//!
//! What a failure means (RFC 5321 §4.2.1, first digit of the reply code):
//! - 5yz on MAIL/RCPT/DATA: the server refused *this* message for good → `failed`, with its
//!   answer kept for the staff page; no retry.
//! - 4yz, and anything without a reply code (refused connection, timeout, TLS handshake,
//!   a dropped connection): temporary → retried with capped exponential backoff, until
//!   `smtp.give_up_after` has passed → `failed`.
//! - A failure while *connecting* (even a 5yz, e.g. 535 on AUTH or 554 in the greeting)
//!   says nothing about the messages: it is treated as temporary for every due row, and the
//!   pass sends nothing more. The same holds once a connection breaks mid-pass: the
//!   remaining rows are rescheduled without hammering a server that is down.

use crate::config::{Config, HelpdeskConfig, SmtpConfig, TlsMode};
use crate::oauth::TokenSource;
use crate::store::{self, Store, StoreError, outbox};
use futures::StreamExt;
use lettre::Address;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, SinglePart};
use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};
use rand::Rng;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
pub use transport::Transport;

mod transport;

/// Rows taken per pass; the loop comes straight back when more are due.
const PASS_LIMIT: i64 = 50;
/// Rows claimed in one statement (see [`claim_chunk`]).
const CLAIM_CHUNK: usize = 2 * SENDERS;
/// Replies one instance sends at once, each over its own pooled connection. lettre 0.11.23
/// leaves Nagle's algorithm on, so every message waits for the server's delayed ACK of its
/// body before the final `.` goes out (~40 ms on Linux; lettre#1159 sets TCP_NODELAY, merged
/// after that release): one connection manages ~20 replies a second, a few side by side hide
/// the wait. Replies to one site may then arrive slightly out of order, which mail never
/// promised anyway.
const SENDERS: usize = 4;
/// The worker looks at the outbox at least this often, even without a wake-up: only this
/// process's watcher wakes it, so with several instances this is how long a backlog queued by
/// another instance waits for this one's senders to join in (one cheap query each time).
const MAX_IDLE: Duration = Duration::from_secs(5);
/// No retry is scheduled sooner than this, whatever `smtp.retry_initial` says, so a
/// misconfigured `0s` cannot turn the worker into a busy loop against a dead server.
const MIN_RETRY: Duration = Duration::from_millis(100);
/// Backoff after a database error in the worker loop.
const DB_RETRY_INITIAL: Duration = Duration::from_secs(1);
const DB_RETRY_MAX: Duration = Duration::from_secs(60);
/// References kept in a reply (the thread root and the latest ones), so a long thread
/// cannot grow the header without bound.
const MAX_REFERENCES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("smtp.ca_file {}: {message}", path.display())]
    CaFile { path: PathBuf, message: String },
    #[error("SMTP TLS setup: {0}")]
    Tls(String),
    #[error("SMTP XOAUTH2 sign-in: {0}")]
    Token(#[from] crate::oauth::TokenError),
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SendPass {
    /// Accepted by the server.
    pub sent: u32,
    /// Temporary failure; a later attempt is scheduled.
    pub retried: u32,
    /// Refused for good, or given up after `smtp.give_up_after`.
    pub failed: u32,
    /// Claimed by another sender between reading and claiming.
    pub skipped: u32,
}

impl SendPass {
    fn handled(&self) -> u32 {
        self.sent + self.retried + self.failed
    }
}

// ---------------------------------------------------------------------------------------------
// Transport.

/// An SMTP transport built from the config: TLS as configured, the password login when
/// given, `smtp.timeout` on connecting, and a pool of up to [`SENDERS`] connections so that
/// a pass sends its replies over connections already open.
pub fn transport(cfg: &SmtpConfig) -> Result<Transport, SmtpError> {
    transport_with_token(cfg, None)
}

/// [`transport`], signed in with XOAUTH2 when `smtp.auth = "xoauth2"`: the token is taken from
/// the cache or fetched first, so a transport is built per token.
/// The token comes from `tokens` (the worker's, kept between transports) or, without one, from
/// a source of its own (`check`, one pass).
pub async fn signed_in_transport(
    cfg: &SmtpConfig,
    tokens: Option<&TokenSource>,
) -> Result<Transport, SmtpError> {
    match &cfg.auth {
        crate::config::Auth::Xoauth2(provider) => {
            let token = match tokens {
                Some(source) => source.token().await?,
                None => TokenSource::new(provider.clone()).token().await?,
            };
            transport_with_token(cfg, Some(&token))
        }
        crate::config::Auth::Password => transport(cfg),
    }
}

/// With a token: `AUTH XOAUTH2` only (lettre builds `user=…\x01auth=Bearer …` from the
/// credentials), never falling back to sending the token as a PLAIN password.
pub fn transport_with_token(
    cfg: &SmtpConfig,
    token: Option<&crate::config::Secret>,
) -> Result<Transport, SmtpError> {
    let tls = match cfg.tls {
        TlsMode::Tls | TlsMode::Starttls => Some(tls_parameters(cfg)?),
        TlsMode::None => None,
    };
    Ok(Transport::new(cfg, tls, token, SENDERS))
}

/// The web PKI roots plus, when `smtp.ca_file` is set, every certificate in that PEM file
/// (a private CA, or a test server's own).
fn tls_parameters(cfg: &SmtpConfig) -> Result<TlsParameters, SmtpError> {
    let mut builder =
        TlsParameters::builder(cfg.host.clone()).certificate_store(CertificateStore::WebpkiRoots);
    if let Some(path) = &cfg.ca_file {
        for cert in read_ca_file(path)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build_rustls()
        .map_err(|e| SmtpError::Tls(transport::error_chain(&e)))
}

fn read_ca_file(path: &Path) -> Result<Vec<Certificate>, SmtpError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let ca_error = |message: String| SmtpError::CaFile {
        path: path.to_owned(),
        message,
    };
    let ders = CertificateDer::pem_file_iter(path)
        .map_err(|e| ca_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ca_error(e.to_string()))?;
    if ders.is_empty() {
        // Without this an empty or mistyped file would silently trust nothing extra.
        return Err(ca_error("no PEM certificate in the file".into()));
    }
    ders.into_iter()
        .map(|der| {
            Certificate::from_der(der.to_vec()).map_err(|e| ca_error(transport::error_chain(&e)))
        })
        .collect()
}

/// What `postroom check` prints for SMTP: connect, EHLO, STARTTLS/TLS and AUTH as
/// configured, then NOOP; one line either way.
pub async fn check(cfg: &SmtpConfig) -> Result<String, String> {
    let tls = match cfg.tls {
        TlsMode::Tls => "implicit TLS",
        TlsMode::Starttls => "STARTTLS",
        TlsMode::None => "no TLS",
    };
    let auth = match &cfg.username {
        Some(user) => match &cfg.auth {
            crate::config::Auth::Xoauth2(_) => {
                format!("logged in as {user} ({})", cfg.auth.describe())
            }
            crate::config::Auth::Password => format!("logged in as {user}"),
        },
        None => "no login configured".to_owned(),
    };
    let at = format!("SMTP {}:{} ({tls})", cfg.host, cfg.port);
    let transport = signed_in_transport(cfg, None)
        .await
        .map_err(|e| format!("{at}: {e}"))?;
    let result = transport.test_connection().await;
    transport.shutdown().await;
    match result {
        Ok(true) => Ok(format!("{at}: connected, {tls} ok, {auth}, server answers")),
        Ok(false) => Err(format!(
            "{at}: connected, {auth}, but the server did not answer NOOP"
        )),
        Err(e) => {
            let hint = if e.is_tls() {
                " (TLS failed: check smtp.tls — `tls` is implicit TLS, usually port 465; \
                 `starttls` usually 587 — and smtp.ca_file)"
            } else if e.is_timeout() {
                " (no answer within smtp.timeout: wrong port, or TLS expected?)"
            } else if e.status().is_some_and(|c| c.to_string().starts_with("53")) {
                " (login refused: check smtp.username and the password)"
            } else {
                ""
            };
            Err(format!("{at}: {}{hint}", e.describe()))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Message.

/// Headers lettre has no type for. Each is a plain unstructured value; lettre still
/// encodes it (RFC 2047), so no value can break out of its line.
macro_rules! plain_header {
    ($(#[$doc:meta])* $type:ident, $name:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        struct $type(String);

        impl Header for $type {
            fn name() -> HeaderName {
                HeaderName::new_from_ascii_str($name)
            }
            fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
                Ok($type(s.to_owned()))
            }
            fn display(&self) -> HeaderValue {
                HeaderValue::new(Self::name(), self.0.clone())
            }
        }
    };
}

plain_header!(
    /// RFC 3834 §5: `auto-replied` marks a message sent automatically in answer to
    /// another, so well-behaved responders (vacation, other helpdesks) do not answer it.
    AutoSubmitted,
    "Auto-Submitted"
);
plain_header!(
    /// Exchange and Outlook do not honour `Auto-Submitted` for out-of-office replies; `All`
    /// suppresses out-of-office, delivery and read receipts (Microsoft's [MS-OXCMAIL]).
    XAutoResponseSuppress,
    "X-Auto-Response-Suppress"
);
plain_header!(
    /// Our own loop marker: mail carrying it came from a postroom (see `screen`/`trust`).
    XPostroomLoop,
    "X-Postroom-Loop"
);

/// A Message-ID as stored (without `<>`), checked: printable ASCII, no spaces or angle
/// brackets. Anything else would be mangled by header encoding or could forge structure.
fn clean_id(id: &str) -> Option<&str> {
    let id = id.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id);
    let ok = !id.is_empty()
        && id.len() <= 250
        && id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
    ok.then_some(id)
}

/// A subject from the database, on one line: every control character (CR and LF above
/// all) becomes a space and runs of white space collapse, so nothing can start a new
/// header line even before lettre encodes it.
fn one_line(s: &str) -> String {
    let spaced: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `References` for the reply (RFC 5322 §3.6.4): the stored IDs plus the one we answer,
/// each in `<>`, capped at [`MAX_REFERENCES`] (the first and the latest are kept).
fn references_header(references_ids: Option<&str>, in_reply_to: Option<&str>) -> Option<String> {
    let mut ids: Vec<&str> = references_ids
        .unwrap_or("")
        .split_whitespace()
        .filter_map(clean_id)
        .collect();
    if let Some(parent) = in_reply_to
        && !ids.contains(&parent)
    {
        ids.push(parent);
    }
    if ids.len() > MAX_REFERENCES {
        let tail = ids.split_off(ids.len() - (MAX_REFERENCES - 1));
        ids.truncate(1);
        ids.extend(tail);
    }
    (!ids.is_empty()).then(|| {
        ids.iter()
            .map(|id| format!("<{id}>"))
            .collect::<Vec<_>>()
            .join(" ")
    })
}

/// The reply as a lettre message. Errors are about this row's data (a bad address or
/// Message-ID) and will not go away by retrying.
pub fn build_message(
    row: &outbox::OutboxRow,
    cfg: &SmtpConfig,
    helpdesk: &HelpdeskConfig,
) -> Result<Message, String> {
    let from_address: Address = cfg
        .from
        .parse()
        .map_err(|e| format!("smtp.from `{}` is not an address: {e}", cfg.from))?;
    let to: Address = row
        .to_address
        .trim()
        .parse()
        .map_err(|e| format!("recipient {:?} is not an address: {e}", row.to_address))?;
    let message_id =
        clean_id(&row.message_id).ok_or_else(|| format!("bad Message-ID {:?}", row.message_id))?;
    // lettre's `in_reply_to`/`references` replace rather than append and take the header
    // text as is, so both are built whole here, with the angle brackets.
    let in_reply_to = row.in_reply_to.as_deref().and_then(clean_id);

    let mut builder = Message::builder()
        .from(Mailbox::new(Some(one_line(&helpdesk.name)), from_address))
        .to(Mailbox::new(None, to))
        .subject(one_line(&row.subject))
        .message_id(Some(format!("<{message_id}>")))
        .date_now()
        .header(AutoSubmitted("auto-replied".to_owned()))
        .header(XAutoResponseSuppress("All".to_owned()))
        .header(XPostroomLoop(helpdesk.address.clone()));
    if let Some(parent) = in_reply_to {
        builder = builder.in_reply_to(format!("<{parent}>"));
    }
    if let Some(references) = references_header(row.references_ids.as_deref(), in_reply_to) {
        builder = builder.references(references);
    }
    // text/plain; charset=utf-8; lettre picks 7bit, quoted-printable or base64.
    builder
        .singlepart(SinglePart::plain(row.body.clone()))
        .map_err(|e| format!("cannot build the message: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Sending.

/// Delay before attempt `attempts + 1`, `attempts` counting the one that just failed:
/// `initial`, then doubling, capped at `max`, never below `MIN_RETRY` (100 ms). Computed here
/// rather than with backon's iterator because the state lives in the `attempts` column,
/// not in a running loop; a pure function of it survives restarts and is testable.
/// "Equal jitter" (a random point in the upper half) spreads replies that failed
/// together without ever retrying much sooner than the schedule says.
pub fn retry_delay(attempts: u32, initial: Duration, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).min(32);
    let full = initial
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(max)
        .max(MIN_RETRY);
    let ms = u64::try_from(full.as_millis()).unwrap_or(u64::MAX);
    Duration::from_millis(
        rand::thread_rng()
            .gen_range(ms / 2..=ms)
            .max(u64::try_from(MIN_RETRY.as_millis()).unwrap_or(u64::MAX)),
    )
}

/// How long a sender owns a claimed row: the longest a send may take ([`send_bound`]) plus a
/// margin for recording the result (12 × `smtp.timeout` + 5 s in all). After that another
/// sender may take it. The lease runs by the database's clock (`outbox::claim_many`), so no margin
/// for clock differences between instances is needed; it is also how long a reply a killed
/// instance was sending waits before another instance sends it.
fn lease(cfg: &SmtpConfig) -> Duration {
    send_bound(cfg).saturating_add(
        cfg.timeout
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(5)),
    )
}

/// How long one send (or the probe before a pass) may take in all before it is abandoned:
/// ten steps of `smtp.timeout`, always shorter than [`lease`], so a claim never runs out
/// under a send still in progress. (lettre's async client bounds only the connect.)
fn send_bound(cfg: &SmtpConfig) -> Duration {
    cfg.timeout.saturating_mul(10)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

enum Attempt {
    Sent,
    /// Not tried: the sender is stopping; the claim is given back.
    Released,
    Failed(Failure),
}

enum Failure {
    /// Retry later (4yz, network, TLS, timeout).
    Temporary(String),
    /// Give up now (5yz on this message, or data that cannot be sent).
    Permanent(String),
}

/// One pass over the due replies with a fresh transport; see the module comment for what
/// each failure leads to.
pub async fn send_due(
    store: &Store,
    cfg: &SmtpConfig,
    helpdesk: &HelpdeskConfig,
) -> Result<SendPass, SmtpError> {
    let transport = signed_in_transport(cfg, None).await?;
    let result = pass(store, &transport, cfg, helpdesk, None).await;
    transport.shutdown().await;
    result
}

async fn pass(
    store: &Store,
    transport: &Transport,
    cfg: &SmtpConfig,
    helpdesk: &HelpdeskConfig,
    stop: Option<&CancellationToken>,
) -> Result<SendPass, SmtpError> {
    let rows = outbox::due(&mut *store.read().await?, store::now_ms(), PASS_LIMIT).await?;
    if rows.is_empty() {
        return Ok(SendPass::default());
    }

    // Connect (and log in) once before touching any row: a refusal here is about the
    // server or our credentials, not about a message (module comment).
    // Bounded here: a server that accepts and then says nothing would hold the pass for ever.
    let probe = tokio::time::timeout(send_bound(cfg), transport.test_connection()).await;
    let broken: Mutex<Option<String>> = Mutex::new(match probe {
        Ok(Ok(true)) => None,
        Ok(Ok(false)) => Some(format!("SMTP {}:{}: no answer to NOOP", cfg.host, cfg.port)),
        Ok(Err(e)) => Some(format!("SMTP {}:{}: {}", cfg.host, cfg.port, e.describe())),
        Err(_) => Some(format!(
            "SMTP {}:{}: no answer within {:?}",
            cfg.host,
            cfg.port,
            send_bound(cfg)
        )),
    });

    // Senders and the recorder side by side: a sender hands its result over and waits until
    // it is recorded before it sends the next reply (so no more replies than there are
    // senders are ever sent and not yet recorded: what a crash can make go out twice); the
    // recorder writes whatever results have gathered in one statement. On SQLite every write
    // waits its turn behind the pipeline's transactions (`Store::begin`), so one wait shared
    // by the senders instead of one each is what lets them keep up with a backlog.
    let (results, gathered) = tokio::sync::mpsc::unbounded_channel::<Report>();
    let sender = Sender {
        transport,
        cfg,
        helpdesk,
        stop,
        broken: &broken,
    };
    let sending = send_all(store, &sender, &rows, results);
    let ((sent, skipped), recorded) = tokio::join!(sending, recorder(store, cfg, gathered));
    let mut result = recorded?;
    sent?;
    result.skipped += skipped;
    Ok(result)
}

/// Keep up to [`SENDERS`] sends going, claiming the next handful of rows when the claimed
/// ones run out; each result goes to the recorder. Returns how many rows another sender
/// had claimed first.
async fn send_all(
    store: &Store,
    sender: &Sender<'_>,
    rows: &[outbox::OutboxRow],
    results: tokio::sync::mpsc::UnboundedSender<Report>,
) -> (Result<(), SmtpError>, u32) {
    let mut skipped = 0u32;
    let mut chunks = rows.chunks(CLAIM_CHUNK);
    let mut queue = std::collections::VecDeque::new();
    let mut in_flight = futures::stream::FuturesUnordered::new();
    loop {
        while in_flight.len() < SENDERS {
            if let Some(row) = queue.pop_front() {
                in_flight.push(send_and_report(sender, row, &results));
            } else if let Some(chunk) = chunks.next() {
                match claim_chunk(store, sender.cfg, sender.stop, chunk).await {
                    Ok(claimed) => {
                        let lost = chunk.len().saturating_sub(claimed.len());
                        skipped = skipped.saturating_add(u32::try_from(lost).unwrap_or(u32::MAX));
                        queue.extend(claimed);
                    }
                    Err(e) => {
                        // Let the sends in flight finish and be recorded first.
                        while in_flight.next().await.is_some() {}
                        return (Err(e), skipped);
                    }
                }
            } else {
                break;
            }
        }
        if in_flight.next().await.is_none() {
            return (Ok(()), skipped);
        }
    }
}

/// What every send of one pass shares.
struct Sender<'a> {
    transport: &'a Transport,
    cfg: &'a SmtpConfig,
    helpdesk: &'a HelpdeskConfig,
    stop: Option<&'a CancellationToken>,
    /// Set once the connection is known to be gone: the remaining rows are rescheduled
    /// instead of tried.
    broken: &'a Mutex<Option<String>>,
}

/// A sender's result, and how the recorder says it is written.
type Report = (outbox::OutboxRow, Attempt, tokio::sync::oneshot::Sender<()>);

async fn send_and_report(
    sender: &Sender<'_>,
    row: outbox::OutboxRow,
    results: &tokio::sync::mpsc::UnboundedSender<Report>,
) {
    let attempt = attempt(sender, &row).await;
    let (recorded, written) = tokio::sync::oneshot::channel();
    // The recorder only stops early on an error, which the pass then returns; then neither
    // the send nor the wait matters any more.
    if results.send((row, attempt, recorded)).is_ok() {
        let _ = written.await;
    }
}

/// Replies claimed in one statement (at most [`CLAIM_CHUNK`]). Claimed a few at a time
/// rather than the whole pass: a sender that dies strands only the handful it held, until
/// their lease runs out.
async fn claim_chunk(
    store: &Store,
    cfg: &SmtpConfig,
    stop: Option<&CancellationToken>,
    chunk: &[outbox::OutboxRow],
) -> Result<Vec<outbox::OutboxRow>, SmtpError> {
    if stop.is_some_and(CancellationToken::is_cancelled) {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = chunk.iter().map(|r| r.id).collect();
    // A single statement on its own, not `Store::begin()` (see store::outbox).
    let claimed = outbox::claim_many(
        &mut *store.write().await?,
        &ids,
        store::now_ms(),
        lease(cfg),
    )
    .await?;
    Ok(chunk
        .iter()
        .filter(|r| claimed.contains(&r.id))
        .cloned()
        .collect())
}

/// Send one claimed reply.
async fn attempt(sender: &Sender<'_>, row: &outbox::OutboxRow) -> Attempt {
    let Sender {
        transport,
        cfg,
        helpdesk,
        stop,
        broken,
    } = *sender;
    if stop.is_some_and(CancellationToken::is_cancelled) {
        return Attempt::Released;
    }
    let known_broken = broken
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    if let Some(error) = known_broken {
        return Attempt::Failed(Failure::Temporary(error));
    }
    let message = match build_message(row, cfg, helpdesk) {
        Ok(message) => message,
        Err(error) => return Attempt::Failed(Failure::Permanent(error)),
    };
    match tokio::time::timeout(send_bound(cfg), transport.send(&message)).await {
        Ok(Ok(())) => Attempt::Sent,
        // Given up before the claim runs out, so no other sender can take the row while
        // this attempt might still be going on. Whether the server took the message is
        // unknown: it is retried (at-least-once, as after a crash).
        Err(_) => {
            let text = format!(
                "SMTP {}:{}: no answer within {:?}",
                cfg.host,
                cfg.port,
                send_bound(cfg)
            );
            *broken.lock().unwrap_or_else(PoisonError::into_inner) = Some(text.clone());
            Attempt::Failed(Failure::Temporary(text))
        }
        Ok(Err(e)) => {
            let text = e.describe();
            if e.is_permanent() || e.is_refused_locally() {
                // Refused for good, or lettre refusing this message locally (e.g. a
                // non-ASCII address and no SMTPUTF8): the same next time.
                Attempt::Failed(Failure::Permanent(text))
            } else if e.is_transient() {
                Attempt::Failed(Failure::Temporary(text))
            } else {
                // No reply code about this message: the connection is gone (network, TLS,
                // timeout, or setting up a new one failed). Later rows are rescheduled, not
                // tried.
                let text = format!("SMTP {}:{}: {text}", cfg.host, cfg.port);
                *broken.lock().unwrap_or_else(PoisonError::into_inner) = Some(text.clone());
                Attempt::Failed(Failure::Temporary(text))
            }
        }
    }
}

/// Write the senders' results as they come, several at a time.
async fn recorder(
    store: &Store,
    cfg: &SmtpConfig,
    mut gathered: tokio::sync::mpsc::UnboundedReceiver<Report>,
) -> Result<SendPass, SmtpError> {
    let mut result = SendPass::default();
    while let Some(first) = gathered.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = gathered.try_recv() {
            batch.push(more);
        }
        let mut sent = Vec::new();
        let mut released = Vec::new();
        let mut failed = Vec::new();
        let mut acks = Vec::with_capacity(batch.len());
        for (row, attempt, ack) in batch {
            acks.push(ack);
            match attempt {
                Attempt::Sent => sent.push(row),
                Attempt::Released => released.push(row.id),
                Attempt::Failed(failure) => failed.push((row, failure)),
            }
        }
        if !sent.is_empty() {
            record_sent(store, &sent, &mut result).await?;
        }
        if !released.is_empty() {
            outbox::release(&mut *store.write().await?, &released).await?;
        }
        for (row, failure) in failed {
            record_failure(store, &row, failure, cfg, &mut result).await?;
        }
        for ack in acks {
            let _ = ack.send(());
        }
    }
    Ok(result)
}

/// Record replies the server accepted, however long the database takes to come back: if
/// this were given up, the claims would run out and another pass would send the replies a
/// second time. A failure that is not an outage (a bug, a constraint) is returned at once.
async fn record_sent(
    store: &Store,
    rows: &[outbox::OutboxRow],
    result: &mut SendPass,
) -> Result<(), SmtpError> {
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let mut failures: u32 = 0;
    loop {
        let done = async {
            outbox::mark_sent_many(&mut *store.write().await?, &ids, store::now_ms()).await
        }
        .await;
        match done {
            Ok(()) => break,
            Err(e) if e.is_unavailable() => {
                failures = failures.saturating_add(1);
                // Short waits: once the database is back, the record must land before the
                // claims run out and another instance takes the rows.
                let wait = Duration::from_millis(500 << failures.min(3));
                tracing::warn!(
                    outbox_ids = ?ids,
                    attempt = failures,
                    "replies sent, but the database is unavailable to record them: {e}; trying again in {:.1}s",
                    wait.as_secs_f64()
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Log lines name the row and the request, never the body: it may hold a password.
    for row in rows {
        let reference = row.reference.as_deref().unwrap_or("-");
        tracing::info!(outbox_id = row.id, reference, "reply sent");
    }
    result.sent += u32::try_from(rows.len()).unwrap_or(u32::MAX);
    Ok(())
}

/// A reply not sent: scheduled again, or marked failed.
async fn record_failure(
    store: &Store,
    row: &outbox::OutboxRow,
    failure: Failure,
    cfg: &SmtpConfig,
    result: &mut SendPass,
) -> Result<(), SmtpError> {
    let now = store::now_ms();
    let mut conn = store.write().await?;
    let reference = row.reference.as_deref().unwrap_or("-");
    // Log lines name the row and the request, never the body: it may hold a password.
    match failure {
        Failure::Permanent(error) => {
            tracing::warn!(outbox_id = row.id, reference, %error, "reply refused for good; marked failed");
            outbox::mark_failed(&mut conn, row.id, &error).await?;
            result.failed += 1;
        }
        Failure::Temporary(error) => {
            let attempts = row.attempts.saturating_add(1);
            if now >= row.attempts_since().saturating_add(ms(cfg.give_up_after)) {
                let error = format!(
                    "gave up after {attempts} attempts over {}: {error}",
                    humantime::format_duration(cfg.give_up_after)
                );
                tracing::warn!(outbox_id = row.id, reference, %error, "reply not sent; marked failed");
                outbox::mark_failed(&mut conn, row.id, &error).await?;
                result.failed += 1;
            } else {
                let delay = retry_delay(
                    u32::try_from(attempts).unwrap_or(u32::MAX),
                    cfg.retry_initial,
                    cfg.retry_max,
                );
                tracing::warn!(
                    outbox_id = row.id,
                    reference,
                    attempts,
                    retry_in_ms = ms(delay),
                    %error,
                    "reply not sent; will retry"
                );
                outbox::mark_retry(
                    &mut conn,
                    row.id,
                    attempts,
                    now.saturating_add(ms(delay)),
                    &error,
                )
                .await?;
                result.retried += 1;
            }
        }
    }
    Ok(())
}

/// The outbox worker: a pass, then sleep until woken (`wake.notify_one()` after a reply is
/// queued), until the next reply falls due (at most `MAX_IDLE`, 5 s), or until shutdown. A
/// database or setup error is logged and retried with backoff; it returns only on shutdown
/// (finishing the reply in hand first).
pub async fn run_outbox(
    store: Store,
    cfg: Arc<Config>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    run_outbox_counted(store, cfg, wake, shutdown, None).await
}

/// [`run_outbox`], with XOAUTH2 token failures counted on the daemon's `status`.
pub async fn run_outbox_counted(
    store: Store,
    cfg: Arc<Config>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
    status: Option<crate::status::Status>,
) {
    let Some(smtp) = cfg.smtp.as_ref() else {
        tracing::warn!("no [smtp] section in the config: replies stay in the outbox unsent");
        shutdown.cancelled().await;
        return;
    };
    // Built once: pooled transports are rebuilt when their token goes stale, the cache stays.
    let tokens = smtp.auth.tokens(status.as_ref());
    let mut transport: Option<Transport> = None;
    let mut errors: u32 = 0;
    while !shutdown.is_cancelled() {
        let pass = worker_pass(
            &store,
            &mut transport,
            smtp,
            tokens.as_ref(),
            &cfg.helpdesk,
            &shutdown,
        );
        let wait = match pass.await {
            Ok(wait) => {
                errors = 0;
                wait
            }
            Err(e) => {
                errors = errors.saturating_add(1);
                let wait = retry_delay(errors, DB_RETRY_INITIAL, DB_RETRY_MAX);
                tracing::error!(error = %e, retry_in_ms = ms(wait), "outbox pass failed");
                wait
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
    if let Some(t) = transport {
        t.shutdown().await;
    }
}

/// One pass of the worker, reusing its transport (and so its pooled connection); returns
/// how long to sleep.
async fn worker_pass(
    store: &Store,
    transport: &mut Option<Transport>,
    smtp: &SmtpConfig,
    tokens: Option<&TokenSource>,
    helpdesk: &HelpdeskConfig,
    shutdown: &CancellationToken,
) -> Result<Duration, SmtpError> {
    // XOAUTH2: pooled connections sign in with the token the transport was built with; once
    // that token is stale, new connections need a transport with a fresh one.
    if let Some(source) = tokens
        && source.is_stale()
        && let Some(old) = transport.take()
    {
        old.shutdown().await;
    }
    let t = match transport {
        Some(t) => t,
        None => transport.insert(self::signed_in_transport(smtp, tokens).await?),
    };
    let done = pass(store, t, smtp, helpdesk, Some(shutdown)).await?;
    if done.handled() + done.skipped > 0 {
        tracing::debug!(?done, "outbox pass");
    }
    let next = outbox::next_due_at(&mut *store.read().await?).await?;
    let wait = match next {
        Some(at) => {
            Duration::from_millis(u64::try_from(at.saturating_sub(store::now_ms())).unwrap_or(0))
        }
        None => MAX_IDLE,
    };
    // Never spin: when a pass achieved nothing, wait a moment even if something looks due.
    let floor = if done.handled() == 0 {
        Duration::from_secs(1)
    } else {
        Duration::ZERO
    };
    Ok(wait.clamp(floor, MAX_IDLE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn smtp() -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port: 25,
            tls: TlsMode::None,
            username: None,
            password: None::<Secret>,
            auth: crate::config::Auth::Password,
            ca_file: None,
            from: "helpdesk@nhs.example".into(),
            timeout: Duration::from_secs(5),
            retry_initial: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            give_up_after: Duration::from_secs(3 * 86400),
        }
    }

    fn helpdesk() -> HelpdeskConfig {
        HelpdeskConfig {
            address: "helpdesk@nhs.example".into(),
            name: "NHS Helpdesk".into(),
            reference_prefix: "HD".into(),
        }
    }

    fn row(subject: &str) -> outbox::OutboxRow {
        outbox::OutboxRow {
            id: 1,
            request_id: None,
            reference: Some("HD-000001".into()),
            to_address: "rosehill.care@nhs.example".into(),
            subject: subject.into(),
            body: "Done.\nTemporary password: Xy7-secret\n".into(),
            message_id: "HD-000001.abc@nhs.example".into(),
            in_reply_to: Some("orig@site.example".into()),
            references_ids: Some("root@site.example".into()),
            secret: Some("Xy7-secret".into()),
            attempts: 0,
            created_at: 0,
            retried_at: None,
        }
    }

    fn headers(m: &Message) -> String {
        let raw = String::from_utf8_lossy(&m.formatted()).into_owned();
        raw.split("\r\n\r\n").next().unwrap_or_default().to_owned()
    }

    #[test]
    fn reply_carries_threading_and_auto_reply_headers() {
        let m = build_message(&row("Re: leaver [HD-000001]"), &smtp(), &helpdesk()).unwrap();
        let h = headers(&m);
        for want in [
            "From: \"NHS Helpdesk\" <helpdesk@nhs.example>",
            "To: rosehill.care@nhs.example",
            "Subject: Re: leaver [HD-000001]",
            "Message-ID: <HD-000001.abc@nhs.example>",
            "In-Reply-To: <orig@site.example>",
            "References: <root@site.example> <orig@site.example>",
            "Auto-Submitted: auto-replied",
            "X-Auto-Response-Suppress: All",
            "X-Postroom-Loop: helpdesk@nhs.example",
            "Content-Type: text/plain; charset=utf-8",
            "Date: ",
        ] {
            assert!(h.contains(want), "missing {want:?} in\n{h}");
        }
        assert_eq!(
            m.envelope().from().map(|a| a.to_string()).as_deref(),
            Some("helpdesk@nhs.example")
        );
    }

    #[test]
    fn crlf_in_subject_cannot_add_a_header() {
        let m = build_message(&row("Hello\r\nBcc: evil@x"), &smtp(), &helpdesk()).unwrap();
        let h = headers(&m);
        assert!(
            !h.lines()
                .any(|l| l.to_ascii_lowercase().starts_with("bcc:")),
            "{h}"
        );
        assert!(h.contains("Subject: Hello Bcc: evil@x"), "{h}");
        assert_eq!(m.envelope().to().len(), 1);
    }

    #[test]
    fn bad_ids_are_dropped_and_bad_recipients_refused() {
        let mut r = row("x");
        r.in_reply_to = Some("a b\r\nBcc: x@y".into());
        r.references_ids = Some("<ok@x> bad<id> ok2@y".into());
        let h = headers(&build_message(&r, &smtp(), &helpdesk()).unwrap());
        assert!(!h.contains("In-Reply-To"), "{h}");
        assert!(h.contains("References: <ok@x> <ok2@y>"), "{h}");

        r.to_address = "someone@x\r\nBcc: evil@x".into();
        assert!(build_message(&r, &smtp(), &helpdesk()).is_err());
    }

    #[test]
    fn long_reference_chains_keep_root_and_latest() {
        let ids: Vec<String> = (0..30).map(|i| format!("m{i}@x")).collect();
        let refs = references_header(Some(&ids.join(" ")), Some("parent@x")).unwrap();
        let got: Vec<&str> = refs.split(' ').collect();
        assert_eq!(got.len(), MAX_REFERENCES);
        assert_eq!(got[0], "<m0@x>");
        assert_eq!(got[MAX_REFERENCES - 1], "<parent@x>");
        assert_eq!(got[MAX_REFERENCES - 2], "<m29@x>");
    }

    #[test]
    fn retry_delay_doubles_with_jitter_and_is_capped() {
        let initial = Duration::from_secs(30);
        let max = Duration::from_secs(600);
        for _ in 0..50 {
            let d1 = retry_delay(1, initial, max);
            assert!(d1 >= Duration::from_secs(15) && d1 <= initial, "{d1:?}");
            let d3 = retry_delay(3, initial, max);
            assert!(
                d3 >= Duration::from_secs(60) && d3 <= Duration::from_secs(120),
                "{d3:?}"
            );
            let d40 = retry_delay(40, initial, max);
            assert!(d40 >= max / 2 && d40 <= max, "{d40:?}");
            assert!(retry_delay(1, Duration::ZERO, max) >= MIN_RETRY);
        }
    }

    #[test]
    fn ca_file_without_certificates_is_an_error() {
        let dir = std::env::temp_dir().join(format!("postroom-smtp-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let mut cfg = smtp();
        cfg.tls = TlsMode::Starttls;
        cfg.ca_file = Some(path);
        let Err(err) = transport(&cfg) else {
            panic!("an empty ca_file was accepted")
        };
        let err = err.to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn b64(bytes: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in bytes.chunks(3) {
            let n = (c[0] as u32) << 16
                | (*c.get(1).unwrap_or(&0) as u32) << 8
                | *c.get(2).unwrap_or(&0) as u32;
            for i in 0..4 {
                if i <= c.len() {
                    out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    /// SMTP XOAUTH2 cannot be tried against the test Postfix (no SASL there): a scripted
    /// server that offers PLAIN and XOAUTH2 shows that the token goes out as XOAUTH2 (never as
    /// a PLAIN password) in the SASL shape of the field notes.
    #[tokio::test]
    async fn xoauth2_credentials_reach_the_server_as_xoauth2() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (r, mut w) = sock.into_split();
            let mut lines = BufReader::new(r).lines();
            w.write_all(b"220 test ESMTP\r\n").await.unwrap();
            let mut auth = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply: &[u8] = if line.starts_with("EHLO") {
                    b"250-test\r\n250 AUTH PLAIN LOGIN XOAUTH2\r\n"
                } else if line.starts_with("AUTH") {
                    auth = line;
                    b"235 ok\r\n"
                } else if line.starts_with("QUIT") {
                    w.write_all(b"221 bye\r\n").await.unwrap();
                    break;
                } else {
                    b"250 ok\r\n"
                };
                w.write_all(reply).await.unwrap();
            }
            auth
        });
        let mut cfg = smtp();
        cfg.port = port;
        cfg.username = Some("helpdesk@nhs.example".into());
        cfg.auth =
            crate::config::Auth::Xoauth2(crate::oauth::Provider::Command("echo tok-123".into()));
        let ok = check(&cfg).await.unwrap();
        assert!(ok.contains("xoauth2, token from token_command"), "{ok}");
        let auth = server.await.unwrap();
        let sasl = crate::oauth::xoauth2_string("helpdesk@nhs.example", "tok-123");
        assert_eq!(auth, format!("AUTH XOAUTH2 {}", b64(sasl.as_bytes())));
    }
}
