//! One LMTP session (RFC 2033), on any byte stream: the greeting, then commands until QUIT,
//! an idle timeout, a shutdown or the peer going away.
//!
//! LMTP is SMTP (RFC 5321) with `LHLO` for `EHLO` and, after the message, one reply per
//! accepted recipient instead of one for the transaction (RFC 2033 §4.2): that reply is the
//! delivery's verdict, so the MTA keeps and retries whatever is not answered `250`.
//!
//! Bounds, so a peer can cost little: a command line is at most [`Limits::max_line`] bytes
//! (500 beyond, the rest of the line read and dropped), a message at most
//! [`Limits::max_message_bytes`] after dot-unstuffing (552 beyond: the rest is read and
//! dropped, never kept), [`Limits::max_recipients`] recipients (452 beyond, RFC 5321
//! §4.5.3.1.8), [`Limits::max_errors`] bad commands before the session is closed, and every
//! read waits at most [`Limits::idle`] (421, RFC 5321 §4.5.3.2's 5 minutes by default).

use std::future::Future;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

/// What a session tolerates.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest message taken, counted after dot-unstuffing (`[imap] max_message_bytes`).
    pub max_message_bytes: u64,
    /// The longest command line, CRLF included. RFC 5321 §4.5.3.1.4 says 512; extensions'
    /// parameters may make it longer, so a little room.
    pub max_line: usize,
    /// Recipients per transaction.
    pub max_recipients: usize,
    /// Bad commands tolerated in one session before it is closed.
    pub max_errors: u32,
    /// How long any read may wait.
    pub idle: Duration,
}

impl Limits {
    pub fn new(max_message_bytes: u64) -> Limits {
        Limits {
            max_message_bytes,
            max_line: 2048,
            max_recipients: 100,
            max_errors: 20,
            idle: Duration::from_secs(300),
        }
    }
}

/// Who is served: the name in the greeting, the addresses taken at `RCPT`, the limits.
#[derive(Debug, Clone)]
pub struct Policy {
    pub hostname: String,
    /// Lower-case addresses; any other recipient gets 550.
    pub recipients: Vec<String>,
    pub limits: Limits,
}

impl Policy {
    fn accepts(&self, address: &str) -> bool {
        self.recipients
            .iter()
            .any(|r| r.eq_ignore_ascii_case(address))
    }
}

/// A transaction's envelope, as handed to the delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse path without `<>` (empty for a bounce).
    pub from: String,
    /// Accepted recipients, lower-case, in the order given.
    pub recipients: Vec<String>,
}

/// An LMTP reply: a code, an enhanced status code (RFC 3463) and a line of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: &'static str,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, status: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            status,
            text: text.into(),
        }
    }

    /// One line on the wire. Control characters never reach it (a reference or a reason
    /// is ASCII, but the text must not be able to end the line early).
    fn line(&self) -> String {
        let text: String = self
            .text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!("{} {} {}\r\n", self.code, self.status, text)
    }
}

/// What takes a message whose transaction is complete: returns the one reply given for each
/// accepted recipient. The delivery answers `250` only for what it has made durable.
pub trait Deliver {
    fn deliver(&self, envelope: &Envelope, message: Vec<u8>) -> impl Future<Output = Reply> + Send;
}

/// How a session ended (for the log; the peer has been answered either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Quit,
    /// The peer closed the connection (or it broke).
    Closed,
    IdleTimeout,
    Shutdown,
    TooManyErrors,
}

/// A line as read: complete (with its line end), longer than allowed (what was kept is cut,
/// the rest of the line was read and dropped), or the end of the stream.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    Complete,
    TooLong,
    Eof,
}

/// Serve one session on `stream` until it ends. I/O errors end it too (returned).
pub async fn serve<S, D>(
    stream: S,
    policy: &Policy,
    delivery: &D,
    shutdown: &CancellationToken,
) -> std::io::Result<End>
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: Deliver,
{
    let mut io = BufReader::new(stream);
    let mut s = Session {
        policy,
        greeted: false,
        from: None,
        recipients: Vec::new(),
        errors: 0,
    };
    send(
        &mut io,
        &format!("220 {} LMTP postroom ready\r\n", policy.hostname),
    )
    .await?;
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = tokio::select! {
            r = tokio::time::timeout(policy.limits.idle, read_line(&mut io, &mut line, policy.limits.max_line)) => r,
            _ = shutdown.cancelled() => {
                send(&mut io, "421 4.3.2 postroom is shutting down, try again later\r\n").await?;
                return Ok(End::Shutdown);
            }
        };
        let kind = match read {
            Err(_) => {
                send(&mut io, "421 4.4.2 idle too long, closing\r\n").await?;
                return Ok(End::IdleTimeout);
            }
            Ok(r) => r?,
        };
        let reply = match kind {
            Line::Eof => return Ok(End::Closed),
            Line::TooLong => Step::Reply(Reply::new(500, "5.5.2", "line too long")),
            Line::Complete => s.command(trim_line_end(&line)),
        };
        match reply {
            Step::Reply(r) => {
                if r.code >= 500 && r.code != 550 && r.code != 552 {
                    s.errors += 1;
                }
                send(&mut io, &r.line()).await?;
                if s.errors >= policy.limits.max_errors {
                    send(&mut io, "421 4.7.0 too many errors, closing\r\n").await?;
                    return Ok(End::TooManyErrors);
                }
            }
            Step::Raw(text) => send(&mut io, &text).await?,
            Step::Quit => {
                send(&mut io, "221 2.0.0 bye\r\n").await?;
                return Ok(End::Quit);
            }
            Step::Data => {
                send(
                    &mut io,
                    "354 2.0.0 send the message, end with <CRLF>.<CRLF>\r\n",
                )
                .await?;
                let data = tokio::select! {
                    d = read_data(&mut io, &policy.limits) => d?,
                    _ = shutdown.cancelled() => {
                        // Nothing of it was taken: the MTA keeps it and tries again.
                        send(&mut io, "421 4.3.2 postroom is shutting down, try again later\r\n").await?;
                        return Ok(End::Shutdown);
                    }
                };
                let envelope = s.take_envelope();
                match data {
                    Data::Eof => return Ok(End::Closed),
                    Data::IdleTimeout => {
                        send(&mut io, "421 4.4.2 idle too long, closing\r\n").await?;
                        return Ok(End::IdleTimeout);
                    }
                    Data::TooLarge => {
                        let r = Reply::new(
                            552,
                            "5.3.4",
                            format!(
                                "message larger than {} bytes",
                                policy.limits.max_message_bytes
                            ),
                        );
                        for _ in &envelope.recipients {
                            send(&mut io, &r.line()).await?;
                        }
                    }
                    Data::Message(message) => {
                        // Not raced against shutdown: the verdict of a message in hand is
                        // always given (the daemon's grace period bounds it).
                        let r = delivery.deliver(&envelope, message).await;
                        // RFC 2033 §4.2: one reply per accepted recipient, in order.
                        for _ in &envelope.recipients {
                            send(&mut io, &r.line()).await?;
                        }
                    }
                }
            }
        }
    }
}

enum Step {
    Reply(Reply),
    /// A multi-line reply, already formatted.
    Raw(String),
    Quit,
    Data,
}

struct Session<'p> {
    policy: &'p Policy,
    greeted: bool,
    /// `Some` once MAIL was accepted: a transaction is open.
    from: Option<String>,
    recipients: Vec<String>,
    errors: u32,
}

impl Session<'_> {
    fn reset(&mut self) {
        self.from = None;
        self.recipients.clear();
    }

    fn take_envelope(&mut self) -> Envelope {
        let envelope = Envelope {
            from: self.from.take().unwrap_or_default(),
            recipients: std::mem::take(&mut self.recipients),
        };
        self.reset();
        envelope
    }

    fn command(&mut self, line: &[u8]) -> Step {
        let Ok(line) = std::str::from_utf8(line) else {
            return Step::Reply(Reply::new(500, "5.5.2", "syntax error: not UTF-8"));
        };
        let (verb, args) = match line.split_once(' ') {
            Some((v, a)) => (v, a.trim()),
            None => (line, ""),
        };
        let verb = verb.to_ascii_uppercase();
        match verb.as_str() {
            "LHLO" => self.lhlo(args),
            "HELO" | "EHLO" => Step::Reply(Reply::new(
                500,
                "5.5.1",
                "this is LMTP (RFC 2033): say LHLO",
            )),
            "MAIL" => Step::Reply(self.mail(args)),
            "RCPT" => Step::Reply(self.rcpt(args)),
            "DATA" => self.data(args),
            "RSET" => {
                self.reset();
                Step::Reply(Reply::new(250, "2.0.0", "reset"))
            }
            "NOOP" => Step::Reply(Reply::new(250, "2.0.0", "ok")),
            "QUIT" => Step::Quit,
            "VRFY" | "EXPN" | "HELP" | "STARTTLS" | "AUTH" | "BDAT" | "ETRN" | "TURN" => {
                Step::Reply(Reply::new(502, "5.5.1", "not implemented"))
            }
            "" => Step::Reply(Reply::new(500, "5.5.2", "syntax error: empty line")),
            _ => Step::Reply(Reply::new(500, "5.5.1", "command not recognised")),
        }
    }

    fn lhlo(&mut self, args: &str) -> Step {
        if args.is_empty() {
            return Step::Reply(Reply::new(501, "5.5.4", "LHLO needs a host name"));
        }
        // RFC 5321 §4.1.4: a new greeting resets any transaction.
        self.reset();
        self.greeted = true;
        Step::Raw(format!(
            "250-{}\r\n250-PIPELINING\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE {}\r\n",
            self.policy.hostname, self.policy.limits.max_message_bytes
        ))
    }

    fn mail(&mut self, args: &str) -> Reply {
        if !self.greeted {
            return Reply::new(503, "5.5.1", "say LHLO first");
        }
        if self.from.is_some() {
            return Reply::new(503, "5.5.1", "a transaction is already open (RSET first)");
        }
        let Some((path, params)) = path_after(args, "FROM:") else {
            return Reply::new(501, "5.5.4", "syntax: MAIL FROM:<address>");
        };
        for param in params.split_whitespace() {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            match name.to_ascii_uppercase().as_str() {
                "SIZE" => match value.parse::<u64>() {
                    Ok(n) if n > self.policy.limits.max_message_bytes => {
                        return Reply::new(
                            552,
                            "5.3.4",
                            format!(
                                "message larger than {} bytes",
                                self.policy.limits.max_message_bytes
                            ),
                        );
                    }
                    Ok(_) => {}
                    Err(_) => return Reply::new(501, "5.5.4", "SIZE needs a number"),
                },
                "BODY" if ["7BIT", "8BITMIME"].contains(&value.to_ascii_uppercase().as_str()) => {}
                "SMTPUTF8" if value.is_empty() => {}
                _ => return Reply::new(555, "5.5.4", "parameter not supported"),
            }
        }
        self.from = Some(path.to_owned());
        Reply::new(250, "2.1.0", "sender ok")
    }

    fn rcpt(&mut self, args: &str) -> Reply {
        if self.from.is_none() {
            return Reply::new(503, "5.5.1", "say MAIL first");
        }
        let Some((path, params)) = path_after(args, "TO:") else {
            return Reply::new(501, "5.5.4", "syntax: RCPT TO:<address>");
        };
        if !params.trim().is_empty() {
            return Reply::new(555, "5.5.4", "parameter not supported");
        }
        if path.is_empty() {
            return Reply::new(501, "5.1.3", "empty recipient");
        }
        if self.recipients.len() >= self.policy.limits.max_recipients {
            return Reply::new(452, "4.5.3", "too many recipients");
        }
        if !self.policy.accepts(path) {
            return Reply::new(550, "5.1.1", "not a helpdesk address of this postroom");
        }
        self.recipients.push(path.to_ascii_lowercase());
        Reply::new(250, "2.1.5", "recipient ok")
    }

    fn data(&mut self, args: &str) -> Step {
        if !args.is_empty() {
            return Step::Reply(Reply::new(501, "5.5.4", "DATA takes no argument"));
        }
        if self.from.is_none() {
            return Step::Reply(Reply::new(503, "5.5.1", "say MAIL first"));
        }
        // RFC 2033 §4.2: DATA with no accepted recipient fails with 503.
        if self.recipients.is_empty() {
            return Step::Reply(Reply::new(503, "5.5.1", "no valid recipients"));
        }
        Step::Data
    }
}

/// `FROM:<a@b> PARAMS` → (`a@b`, `PARAMS`). The prefix is matched without case; a space
/// after the colon is tolerated (Postfix never sends one, some clients do).
fn path_after<'a>(args: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let head = args.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = args.get(prefix.len()..)?.trim_start();
    let inner = rest.strip_prefix('<')?;
    let (path, params) = inner.split_once('>')?;
    if path.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    // A source route (`<@a,@b:user@c>`, RFC 5321 §4.1.2) is obsolete: its last part counts.
    let path = path.rsplit_once(':').map_or(path, |(_, p)| p);
    Some((path, params))
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

async fn send<S: AsyncWrite + Unpin>(io: &mut S, text: &str) -> std::io::Result<()> {
    io.write_all(text.as_bytes()).await?;
    io.flush().await
}

/// Read one line (up to and including `\n`) into `buf`, keeping at most `max` bytes of it;
/// the rest of a longer line is read and dropped.
async fn read_line<R: AsyncRead + Unpin>(
    io: &mut BufReader<R>,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    let mut too_long = false;
    loop {
        let available = io.fill_buf().await?;
        if available.is_empty() {
            // The peer went away, possibly in the middle of a line: nothing to act on.
            return Ok(Line::Eof);
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (available.get(..=i).unwrap_or(available), true),
            None => (available, false),
        };
        let used = chunk.len();
        let room = max.saturating_sub(buf.len());
        if chunk.len() > room {
            too_long = true;
        }
        if !too_long {
            buf.extend_from_slice(chunk);
        }
        io.consume(used);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

enum Data {
    Message(Vec<u8>),
    TooLarge,
    Eof,
    IdleTimeout,
}

/// The message after `354`, up to the line holding a single `.`, dot-unstuffed (RFC 5321
/// §4.5.2). Beyond the size limit nothing more is kept, but the rest is still read so that
/// the session can answer and go on.
async fn read_data<R: AsyncRead + Unpin>(
    io: &mut BufReader<R>,
    limits: &Limits,
) -> std::io::Result<Data> {
    let max = usize::try_from(limits.max_message_bytes).unwrap_or(usize::MAX);
    // A line longer than the whole message allowed cannot be part of one.
    let line_max = max.saturating_add(3);
    let mut message = Vec::new();
    let mut too_large = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        let kind = match tokio::time::timeout(limits.idle, read_line(io, &mut line, line_max)).await
        {
            Err(_) => return Ok(Data::IdleTimeout),
            Ok(r) => r?,
        };
        match kind {
            Line::Eof => return Ok(Data::Eof),
            Line::TooLong => {
                too_large = true;
                message = Vec::new();
                continue;
            }
            Line::Complete => {}
        }
        if trim_line_end(&line) == b".".as_slice() {
            break;
        }
        if too_large {
            continue;
        }
        let content = line.strip_prefix(b".").unwrap_or(&line);
        if message.len().saturating_add(content.len()) > max {
            too_large = true;
            message = Vec::new();
            continue;
        }
        message.extend_from_slice(content);
    }
    Ok(if too_large {
        Data::TooLarge
    } else {
        Data::Message(message)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::{AsyncReadExt, DuplexStream};

    /// Records what it was given and answers `reply`.
    struct Recorder {
        reply: Reply,
        got: Mutex<Vec<(Envelope, Vec<u8>)>>,
    }

    impl Recorder {
        fn new(reply: Reply) -> Recorder {
            Recorder {
                reply,
                got: Mutex::new(Vec::new()),
            }
        }
        fn got(&self) -> Vec<(Envelope, Vec<u8>)> {
            self.got.lock().unwrap().clone()
        }
    }

    impl Deliver for Recorder {
        fn deliver(
            &self,
            envelope: &Envelope,
            message: Vec<u8>,
        ) -> impl Future<Output = Reply> + Send {
            self.got.lock().unwrap().push((envelope.clone(), message));
            let reply = self.reply.clone();
            async move { reply }
        }
    }

    fn policy(max: u64) -> Policy {
        let mut limits = Limits::new(max);
        limits.idle = Duration::from_millis(300);
        limits.max_line = 100;
        limits.max_errors = 10;
        Policy {
            hostname: "pr.test".into(),
            recipients: vec!["helpdesk@x.example".into(), "hd2@x.example".into()],
            limits,
        }
    }

    fn ok() -> Reply {
        Reply::new(250, "2.0.0", "HD-000001 applied")
    }

    /// Run a session against `input` (sent all at once, then the client half is closed for
    /// writing) and return everything the server wrote, and how it ended.
    async fn exchange(policy: &Policy, d: &Recorder, input: &str) -> (String, End) {
        let (client, server) = tokio::io::duplex(1 << 20);
        let shutdown = CancellationToken::new();
        let (mut read, mut write) = tokio::io::split(client);
        let input = input.to_owned();
        let writer = tokio::spawn(async move {
            write.write_all(input.as_bytes()).await.unwrap();
            write.shutdown().await.unwrap();
            write
        });
        let end = serve(server, policy, d, &shutdown).await.unwrap();
        let _ = writer.await.unwrap();
        let mut out = String::new();
        read.read_to_string(&mut out).await.unwrap();
        (out, end)
    }

    fn codes(out: &str) -> Vec<String> {
        out.lines()
            .map(|l| l.get(..4).unwrap_or(l).to_owned())
            .collect()
    }

    #[tokio::test]
    async fn a_whole_transaction_pipelined_as_postfix_sends_it() {
        let d = Recorder::new(ok());
        let (out, end) = exchange(
            &policy(1000),
            &d,
            "LHLO mta.example\r\n\
             MAIL FROM:<site@x.example> SIZE=40 BODY=8BITMIME\r\n\
             RCPT TO:<Helpdesk@X.example>\r\n\
             DATA\r\n\
             Subject: hi\r\n\r\n..dotted\r\n.\r\n\
             QUIT\r\n",
        )
        .await;
        assert_eq!(end, End::Quit);
        assert_eq!(
            codes(&out),
            [
                "220 ", "250-", "250-", "250-", "250-", "250-", "250 ", "250 ", "250 ", "354 ",
                "250 ", "221 "
            ],
            "{out}"
        );
        assert!(out.contains("250 SIZE 1000\r\n"), "{out}");
        assert!(out.contains("250 2.0.0 HD-000001 applied\r\n"), "{out}");
        let got = d.got();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0.from, "site@x.example");
        assert_eq!(got[0].0.recipients, ["helpdesk@x.example"]);
        // Dot-unstuffed, the final CRLF kept, the terminator not.
        assert_eq!(got[0].1, b"Subject: hi\r\n\r\n.dotted\r\n");
    }

    #[tokio::test]
    async fn one_reply_per_accepted_recipient_and_others_refused() {
        let d = Recorder::new(Reply::new(451, "4.3.0", "database unavailable"));
        let (out, _) = exchange(
            &policy(1000),
            &d,
            "LHLO m\r\nMAIL FROM:<>\r\nRCPT TO:<helpdesk@x.example>\r\n\
             RCPT TO:<someone@else.example>\r\nRCPT TO:<hd2@x.example>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n",
        )
        .await;
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines.contains(&"550 5.1.1 not a helpdesk address of this postroom"));
        let after_data: Vec<&str> = lines
            .iter()
            .skip_while(|l| !l.starts_with("354"))
            .skip(1)
            .copied()
            .collect();
        assert_eq!(
            after_data,
            [
                "451 4.3.0 database unavailable",
                "451 4.3.0 database unavailable",
                "221 2.0.0 bye"
            ]
        );
        let got = d.got();
        assert_eq!(
            got.len(),
            1,
            "one delivery for the message, not one per recipient"
        );
        assert_eq!(got[0].0.from, "", "the null reverse path of a bounce");
        assert_eq!(got[0].0.recipients, ["helpdesk@x.example", "hd2@x.example"]);
    }

    #[tokio::test]
    async fn commands_out_of_sequence_get_503_and_nothing_is_delivered() {
        let d = Recorder::new(ok());
        let (out, _) = exchange(
            &policy(1000),
            &d,
            "MAIL FROM:<a@x.example>\r\n\
             LHLO m\r\n\
             RCPT TO:<helpdesk@x.example>\r\n\
             DATA\r\n\
             MAIL FROM:<a@x.example>\r\n\
             MAIL FROM:<a@x.example>\r\n\
             DATA\r\n\
             RCPT TO:<nobody@x.example>\r\n\
             DATA\r\n\
             RSET\r\n\
             RCPT TO:<helpdesk@x.example>\r\n\
             QUIT\r\n",
        )
        .await;
        assert_eq!(
            codes(&out),
            [
                "220 ", "503 ", // MAIL before LHLO
                "250-", "250-", "250-", "250-", "250-", "250 ", // LHLO
                "503 ", // RCPT before MAIL
                "503 ", // DATA before MAIL
                "250 ", // MAIL
                "503 ", // nested MAIL
                "503 ", // DATA with no recipient
                "550 ", // not ours
                "503 ", // DATA with no accepted recipient (RFC 2033 §4.2)
                "250 ", // RSET
                "503 ", // RCPT after RSET: no transaction
                "221 "
            ],
            "{out}"
        );
        assert!(d.got().is_empty());
    }

    #[tokio::test]
    async fn syntax_errors_and_unknown_commands() {
        let d = Recorder::new(ok());
        let (out, _) = exchange(
            &policy(1000),
            &d,
            "EHLO m\r\nLHLO\r\nLHLO m\r\nMAIL FROM:a@x.example\r\nMAIL FROM:<a@x.example> FOO=1\r\n\
             MAIL FROM:<a@x.example>\r\nRCPT TO:<helpdesk@x.example> NOTIFY=NEVER\r\nNOOP\r\nVRFY x\r\nWHAT\r\nQUIT\r\n",
        )
        .await;
        let c = codes(&out);
        assert_eq!(c.first().map(String::as_str), Some("220 "));
        let rest: Vec<&str> = c
            .iter()
            .map(String::as_str)
            .filter(|l| *l != "250-")
            .collect();
        assert_eq!(
            rest,
            [
                "220 ", "500 ", // EHLO is not LMTP
                "501 ", // LHLO without a name
                "250 ", // LHLO (last line)
                "501 ", // no angle brackets
                "555 ", // unknown parameter
                "250 ", // MAIL
                "555 ", // RCPT parameter
                "250 ", // NOOP
                "502 ", // VRFY
                "500 ", // unknown
                "221 "
            ],
            "{out}"
        );
    }

    #[tokio::test]
    async fn a_message_over_the_limit_gets_552_and_the_session_goes_on() {
        let d = Recorder::new(ok());
        let big = "y".repeat(60);
        let (out, end) = exchange(
            &policy(100),
            &d,
            &format!(
                "LHLO m\r\nMAIL FROM:<a@x.example> SIZE=101\r\nMAIL FROM:<a@x.example>\r\n\
                 RCPT TO:<helpdesk@x.example>\r\nDATA\r\n{big}\r\n{big}\r\n.\r\n\
                 MAIL FROM:<a@x.example>\r\nRCPT TO:<helpdesk@x.example>\r\nDATA\r\nsmall\r\n.\r\nQUIT\r\n"
            ),
        )
        .await;
        assert_eq!(end, End::Quit);
        assert!(
            out.contains("552 5.3.4 message larger than 100 bytes"),
            "{out}"
        );
        assert_eq!(out.matches("552 5.3.4").count(), 2, "SIZE= and DATA: {out}");
        let got = d.got();
        assert_eq!(got.len(), 1, "only the small one is delivered");
        assert_eq!(got[0].1, b"small\r\n");
    }

    #[tokio::test]
    async fn a_line_longer_than_the_message_limit_is_not_kept() {
        let d = Recorder::new(ok());
        let (out, _) = exchange(
            &policy(100),
            &d,
            &format!(
                "LHLO m\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<helpdesk@x.example>\r\nDATA\r\n{}\r\n.\r\nQUIT\r\n",
                "z".repeat(5000)
            ),
        )
        .await;
        assert!(out.contains("552 5.3.4"), "{out}");
        assert!(d.got().is_empty());
    }

    #[tokio::test]
    async fn an_overlong_command_line_is_refused_and_the_session_goes_on() {
        let d = Recorder::new(ok());
        let (out, end) = exchange(
            &policy(100),
            &d,
            &format!("LHLO {}\r\nNOOP\r\nQUIT\r\n", "h".repeat(500)),
        )
        .await;
        assert_eq!(end, End::Quit);
        assert_eq!(codes(&out), ["220 ", "500 ", "250 ", "221 "], "{out}");
        assert!(out.contains("500 5.5.2 line too long"));
    }

    #[tokio::test]
    async fn too_many_errors_close_the_session() {
        let d = Recorder::new(ok());
        let (out, end) = exchange(&policy(100), &d, &"BOGUS\r\n".repeat(50)).await;
        assert_eq!(end, End::TooManyErrors);
        assert_eq!(out.matches("500 5.5.1").count(), 10, "{out}");
        assert!(
            out.ends_with("421 4.7.0 too many errors, closing\r\n"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn a_peer_gone_mid_message_delivers_nothing() {
        let d = Recorder::new(ok());
        let (_, end) = exchange(
            &policy(1000),
            &d,
            "LHLO m\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<helpdesk@x.example>\r\nDATA\r\nhalf a mess",
        )
        .await;
        assert_eq!(end, End::Closed);
        assert!(d.got().is_empty());
    }

    /// A client that keeps its half open: (server task, client stream).
    fn open(
        policy: Policy,
        shutdown: CancellationToken,
    ) -> (tokio::task::JoinHandle<End>, DuplexStream) {
        let (client, server) = tokio::io::duplex(1 << 16);
        let task = tokio::spawn(async move {
            let d = Recorder::new(ok());
            serve(server, &policy, &d, &shutdown).await.unwrap()
        });
        (task, client)
    }

    #[tokio::test]
    async fn an_idle_peer_is_told_and_dropped() {
        let (task, mut client) = open(policy(100), CancellationToken::new());
        client
            .write_all(b"LHLO m\r\nMAIL FROM:<a@x.example>\r\n")
            .await
            .unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(end, End::IdleTimeout);
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        assert!(
            out.ends_with("421 4.4.2 idle too long, closing\r\n"),
            "{out}"
        );
    }

    #[tokio::test]
    async fn shutdown_answers_421_so_the_mta_retries() {
        let shutdown = CancellationToken::new();
        let mut p = policy(100);
        p.limits.idle = Duration::from_secs(60);
        let (task, mut client) = open(p, shutdown.clone());
        client
            .write_all(b"LHLO m\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<helpdesk@x.example>\r\nDATA\r\npart")
            .await
            .unwrap();
        // Let the server reach the message before the stop.
        let mut seen = Vec::new();
        while !String::from_utf8_lossy(&seen).contains("354") {
            let mut b = [0u8; 256];
            let n = client.read(&mut b).await.unwrap();
            assert!(n > 0);
            seen.extend_from_slice(&b[..n]);
        }
        shutdown.cancel();
        let end = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(end, End::Shutdown);
        let mut out = String::new();
        client.read_to_string(&mut out).await.unwrap();
        assert_eq!(
            out,
            "421 4.3.2 postroom is shutting down, try again later\r\n"
        );
    }

    #[test]
    fn paths() {
        assert_eq!(path_after("FROM:<a@b.c>", "FROM:"), Some(("a@b.c", "")));
        assert_eq!(
            path_after("from: <a@b.c> SIZE=1", "FROM:"),
            Some(("a@b.c", " SIZE=1"))
        );
        assert_eq!(path_after("FROM:<>", "FROM:"), Some(("", "")));
        assert_eq!(path_after("TO:<@r1,@r2:x@y.z>", "TO:"), Some(("x@y.z", "")));
        assert_eq!(path_after("FROM:a@b.c", "FROM:"), None);
        assert_eq!(path_after("FROM:<a b@c>", "FROM:"), None);
        assert_eq!(path_after("TO:<x@y>", "FROM:"), None);
        assert_eq!(path_after("FRÖM", "FROM:"), None);
    }

    #[test]
    fn reply_text_cannot_break_the_line() {
        let r = Reply::new(250, "2.0.0", "a\r\nb");
        assert_eq!(r.line(), "250 2.0.0 a  b\r\n");
    }
}
