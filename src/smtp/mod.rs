//! SMTP, the protocol side of sending replies: a transport of our own connections (TLS as
//! configured, password or XOAUTH2 sign-in, a small pool: [`transport`]), the reply as a mail
//! message with its threading and auto-reply headers ([`build_message`]), and `check`'s probe.
//! The outbox worker that uses them is a job kind: `jobs::reply`.

use crate::config_value::TlsMode;
use crate::helpdesk::HelpdeskConfig;
use crate::oauth::TokenSource;
use crate::smtp::config::SmtpConfig;
use crate::store::{StoreError, outbox};
use lettre::Address;
use lettre::message::header::{Header, HeaderName, HeaderValue};
use lettre::message::{Mailbox, Message, SinglePart};
use lettre::transport::smtp::client::{Certificate, CertificateStore, TlsParameters};
use std::path::{Path, PathBuf};
pub use transport::Transport;

pub mod config;
mod transport;

/// Replies one instance sends at once, each over its own pooled connection. lettre 0.11.23
/// leaves Nagle's algorithm on, so every message waits for the server's delayed ACK of its
/// body before the final `.` goes out (~40 ms on Linux; lettre#1159 sets TCP_NODELAY, merged
/// after that release): one connection manages ~20 replies a second, a few side by side hide
/// the wait. Replies to one site may then arrive slightly out of order, which mail never
/// promised anyway.
pub const SENDERS: usize = 4;
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
        crate::oauth::Auth::Xoauth2(provider) => {
            let token = match tokens {
                Some(source) => source.token().await?,
                None => TokenSource::new(provider.clone()).token().await?,
            };
            transport_with_token(cfg, Some(&token))
        }
        crate::oauth::Auth::Password => transport(cfg),
    }
}

/// With a token: `AUTH XOAUTH2` only (lettre builds `user=…\x01auth=Bearer …` from the
/// credentials), never falling back to sending the token as a PLAIN password.
pub fn transport_with_token(
    cfg: &SmtpConfig,
    token: Option<&crate::secret::Secret>,
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
            crate::oauth::Auth::Xoauth2(_) => {
                format!("logged in as {user} ({})", cfg.auth.describe())
            }
            crate::oauth::Auth::Password => format!("logged in as {user}"),
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Secret;
    use std::time::Duration;

    /// A plain-SMTP config for tests (also the reply sender's, `jobs/reply.rs`).
    pub(crate) fn smtp() -> SmtpConfig {
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
