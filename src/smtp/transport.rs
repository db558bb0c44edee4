//! SMTP connections for the outbox: lettre's client protocol (`AsyncSmtpConnection`) over
//! sockets postroom opens itself, with `TCP_NODELAY` on, and a small pool of them.
//!
//! Why not lettre's `AsyncSmtpTransport`: in lettre 0.11.23 it opens its own sockets and
//! leaves Nagle's algorithm on. lettre writes a message's body and its final `\r\n.\r\n` in
//! two writes, so the second waits for the server's delayed ACK of the first (~40 ms on
//! Linux): every reply cost 40 ms of doing nothing, one connection managed ~20 replies a
//! second. lettre#1159 sets `TCP_NODELAY`, but is not in a release yet; once it is, this
//! module can go back to lettre's transport.
//!
//! What each failure means is kept apart here, because the outbox decides on it: a refusal
//! while *connecting* (greeting, EHLO, STARTTLS, AUTH) is about the server or our
//! credentials ([`Error::Connect`]), one after `MAIL FROM` is about this message
//! ([`Error::Send`]).

use crate::config_value::TlsMode;
use crate::oauth::Auth;
use crate::secret::Secret;
use crate::smtp::config::SmtpConfig;
use lettre::Message;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::Code;
use std::error::Error as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// A pooled connection idle longer than this is closed rather than reused: servers drop
/// idle clients after a few minutes (RFC 5321 §4.5.3.2.7 asks for at least 5), and a
/// connection the server has already closed would fail the next reply.
const MAX_IDLE: Duration = Duration::from_secs(30);

/// How the connection is secured.
enum Security {
    None,
    /// STARTTLS, required: a server (or a man in the middle) that hides it gets no
    /// password and no reply in clear text.
    Starttls(TlsParameters),
    /// TLS from the first byte (usually port 465).
    Implicit(TlsParameters),
}

/// A failed SMTP step.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// TCP connect failed or did not finish within `smtp.timeout`.
    #[error("Connection error: {0}")]
    Tcp(std::io::Error),
    /// Greeting, EHLO, STARTTLS, TLS or AUTH failed: about the server or our credentials,
    /// never about a message.
    #[error("{0}")]
    Connect(lettre::transport::smtp::Error),
    /// A step of setting up the connection had no answer within `smtp.timeout` (lettre's
    /// client bounds only the TCP connect).
    #[error("no answer to {0} within {1:?}")]
    NoAnswer(&'static str, Duration),
    /// The server asked for STARTTLS does not offer it.
    #[error("the server does not offer STARTTLS (smtp.tls = \"starttls\")")]
    NoStarttls,
    /// MAIL, RCPT, DATA or the message itself.
    #[error("{0}")]
    Send(lettre::transport::smtp::Error),
}

impl Error {
    fn lettre(&self) -> Option<&lettre::transport::smtp::Error> {
        match self {
            Error::Connect(e) | Error::Send(e) => Some(e),
            Error::Tcp(_) | Error::NoAnswer(..) | Error::NoStarttls => None,
        }
    }

    /// The server's reply code, if it answered with one.
    pub fn status(&self) -> Option<Code> {
        self.lettre().and_then(|e| e.status())
    }

    /// The server refused this message for good (5yz after `MAIL FROM`).
    pub fn is_permanent(&self) -> bool {
        matches!(self, Error::Send(e) if e.is_permanent())
    }

    /// The server refused this message for now (4yz after `MAIL FROM`).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Send(e) if e.is_transient())
    }

    /// lettre refused this message before sending it (e.g. a non-ASCII address and no
    /// SMTPUTF8 on the server): the same will happen next time.
    pub fn is_refused_locally(&self) -> bool {
        matches!(self, Error::Send(e) if e.is_client())
    }

    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Tcp(e) => e.kind() == std::io::ErrorKind::TimedOut,
            Error::NoAnswer(..) => true,
            other => other.lettre().is_some_and(|e| e.is_timeout()),
        }
    }

    /// A TLS handshake or certificate failure. lettre reports a failed handshake as a
    /// connection error around an `io::Error` that wraps the rustls error (only its own TLS
    /// setup errors are `is_tls()`): look inside.
    pub fn is_tls(&self) -> bool {
        let Some(e) = self.lettre() else {
            return false;
        };
        if e.is_tls() {
            return true;
        }
        let mut source = e.source();
        while let Some(s) = source {
            if s.is::<rustls::Error>()
                || s.downcast_ref::<std::io::Error>()
                    .and_then(|io| io.get_ref())
                    .is_some_and(|inner| inner.is::<rustls::Error>())
            {
                return true;
            }
            source = s.source();
        }
        false
    }

    /// One line: for a server's refusal its code and text (what the staff page shows), else
    /// the error and its causes.
    pub fn describe(&self) -> String {
        let Some(e) = self.lettre() else {
            return self.to_string();
        };
        if let Some(code) = e.status() {
            let text = e.source().map(|s| s.to_string()).unwrap_or_default();
            return format!("{code} {text}").trim_end().to_owned();
        }
        error_chain(e)
    }
}

/// A lettre error and its causes, on one line.
pub(super) fn error_chain(e: &lettre::transport::smtp::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    // lettre nests its connection errors ("Connection error: Connection error: …").
    out.replace("Connection error: Connection error: ", "Connection error: ")
}

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

/// Connections to the configured server, made on demand and kept (up to `max_idle`) for
/// the next reply.
pub struct Transport {
    host: String,
    port: u16,
    timeout: Duration,
    security: Security,
    login: Option<(Credentials, &'static [Mechanism])>,
    hello: ClientId,
    max_idle: usize,
    idle: Mutex<Vec<Idle>>,
}

impl Transport {
    /// TLS as configured; a login with the password, or with `token` as `AUTH XOAUTH2`
    /// only (never the token as a PLAIN password).
    pub fn new(
        cfg: &SmtpConfig,
        security: Option<TlsParameters>,
        token: Option<&Secret>,
        max_idle: usize,
    ) -> Transport {
        let security = match (cfg.tls, security) {
            (TlsMode::Tls, Some(p)) => Security::Implicit(p),
            (TlsMode::Starttls, Some(p)) => Security::Starttls(p),
            _ => Security::None,
        };
        let login = match (&cfg.username, &cfg.auth, token, &cfg.password) {
            (Some(user), Auth::Xoauth2(_), Some(token), _) => Some((
                Credentials::new(user.clone(), token.expose().to_owned()),
                &[Mechanism::Xoauth2][..],
            )),
            (Some(user), Auth::Password, _, Some(password)) => Some((
                Credentials::new(user.clone(), password.expose().to_owned()),
                DEFAULT_MECHANISMS,
            )),
            _ => None,
        };
        Transport {
            host: cfg.host.clone(),
            port: cfg.port,
            timeout: cfg.timeout,
            security,
            login,
            hello: ClientId::default(),
            max_idle,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A pooled connection that has not been idle too long, or a new one.
    async fn take(&self) -> Result<AsyncSmtpConnection, Error> {
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            let mut found = None;
            while let Some(c) = idle.pop() {
                if c.since.elapsed() < MAX_IDLE && !c.conn.has_broken() {
                    found = Some(c.conn);
                    break;
                }
                // Too old: dropped without QUIT (the server may be gone already).
            }
            found
        };
        match reused {
            Some(conn) => Ok(conn),
            None => self.connect().await,
        }
    }

    fn give_back(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < self.max_idle {
            idle.push(Idle {
                conn,
                since: Instant::now(),
            });
        }
    }

    /// TCP (bounded by `smtp.timeout`, `TCP_NODELAY` on), TLS or STARTTLS as configured,
    /// EHLO, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Error> {
        let tcp = match tokio::time::timeout(
            self.timeout,
            TcpStream::connect((self.host.as_str(), self.port)),
        )
        .await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(Error::Tcp(e)),
            Err(_) => {
                return Err(Error::Tcp(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no connection within {:?}", self.timeout),
                )));
            }
        };
        tcp.set_nodelay(true).map_err(Error::Tcp)?;
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit(params) => Box::new(
                self.bounded("the TLS handshake", implicit_tls(tcp, params.clone()))
                    .await??,
            ),
            Security::None | Security::Starttls(_) => Box::new(tcp),
        };
        let mut conn = self
            .bounded(
                "the greeting and EHLO",
                AsyncSmtpConnection::connect_with_transport(stream, &self.hello),
            )
            .await?
            .map_err(Error::Connect)?;
        if let Security::Starttls(params) = &self.security {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(Error::NoStarttls);
            }
            self.bounded("STARTTLS", conn.starttls(params.clone(), &self.hello))
                .await?
                .map_err(Error::Connect)?;
        }
        if let Some((credentials, mechanisms)) = &self.login {
            self.bounded("AUTH", conn.auth(mechanisms, credentials))
                .await?
                .map_err(Error::Connect)?;
        }
        Ok(conn)
    }

    async fn bounded<T>(
        &self,
        step: &'static str,
        f: impl std::future::Future<Output = T>,
    ) -> Result<T, Error> {
        tokio::time::timeout(self.timeout, f)
            .await
            .map_err(|_| Error::NoAnswer(step, self.timeout))
    }

    /// Send one message over a pooled (or new) connection. A connection that failed is
    /// dropped, never reused. Cancelling the future drops the connection in use with it.
    pub async fn send(&self, message: &Message) -> Result<(), Error> {
        let mut conn = self.take().await?;
        let formatted = message.formatted();
        conn.send(message.envelope(), &formatted)
            .await
            .map_err(Error::Send)?;
        self.give_back(conn);
        Ok(())
    }

    /// Connect (or take a pooled connection) and ask NOOP: `Ok(false)` when the server does
    /// not answer it.
    pub async fn test_connection(&self) -> Result<bool, Error> {
        let mut conn = self.take().await?;
        if conn.test_connected().await {
            self.give_back(conn);
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// QUIT every pooled connection.
    pub async fn shutdown(&self) {
        let idle: Vec<Idle> =
            std::mem::take(&mut *self.idle.lock().unwrap_or_else(PoisonError::into_inner));
        for mut c in idle {
            let _ = tokio::time::timeout(self.timeout, c.conn.quit()).await;
        }
    }
}

/// TLS from the first byte, over postroom's own socket. lettre's connection reads the
/// greeting as soon as it has a stream, so the stream handed over must already be
/// encrypted: lettre's own TLS upgrade (same `TlsParameters`, so the same trust as STARTTLS)
/// on its stream type, adapted back to tokio's traits.
#[allow(deprecated)] // AsyncNetworkStream: "not meant to be public", the one way to reuse lettre's TLS
async fn implicit_tls(tcp: TcpStream, params: TlsParameters) -> Result<TlsStream, Error> {
    use lettre::transport::smtp::client::AsyncNetworkStream;
    use tokio_util::compat::FuturesAsyncReadCompatExt;
    let peer = tcp.peer_addr().map_err(Error::Tcp)?;
    let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
    stream.upgrade_tls(params).await.map_err(Error::Connect)?;
    Ok(TlsStream {
        inner: stream.compat(),
        peer,
    })
}

/// lettre's TLS stream, as the tokio stream `connect_with_transport` takes.
#[allow(deprecated)]
#[derive(Debug)]
struct TlsStream {
    inner: tokio_util::compat::Compat<lettre::transport::smtp::client::AsyncNetworkStream>,
    peer: std::net::SocketAddr,
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        Ok(self.peer)
    }
}

impl tokio::io::AsyncRead for TlsStream {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsStream {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    fn cfg(port: u16, tls: TlsMode) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls,
            username: None,
            password: None,
            auth: Auth::Password,
            ca_file: None,
            from: "helpdesk@nhs.example".into(),
            timeout: Duration::from_secs(2),
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_secs(1),
            give_up_after: Duration::from_secs(60),
        }
    }

    fn message() -> Message {
        Message::builder()
            .from("helpdesk@nhs.example".parse().unwrap())
            .to("site@nhs.example".parse().unwrap())
            .subject("Re: test")
            .body("Done.".to_owned())
            .unwrap()
    }

    /// A scripted server: `ehlo` is its answer to EHLO, `auth` to AUTH; it accepts mail.
    /// Returns its port and, when it ends, the connections it took and the commands it got.
    async fn server(
        ehlo: &'static str,
        auth: &'static str,
    ) -> (u16, tokio::task::JoinHandle<(usize, Vec<String>)>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let mut connections = 0;
            let mut seen = Vec::new();
            while let Ok(Ok((sock, _))) =
                tokio::time::timeout(Duration::from_millis(500), listener.accept()).await
            {
                connections += 1;
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 test ESMTP\r\n").await.unwrap();
                let mut in_data = false;
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        }
                        continue;
                    }
                    seen.push(line.split_whitespace().next().unwrap_or("").to_owned());
                    let reply = if line.starts_with("EHLO") {
                        ehlo
                    } else if line.starts_with("AUTH") {
                        auth
                    } else if line.starts_with("DATA") {
                        in_data = true;
                        "354 go on\r\n"
                    } else if line.starts_with("QUIT") {
                        w.write_all(b"221 bye\r\n").await.unwrap();
                        break;
                    } else {
                        "250 ok\r\n"
                    };
                    w.write_all(reply.as_bytes()).await.unwrap();
                }
            }
            (connections, seen)
        });
        (port, task)
    }

    #[tokio::test]
    async fn replies_share_a_pooled_connection() {
        let (port, server) = server("250 test\r\n", "").await;
        let t = Transport::new(&cfg(port, TlsMode::None), None, None, 4);
        for _ in 0..3 {
            t.send(&message()).await.unwrap();
        }
        t.shutdown().await;
        let (connections, seen) = server.await.unwrap();
        assert_eq!(connections, 1, "{seen:?}");
        assert_eq!(seen.iter().filter(|c| *c == "MAIL").count(), 3, "{seen:?}");
    }

    /// `tls = "starttls"` is required: a server that does not offer it gets no message.
    #[tokio::test]
    async fn a_server_without_starttls_gets_nothing() {
        let (port, server) = server("250 test\r\n", "").await;
        let params = TlsParameters::new("127.0.0.1".into()).unwrap();
        let t = Transport::new(&cfg(port, TlsMode::Starttls), Some(params), None, 4);
        let err = t.send(&message()).await.unwrap_err();
        assert!(matches!(err, Error::NoStarttls), "{err:?}");
        assert!(!err.is_permanent() && !err.is_transient());
        let (_, seen) = server.await.unwrap();
        assert!(!seen.iter().any(|c| c == "MAIL"), "{seen:?}");
    }

    /// A refused login is about our credentials, not the message: never a permanent
    /// refusal of the reply being sent.
    #[tokio::test]
    async fn a_refused_login_is_not_a_refused_message() {
        let (port, server) = server(
            "250-test\r\n250 AUTH PLAIN LOGIN\r\n",
            "535 5.7.8 authentication failed\r\n",
        )
        .await;
        let mut c = cfg(port, TlsMode::None);
        c.username = Some("helpdesk".into());
        c.password = Some(Secret::new("wrong"));
        let t = Transport::new(&c, None, None, 4);
        let err = t.send(&message()).await.unwrap_err();
        assert!(matches!(err, Error::Connect(_)), "{err:?}");
        assert_eq!(err.status().map(|c| c.to_string()), Some("535".into()));
        assert!(!err.is_permanent(), "{err:?}");
        let (_, seen) = server.await.unwrap();
        assert!(!seen.iter().any(|c| c == "MAIL"), "{seen:?}");
    }

    /// A server that accepts the connection and says nothing: bounded by `smtp.timeout`.
    #[tokio::test]
    async fn a_silent_server_is_a_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(sock);
        });
        let mut c = cfg(port, TlsMode::None);
        c.timeout = Duration::from_millis(300);
        let t = Transport::new(&c, None, None, 4);
        let err = t.test_connection().await.unwrap_err();
        assert!(matches!(err, Error::NoAnswer(..)), "{err:?}");
        assert!(err.is_timeout());
        hold.abort();
    }
}
