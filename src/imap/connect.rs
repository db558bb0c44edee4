//! Reach the server and log in: TCP (bounded), then TLS from the first byte, STARTTLS, or
//! (loopback tests only) nothing; the greeting; `LOGIN`. Every step has a timeout, every
//! failure one line that names the step.

use super::stream::MailStream;
use super::{Client, ImapError, Session, bounded};
use crate::config_value::TlsMode;
use crate::imap::config::ImapConfig;
use crate::oauth::Auth;
use crate::oauth::TokenSource;
use async_imap::imap_proto::{Response, Status};
use rustls::pki_types::ServerName;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How TLS is set up, built once from the config so that a bad `ca_file` stops `run` at
/// start instead of failing every reconnect.
#[derive(Clone)]
pub struct Tls {
    connector: Option<TlsConnector>,
}

impl Tls {
    pub fn from_config(imap: &ImapConfig) -> Result<Tls, ImapError> {
        if imap.tls == TlsMode::None {
            return Ok(Tls { connector: None });
        }
        let config = crate::tls_client::config(imap.ca_file.as_deref(), "imap.ca_file")
            .map_err(ImapError::TlsSetup)?;
        Ok(Tls {
            connector: Some(TlsConnector::from(Arc::new(config))),
        })
    }
}

/// Connect and read the greeting; with `tls = "starttls"` also upgrade. Not logged in yet.
pub async fn open(imap: &ImapConfig, tls: &Tls) -> Result<Client, ImapError> {
    let addr = format!("{}:{}", imap.host, imap.port);
    let tcp = match tokio::time::timeout(
        imap.timeout,
        TcpStream::connect((imap.host.as_str(), imap.port)),
    )
    .await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(error)) => return Err(ImapError::Connect { addr, error }),
        Err(_) => {
            return Err(ImapError::Timeout {
                what: format!("TCP connect to {addr}"),
                after: imap.timeout,
            });
        }
    };
    // IMAP is request/response: small commands must not wait for Nagle.
    let _ = tcp.set_nodelay(true);
    let plain = MailStream::new_plain(tcp, imap.timeout);

    match (imap.tls, &tls.connector) {
        (TlsMode::Tls, Some(connector)) => {
            let stream = handshake(plain, connector, imap).await?;
            let mut client = Client::new(stream);
            greeting(&mut client, imap).await?;
            Ok(client)
        }
        (TlsMode::Starttls, Some(connector)) => {
            let mut client = Client::new(plain);
            greeting(&mut client, imap).await?;
            match tokio::time::timeout(
                imap.timeout,
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(error)) => {
                    return Err(ImapError::Starttls {
                        host: imap.host.clone(),
                        error,
                    });
                }
                Err(_) => {
                    return Err(ImapError::Timeout {
                        what: "STARTTLS".into(),
                        after: imap.timeout,
                    });
                }
            }
            // Whatever the server sent after its STARTTLS answer is dropped with the plain
            // client (RFC 3207-style response injection); the TLS session starts clean and
            // has no greeting of its own.
            let stream = handshake(client.into_inner(), connector, imap).await?;
            Ok(Client::new(stream))
        }
        (TlsMode::None, _) => {
            let mut client = Client::new(plain);
            greeting(&mut client, imap).await?;
            Ok(client)
        }
        (_, None) => Err(ImapError::TlsSetup("TLS requested but not set up".into())),
    }
}

async fn handshake(
    plain: MailStream,
    connector: &TlsConnector,
    imap: &ImapConfig,
) -> Result<MailStream, ImapError> {
    let MailStream::Plain(tcp) = plain else {
        return Err(ImapError::TlsSetup("TLS over TLS".into()));
    };
    let name = ServerName::try_from(imap.host.clone())
        .map_err(|e| ImapError::TlsSetup(format!("imap.host `{}`: {e}", imap.host)))?;
    match tokio::time::timeout(imap.timeout, connector.connect(name, tcp)).await {
        Ok(Ok(tls)) => Ok(MailStream::Tls(Box::new(tls))),
        Ok(Err(error)) => Err(ImapError::Tls {
            host: imap.host.clone(),
            error,
        }),
        Err(_) => Err(ImapError::Timeout {
            what: format!("TLS handshake with {}", imap.host),
            after: imap.timeout,
        }),
    }
}

/// async-imap does not read the greeting itself (field notes): read it before anything else.
async fn greeting(client: &mut Client, imap: &ImapConfig) -> Result<(), ImapError> {
    let response = match tokio::time::timeout(imap.timeout, client.read_response()).await {
        Ok(Ok(Some(r))) => r,
        Ok(Ok(None)) => {
            return Err(ImapError::NoGreeting {
                host: imap.host.clone(),
            });
        }
        Ok(Err(e)) => {
            return Err(ImapError::Command {
                what: "reading the greeting".into(),
                error: e.into(),
            });
        }
        Err(_) => {
            return Err(ImapError::Timeout {
                what: "greeting".into(),
                after: imap.timeout,
            });
        }
    };
    match response.parsed() {
        Response::Data {
            status: Status::Ok | Status::PreAuth,
            ..
        } => Ok(()),
        Response::Data { outcome, .. } => Err(ImapError::Refused {
            host: imap.host.clone(),
            greeting: outcome.information.as_deref().unwrap_or("BYE").to_owned(),
        }),
        other => Err(ImapError::Protocol(format!(
            "{} sent no IMAP greeting ({:?})",
            imap.host,
            short(&format!("{other:?}"))
        ))),
    }
}

/// `LOGIN`, or `AUTHENTICATE XOAUTH2` with `auth = "xoauth2"`, the token from `tokens` (the
/// watcher's, which keeps it between sessions) or, without one (`check`), from a source of
/// its own. The password or token goes to the server and nowhere else (not into errors or
/// logs).
pub async fn login(
    client: Client,
    imap: &ImapConfig,
    tokens: Option<&TokenSource>,
) -> Result<Session, ImapError> {
    if let Auth::Xoauth2(provider) = &imap.auth {
        let own;
        let source = match tokens {
            Some(source) => source,
            None => {
                own = TokenSource::new(provider.clone());
                &own
            }
        };
        return xoauth2(client, imap, source).await;
    }
    match tokio::time::timeout(
        imap.timeout,
        client.login(&imap.username, imap.password.expose()),
    )
    .await
    {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((error, _client))) => Err(ImapError::Login {
            user: imap.username.clone(),
            error: scrub(error, imap.password.expose()),
        }),
        Err(_) => Err(ImapError::Timeout {
            what: "LOGIN".into(),
            after: imap.timeout,
        }),
    }
}

/// SASL XOAUTH2: the token comes from the cache or the provider; a refused token is dropped
/// from the cache so that the next reconnect asks the provider again (it may be revoked).
async fn xoauth2(
    client: Client,
    imap: &ImapConfig,
    source: &TokenSource,
) -> Result<Session, ImapError> {
    let token = source
        .token()
        .await
        .map_err(|e| ImapError::Config(format!("XOAUTH2 sign-in as {}: {e}", imap.username)))?;
    let sasl = Xoauth2 {
        sasl: Some(crate::oauth::xoauth2_string(&imap.username, token.expose())),
    };
    match tokio::time::timeout(imap.timeout, client.authenticate("XOAUTH2", sasl)).await {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((error, _client))) => {
            source.invalidate().await;
            Err(ImapError::Login {
                user: format!("{} (XOAUTH2, {})", imap.username, source.describe()),
                error: scrub(error, token.expose()),
            })
        }
        Err(_) => Err(ImapError::Timeout {
            what: "AUTHENTICATE XOAUTH2".into(),
            after: imap.timeout,
        }),
    }
}

/// Answers the first challenge with the SASL string; a second challenge is the server's JSON
/// error (RFC 7628 §3.2.2), answered with an empty line to get its clean `NO`.
struct Xoauth2 {
    sasl: Option<String>,
}

impl async_imap::Authenticator for Xoauth2 {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        self.sasl.take().unwrap_or_default()
    }
}

/// Connect, (STARTTLS), log in.
pub async fn connect(
    imap: &ImapConfig,
    tls: &Tls,
    tokens: Option<&TokenSource>,
) -> Result<Session, ImapError> {
    let client = open(imap, tls).await?;
    login(client, imap, tokens).await
}

/// Log out politely, but never wait long for it: the session ends either way.
pub async fn logout(mut session: Session, imap: &ImapConfig) {
    let after = imap.timeout.min(std::time::Duration::from_secs(2));
    let _ = bounded("LOGOUT", after, session.logout()).await;
}

/// A parse error could echo the bytes we sent: make sure the password is not among them.
fn scrub(e: async_imap::error::Error, password: &str) -> async_imap::error::Error {
    let text = e.to_string();
    if !password.is_empty() && text.contains(password) {
        return async_imap::error::Error::No(
            "(server answer withheld: it contained the password)".into(),
        );
    }
    e
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}
