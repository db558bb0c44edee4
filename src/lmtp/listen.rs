//! Where LMTP sessions come from: a TCP address or a Unix socket (`[lmtp] listen`), accepted
//! until shutdown, each session a task of its own, at most [`MAX_SESSIONS`] at once.
//!
//! Whoever reaches the listener hands postroom mail as if the MTA had received and checked
//! it (its `Authentication-Results` included), so a TCP peer must be in `[lmtp] allow_from`
//! (loopback by default), and the socket is made `0660`: only its owner and group.

use super::session::{self, Deliver, End, Policy};
use crate::config::{LmtpConfig, LmtpListen};
use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Sessions served at once; Postfix opens up to 20 per destination by default
/// (`default_destination_concurrency_limit`). Beyond: 421, and the MTA tries again later.
pub const MAX_SESSIONS: usize = 20;

pub enum Listener {
    Tcp {
        listener: TcpListener,
        allow_from: Vec<ipnet::IpNet>,
    },
    Unix {
        listener: UnixListener,
        path: PathBuf,
    },
}

impl Listener {
    /// Bind `[lmtp] listen`. A stale socket file left by a previous run is replaced; any
    /// other file at that path is an error, as is an address that cannot be had.
    pub async fn bind(cfg: &LmtpConfig) -> Result<Listener> {
        match &cfg.listen {
            LmtpListen::Tcp(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("[lmtp] listen = \"{addr}\": cannot listen there"))?;
                Ok(Listener::Tcp {
                    listener,
                    allow_from: cfg.allow_from.clone(),
                })
            }
            LmtpListen::Unix(path) => {
                use std::os::unix::fs::{FileTypeExt, PermissionsExt};
                match std::fs::symlink_metadata(path) {
                    // A socket someone still answers on is another postroom's (or another
                    // program's): taking it over would leave theirs deaf without a word.
                    Ok(m)
                        if m.file_type().is_socket()
                            && std::os::unix::net::UnixStream::connect(path).is_ok() =>
                    {
                        bail!(
                            "[lmtp] listen = \"{}\": another process listens on this socket",
                            path.display()
                        )
                    }
                    Ok(m) if m.file_type().is_socket() => {
                        std::fs::remove_file(path).with_context(|| {
                            format!(
                                "[lmtp] listen: cannot replace the old socket {}",
                                path.display()
                            )
                        })?;
                    }
                    Ok(_) => bail!(
                        "[lmtp] listen = \"{}\": a file that is not a socket is in the way",
                        path.display()
                    ),
                    Err(_) => {}
                }
                let listener = UnixListener::bind(path).with_context(|| {
                    format!(
                        "[lmtp] listen = \"{}\": cannot listen there",
                        path.display()
                    )
                })?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
                    .with_context(|| format!("[lmtp] listen: chmod 0660 {}", path.display()))?;
                Ok(Listener::Unix {
                    listener,
                    path: path.clone(),
                })
            }
        }
    }

    /// What it listens on, for the log (`127.0.0.1:24`, `unix:/run/postroom/lmtp.sock`).
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp { listener, .. } => listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| "tcp".into()),
            Listener::Unix { path, .. } => format!("unix:{}", path.display()),
        }
    }
}

/// Accept sessions until `shutdown`, then wait for the open ones (each answers 421 between
/// commands, or finishes the message in hand). The socket file is removed at the end.
pub async fn serve<D>(
    listener: Listener,
    policy: Arc<Policy>,
    delivery: Arc<D>,
    shutdown: CancellationToken,
) where
    D: Deliver + Send + Sync + 'static,
{
    let slots = Arc::new(Semaphore::new(MAX_SESSIONS));
    let mut sessions = JoinSet::new();
    let mut n: u64 = 0;
    loop {
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => continue,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: say so, breathe, go on.
                tracing::warn!("LMTP accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
        };
        n += 1;
        let mut stream = stream;
        if let (Listener::Tcp { allow_from, .. }, Peer::Ip(ip)) = (&listener, &peer)
            && !allowed(allow_from, *ip)
        {
            tracing::warn!(peer = %ip, "LMTP connection refused: not in [lmtp] allow_from");
            let _ = stream
                .write_all(b"554 5.7.1 not allowed to deliver here\r\n")
                .await;
            continue;
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                "LMTP: {MAX_SESSIONS} sessions already open; told the MTA to try again later"
            );
            let _ = stream
                .write_all(b"421 4.3.2 too many connections, try again later\r\n")
                .await;
            continue;
        };
        let (policy, delivery, shutdown) = (policy.clone(), delivery.clone(), shutdown.clone());
        let span = tracing::info_span!("lmtp_session", n, peer = %peer);
        sessions.spawn(
            async move {
                let _slot = slot;
                match session::serve(stream, &policy, &*delivery, &shutdown).await {
                    Ok(End::Quit | End::Closed | End::Shutdown) => {}
                    Ok(end) => tracing::info!("LMTP session ended: {end:?}"),
                    Err(e) => tracing::info!("LMTP session broken: {e}"),
                }
            }
            .instrument(span),
        );
    }
    while sessions.join_next().await.is_some() {}
    if let Listener::Unix { path, .. } = &listener {
        let _ = std::fs::remove_file(path);
    }
}

/// Either kind of stream, so one session type serves both.
enum Stream {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

enum Peer {
    Ip(std::net::IpAddr),
    Local,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Ip(ip) => write!(f, "{ip}"),
            Peer::Local => f.write_str("unix"),
        }
    }
}

async fn accept(listener: &Listener) -> std::io::Result<(Stream, Peer)> {
    match listener {
        Listener::Tcp { listener, .. } => {
            let (s, addr) = listener.accept().await?;
            // Replies are small and awaited by the MTA: no Nagle delay on them.
            let _ = s.set_nodelay(true);
            Ok((Stream::Tcp(s), Peer::Ip(addr.ip())))
        }
        Listener::Unix { listener, .. } => {
            let (s, _) = listener.accept().await?;
            Ok((Stream::Unix(s), Peer::Local))
        }
    }
}

fn allowed(allow_from: &[ipnet::IpNet], ip: std::net::IpAddr) -> bool {
    let ip = match ip {
        std::net::IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map_or(std::net::IpAddr::V6(v6), std::net::IpAddr::V4),
        v4 => v4,
    };
    allow_from.iter().any(|n| n.contains(&ip))
}

impl tokio::io::AsyncRead for Stream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Stream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lmtp::session::{Envelope, Limits, Reply};
    use std::future::Future;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Deliver for Count {
        fn deliver(&self, _: &Envelope, _: Vec<u8>) -> impl Future<Output = Reply> + Send {
            self.0.fetch_add(1, Ordering::SeqCst);
            async { Reply::new(250, "2.0.0", "HD-000001 applied") }
        }
    }

    fn policy() -> Arc<Policy> {
        Arc::new(Policy {
            hostname: "pr.test".into(),
            recipients: vec!["helpdesk@x.example".into()],
            limits: Limits::new(1000),
        })
    }

    fn config(listen: LmtpListen, allow_from: &[&str]) -> LmtpConfig {
        LmtpConfig {
            listen,
            recipients: vec!["helpdesk@x.example".into()],
            allow_from: allow_from.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    /// Send `lines` one at a time, reading a reply line after each (and the greeting first);
    /// returns the replies' first lines.
    async fn talk<S: AsyncRead + AsyncWrite + Unpin>(stream: S, lines: &[&str]) -> Vec<String> {
        let mut io = BufReader::new(stream);
        let mut replies = Vec::new();
        let read_reply = async |io: &mut BufReader<S>| {
            // A multi-line reply ends at the line with a space after the code.
            loop {
                let mut l = String::new();
                io.read_line(&mut l).await.unwrap();
                if l.len() < 4 || l.as_bytes()[3] == b' ' {
                    return l.trim_end().to_owned();
                }
            }
        };
        replies.push(read_reply(&mut io).await);
        // Between DATA's 354 and the lone dot, lines are the message: no reply to read.
        let mut in_data = false;
        for line in lines {
            io.write_all(line.as_bytes()).await.unwrap();
            let answered = if in_data { *line == ".\r\n" } else { true };
            if answered {
                replies.push(read_reply(&mut io).await);
                in_data = *line == "DATA\r\n";
            }
        }
        replies
    }

    #[tokio::test]
    async fn a_unix_socket_serves_and_is_removed_at_shutdown() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lmtp.sock");
        // A socket left by a crashed run is replaced.
        let stale = std::os::unix::net::UnixListener::bind(&path).unwrap();
        drop(stale);
        let listener = Listener::bind(&config(LmtpListen::Unix(path.clone()), &[]))
            .await
            .unwrap();
        assert_eq!(listener.describe(), format!("unix:{}", path.display()));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o660);
        let shutdown = CancellationToken::new();
        let delivery = Arc::new(Count::default());
        let task = tokio::spawn(serve(
            listener,
            policy(),
            delivery.clone(),
            shutdown.clone(),
        ));

        let stream = tokio::net::UnixStream::connect(&path).await.unwrap();
        let replies = talk(
            stream,
            &[
                "LHLO m\r\n",
                "MAIL FROM:<a@x.example>\r\n",
                "RCPT TO:<helpdesk@x.example>\r\n",
                "DATA\r\n",
                "Subject: x\r\n",
                "\r\n",
                "body\r\n",
                ".\r\n",
                "QUIT\r\n",
            ],
        )
        .await;
        assert_eq!(
            replies,
            [
                "220 pr.test LMTP postroom ready",
                "250 SIZE 1000",
                "250 2.1.0 sender ok",
                "250 2.1.5 recipient ok",
                "354 2.0.0 send the message, end with <CRLF>.<CRLF>",
                "250 2.0.0 HD-000001 applied",
                "221 2.0.0 bye"
            ]
        );
        assert_eq!(delivery.0.load(Ordering::SeqCst), 1);
        shutdown.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(!path.exists(), "the socket is removed at shutdown");
    }

    #[tokio::test]
    async fn a_socket_in_use_is_not_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lmtp.sock");
        let _live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let err = Listener::bind(&config(LmtpListen::Unix(path.clone()), &[]))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("another process listens"), "{err}");
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
    }

    #[tokio::test]
    async fn a_file_in_the_way_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("precious");
        std::fs::write(&path, "data").unwrap();
        let err = Listener::bind(&config(LmtpListen::Unix(path.clone()), &[]))
            .await
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("[lmtp] listen") && err.contains("not a socket"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    }

    #[tokio::test]
    async fn tcp_peers_outside_allow_from_are_refused() {
        let shutdown = CancellationToken::new();
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for allow in [&["10.0.0.0/8"][..], &["127.0.0.0/8"][..]] {
            let listener = Listener::bind(&config(
                LmtpListen::Tcp("127.0.0.1:0".parse().unwrap()),
                allow,
            ))
            .await
            .unwrap();
            addrs.push(listener.describe());
            let delivery = Arc::new(Count::default());
            tasks.push(tokio::spawn(serve(
                listener,
                policy(),
                delivery,
                shutdown.clone(),
            )));
        }
        let refused = tokio::net::TcpStream::connect(&addrs[0]).await.unwrap();
        assert_eq!(
            talk(refused, &[]).await,
            ["554 5.7.1 not allowed to deliver here"]
        );
        let allowed = tokio::net::TcpStream::connect(&addrs[1]).await.unwrap();
        assert_eq!(
            talk(allowed, &["NOOP\r\n", "QUIT\r\n"]).await,
            [
                "220 pr.test LMTP postroom ready",
                "250 2.0.0 ok",
                "221 2.0.0 bye"
            ]
        );
        shutdown.cancel();
        for t in tasks {
            t.await.unwrap();
        }
    }
}
