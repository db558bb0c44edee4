//! The byte stream under an IMAP session: TCP with read and write timeouts, plain or TLS.
//!
//! The timeouts sit on the TCP stream, under TLS, so they catch a silent server whatever the
//! protection. The read timeout is switched off while in IDLE (the server may rightly say
//! nothing for many minutes) and back on afterwards.

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_io_timeout::TimeoutStream;

/// TCP with timeouts; boxed so that it is `Unpin` (TLS and async-imap need that).
pub type TimedTcp = Pin<Box<TimeoutStream<TcpStream>>>;

pub enum MailStream {
    Plain(TimedTcp),
    Tls(Box<tokio_rustls::client::TlsStream<TimedTcp>>),
}

impl MailStream {
    pub fn new_plain(tcp: TcpStream, timeout: Duration) -> MailStream {
        let mut timed = TimeoutStream::new(tcp);
        timed.set_read_timeout(Some(timeout));
        timed.set_write_timeout(Some(timeout));
        MailStream::Plain(Box::pin(timed))
    }

    fn timed(&mut self) -> Pin<&mut TimeoutStream<TcpStream>> {
        match self {
            MailStream::Plain(s) => s.as_mut(),
            MailStream::Tls(s) => s.get_mut().0.as_mut(),
        }
    }

    /// `None` switches the read timeout off (IDLE).
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.timed().set_read_timeout_pinned(timeout);
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, MailStream::Tls(_))
    }
}

impl fmt::Debug for MailStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MailStream::Plain(_) => "MailStream::Plain",
            MailStream::Tls(_) => "MailStream::Tls",
        })
    }
}

impl AsyncRead for MailStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => s.as_mut().poll_read(cx, buf),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MailStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MailStream::Plain(s) => s.as_mut().poll_write(cx, buf),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => s.as_mut().poll_flush(cx),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MailStream::Plain(s) => s.as_mut().poll_shutdown(cx),
            MailStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
