//! Raw bytes → [`Message`]: what postroom needs from an email, nothing more.
//!
//! Built on `mail-parser`, which never fails on broken MIME; everything here must hold for any
//! byte string (fuzzed): no panics, no indexing on data from the network.

use mail_parser::decoders::html::html_to_text;
use mail_parser::{Address, HeaderName, HeaderValue, MessageParser, MimeHeaders, PartType};
use regex::Regex;
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::sync::LazyLock;

/// One email, reduced to what screening, trust, extraction and the store need.
#[derive(Debug, Clone, Default)]
pub struct Message {
    /// `Message-ID` without angle brackets (Exchange's `X-Microsoft-Original-Message-ID` is
    /// preferred when present, because Exchange can rewrite `Message-ID`).
    pub message_id: Option<String>,
    /// The `From:` address, lower-cased; `None` when missing or unparsable.
    pub from: Option<String>,
    /// The display name of `From:`, if any.
    pub from_name: Option<String>,
    /// How many mailboxes the `From:` header names (RFC 5322 allows several only with a
    /// `Sender:`; postroom trusts exactly one).
    pub from_mailboxes: usize,
    /// The `Sender:` address, lower-cased (Exchange "send on behalf of").
    pub sender: Option<String>,
    /// `Reply-To:` (never used to answer; kept for the audit and the staff page).
    pub reply_to: Option<String>,
    /// `Return-Path:`: `None` when the header is absent, `Some("")` for the null sender `<>`.
    pub return_path: Option<String>,
    /// Decoded subject, `""` when missing.
    pub subject: String,
    /// `In-Reply-To` and `References` IDs, without angle brackets.
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    /// Every header as (lower-case name, decoded/unfolded value), in message order.
    pub headers: Vec<(String, String)>,
    /// The body as plain text: the first text/plain part, else the HTML part rendered as text.
    /// Line endings normalised to `\n`.
    pub text: String,
    /// Top-level MIME type, lower-case, e.g. `multipart/report`.
    pub content_type: String,
    /// Hex SHA-256 of the raw bytes.
    pub sha256: String,
    /// Size of the raw bytes.
    pub size: usize,
    /// True when mail-parser could not find any header at all (not an email).
    pub unparsable: bool,
    /// Shape of the message, for the limits against hostile input: header fields of the
    /// top-level header section, bytes of that section, MIME parts (nested messages included)
    /// and levels of MIME nesting (0 for a single-part message).
    pub header_count: usize,
    pub header_bytes: usize,
    pub part_count: usize,
    pub mime_depth: usize,
}

impl Message {
    /// All values of a header (name compared case-insensitively), in message order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Parse raw bytes. Never fails: anything unreadable is reported through `unparsable`.
pub fn parse(raw: &[u8]) -> Message {
    let mut msg = Message {
        sha256: hex::encode(Sha256::digest(raw)),
        size: raw.len(),
        ..Message::default()
    };
    let with_lf = with_line_feeds(raw);
    let raw = without_leading_blank_lines(&with_lf);
    // mail-parser returns `None` only when it finds no header at all (empty input, text
    // without a colon); it returns `Some` for random binary, with the bytes as one header name.
    // mail-parser never fails by design, but a hostile message once reached one of its
    // assertions (tests/fixtures/fuzz/): should any panic remain, this message is unparsable
    // and the desk keeps going.
    let parsed = std::panic::catch_unwind(|| MessageParser::default().parse(raw)).unwrap_or_else(|_| {
        tracing::warn!(sha256 = %msg.sha256, "mail-parser panicked on this message; treated as unparsable");
        None
    });
    let Some(parsed) = parsed else {
        msg.unparsable = true;
        return msg;
    };
    let Some(root) = parsed.parts.first() else {
        msg.unparsable = true;
        return msg;
    };
    msg.header_count = root.headers.len();
    msg.header_bytes = root.offset_body.saturating_sub(root.offset_header) as usize;
    (msg.part_count, msg.mime_depth) = mime_shape(&parsed);

    for header in &root.headers {
        let name = header.name();
        if !is_field_name(name) {
            continue;
        }
        // Subject is the one header a person reads: decode RFC 2047 encoded-words. Every other
        // header keeps its raw text (unfolded) so screening and the audit see what was sent.
        let value = match (&header.name, header.value.as_text()) {
            (HeaderName::Subject, Some(decoded)) => decoded.trim().to_string(),
            _ => raw_header_value(raw, header.offset_start, header.offset_end),
        };
        msg.headers.push((name.to_ascii_lowercase(), value));
    }
    // Random binary yields "headers" whose names are not RFC 5322 field names: not an email.
    if msg.headers.is_empty() {
        msg.unparsable = true;
        return msg;
    }

    // Exchange can rewrite `Message-ID`; the original survives in its own header.
    let id = |name| {
        msg.header(name)
            .map(strip_angle_brackets)
            .filter(|id| !id.is_empty())
    };
    let message_id = id("x-microsoft-original-message-id").or_else(|| id("message-id"));
    msg.message_id = message_id;
    msg.from_mailboxes = parsed.from().map_or(0, |a| a.iter().count());
    if let Some(from) = parsed.from().and_then(|a| a.first()) {
        msg.from = from.address().and_then(normalise_address);
        msg.from_name = from
            .name()
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(str::to_string);
    }
    msg.sender = first_address(parsed.sender());
    msg.reply_to = first_address(parsed.reply_to());
    // mail-parser reads the null sender `<>` as an empty value, indistinguishable from a broken
    // header, so the raw text decides (RFC 5321 §4.4: `Return-Path: <>` marks a bounce).
    let return_path = msg
        .header("return-path")
        .map(|v| strip_angle_brackets(v).to_lowercase());
    msg.return_path = return_path;
    msg.subject = parsed.subject().unwrap_or_default().trim().to_string();
    msg.in_reply_to = id_list(parsed.in_reply_to());
    msg.references = id_list(parsed.references());
    msg.content_type = root
        .content_type()
        .map(|ct| match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub),
            None => ct.ctype().to_string(),
        })
        // RFC 2045 §5.2: no Content-Type means text/plain.
        .unwrap_or_else(|| "text/plain".to_string())
        .to_ascii_lowercase();
    msg.text = body_text(&parsed);
    without_nul(&mut msg);
    msg
}

/// A NUL character means nothing in a header or a text, and PostgreSQL cannot store one in
/// `TEXT` (`invalid byte sequence for encoding "UTF8": 0x00`): an encoded-word that decodes to
/// `\0` (one in the shared corpus) would make the message unstorable there. Replaced with
/// U+FFFD, on both backends alike; the raw bytes (stored as bytes) keep it.
fn without_nul(msg: &mut Message) {
    fn clean(s: &mut String) {
        if s.contains('\0') {
            *s = s.replace('\0', "\u{FFFD}");
        }
    }
    let Message {
        message_id,
        from,
        from_name,
        sender,
        reply_to,
        return_path,
        subject,
        in_reply_to,
        references,
        headers,
        text,
        ..
    } = msg;
    for s in [message_id, from, from_name, sender, reply_to, return_path]
        .into_iter()
        .flatten()
    {
        clean(s);
    }
    clean(subject);
    clean(text);
    in_reply_to
        .iter_mut()
        .chain(references.iter_mut())
        .for_each(clean);
    for (name, value) in headers.iter_mut() {
        clean(name);
        clean(value);
    }
}

/// mail-parser ends lines at LF only, so a message with bare-CR line ends (classic Mac OS
/// clients; several in the shared corpus) would read as one endless header. Such a message is
/// parsed as if it had CRLF line ends (the hash and size stay those of the raw bytes).
fn with_line_feeds(raw: &[u8]) -> Cow<'_, [u8]> {
    if !raw.contains(&b'\r') || raw.contains(&b'\n') {
        return Cow::Borrowed(raw);
    }
    let mut crlf = Vec::with_capacity(raw.len() * 2);
    for &byte in raw {
        crlf.push(byte);
        if byte == b'\r' {
            crlf.push(b'\n');
        }
    }
    Cow::Owned(crlf)
}

/// mail-parser reads a blank first line as the end of an empty header section, which would make
/// a message saved with a stray blank line on top (several in the shared corpus) headerless.
fn without_leading_blank_lines(raw: &[u8]) -> &[u8] {
    let mut rest = raw;
    while let Some(end) = rest.iter().position(|&b| b == b'\n') {
        let (line, after) = rest.split_at(end + 1);
        if !line.iter().all(u8::is_ascii_whitespace) {
            break;
        }
        rest = after;
    }
    rest
}

/// RFC 5322 §3.6.8: a field name is printable US-ASCII except the colon.
fn is_field_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

/// The raw text of a header value, unfolded (RFC 5322 §2.2.3) and trimmed.
fn raw_header_value(raw: &[u8], start: u32, end: u32) -> String {
    let bytes = raw.get(start as usize..end as usize).unwrap_or_default();
    // Inside one header value every line break is followed by whitespace (otherwise it would
    // start a new header), so removing CR and LF is exactly unfolding.
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect::<String>()
        .trim()
        .to_string()
}

/// `<id@host> (comment)` → `id@host`; a value without brackets is only trimmed.
fn strip_angle_brackets(value: &str) -> String {
    let value = value.trim();
    value
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or(value, |(inside, _)| inside)
        .trim()
        .to_string()
}

fn normalise_address(address: &str) -> Option<String> {
    let address = address.trim();
    (!address.is_empty()).then(|| address.to_lowercase())
}

fn first_address(address: Option<&Address<'_>>) -> Option<String> {
    address
        .and_then(Address::first)
        .and_then(|a| a.address())
        .and_then(normalise_address)
}

fn id_list(value: &HeaderValue<'_>) -> Vec<String> {
    value
        .as_text_list()
        .unwrap_or_default()
        .iter()
        .map(|id| strip_angle_brackets(id))
        .filter(|id| !id.is_empty())
        .collect()
}

/// The number of MIME parts and the deepest nesting level, walked without recursion: hostile
/// input can nest thousands of levels. A child always comes after its parent in mail-parser's
/// part list, so following only higher ids ends even on a corrupt tree.
fn mime_shape(parsed: &mail_parser::Message<'_>) -> (usize, usize) {
    let (mut parts, mut depth) = (0, 0);
    let mut stack = vec![(parsed, 0u32, 0usize)];
    while let Some((message, id, level)) = stack.pop() {
        let Some(part) = message.parts.get(id as usize) else {
            continue;
        };
        parts += 1;
        depth = depth.max(level);
        match &part.body {
            PartType::Multipart(children) => stack.extend(
                children
                    .iter()
                    .filter(|&&child| child > id)
                    .map(|&child| (message, child, level + 1)),
            ),
            PartType::Message(nested) => stack.push((nested, 0, level + 1)),
            _ => {}
        }
    }
    (parts, depth)
}

/// Block elements after which a browser starts a new line.
static HTML_BLOCK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)<(/?)(div|p|tr|li|h[1-6]|table|blockquote|hr|ul|ol|pre|dt|dd)\b")
        .expect("static regex")
});
/// Table cells: a form laid out as `<td>Account:</td><td>x</td>` must read `Account: x`, and
/// `<td>Full name</td><td>Joe Bloggs</td>` must read as a field too: cells are separated by `|`,
/// which the grammar reads as a table row (see `request::extract::field_line`).
static HTML_CELL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)<(td|th)\b").expect("static regex"));
/// Where quoted history starts in HTML: Outlook's reply/forward header block (`divRplyFwdMsg`,
/// `x_divRplyFwdMsg` once forwarded again, also as `id="x_…"` on the rule above it), Gmail's
/// `gmail_quote` and Apple Mail's `<blockquote type="cite">`. Rendered to text, their contents
/// would read as new text (a blockquote loses its `>`), so a separator line that
/// `strip_quoted` cuts at is put before them; the history stays in the text (a forward may
/// supply a target).
static HTML_QUOTE_START: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?i)<(?:div|hr)\b[^>]*\bid\s*=\s*["']?(?:x_)*divRplyFwdMsg|<div\b[^>]*\bclass\s*=\s*["']?[^"'>]*\bgmail_quote\b|<blockquote\b[^>]*\btype\s*=\s*["']?cite"#)
        .expect("static regex")
});

/// The first text body (mail-parser lists an HTML part there when a message has no plain
/// alternative), with line endings normalised to `\n`.
fn body_text(parsed: &mail_parser::Message<'_>) -> String {
    let text = match parsed.text_part(0).map(|part| &part.body) {
        Some(PartType::Text(text)) => text.to_string(),
        Some(PartType::Html(html)) => {
            // mail-parser's renderer breaks lines only at `<br>` and `</p>`, so the `<div>`
            // lines of Outlook on the web and Gmail would run together ("Account: xRequested
            // by: y"): mark the other block elements as line breaks first.
            let html = match HTML_QUOTE_START.find(html) {
                Some(quote) => format!(
                    "{}<br>-----Original Message-----<br>{}",
                    html.get(..quote.start()).unwrap_or_default(),
                    html.get(quote.start()..).unwrap_or_default()
                ),
                None => html.to_string(),
            };
            let html = HTML_BLOCK.replace_all(&html, "<br><$1$2");
            let html = HTML_CELL.replace_all(&html, " | <$1");
            // A row starts with its first cell, not a separator; a labelled cell
            // (`Account:`) needs none either.
            html_to_text(&html)
                .lines()
                .map(|line| {
                    let line = line.trim_start();
                    let line = line.strip_prefix('|').unwrap_or(line).trim_start();
                    match line.split_once(':') {
                        Some((key, rest)) if rest.trim_start().starts_with('|') => {
                            let rest = rest.trim_start();
                            format!("{key}: {}", rest.get(1..).unwrap_or_default().trim_start())
                        }
                        _ => line.to_string(),
                    }
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
        _ => String::new(),
    };
    text.replace("\r\n", "\n").replace('\r', "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crlf(text: &str) -> Vec<u8> {
        text.replace('\n', "\r\n").into_bytes()
    }

    /// Regression: a subject whose encoded-word decodes to a trailing NUL (sisimai's
    /// make-test-31) could not be stored on PostgreSQL.
    #[test]
    fn a_nul_in_a_decoded_subject_or_the_text_is_replaced() {
        let raw = crlf(
            "From: a@nhs.example\n\
             Subject: =?ISO-8859-1?B?RXJyb3IA?=\n\
             X-Odd: one\u{0}two\n\
             \n\
             body\u{0}text\n",
        );
        let msg = parse(&raw);
        assert_eq!(msg.subject, "Error\u{FFFD}");
        assert_eq!(msg.text.trim_end(), "body\u{FFFD}text");
        assert!(
            msg.headers
                .iter()
                .all(|(n, v)| !n.contains('\0') && !v.contains('\0'))
        );
    }

    #[test]
    fn reads_the_envelope_of_an_ordinary_message() {
        let raw = crlf(
            "Return-Path: <Rosehill.Care@NHS.example>\n\
             From: \"Rosehill Care\" <Rosehill.Care@NHS.example>\n\
             Sender: Jane Doe <JANE.DOE@nhs.example>\n\
             Reply-To: <office@nhs.example>\n\
             To: helpdesk@nhs.example\n\
             Subject: =?utf-8?q?Password_reset_=E2=80=93?=\n =?utf-8?q?_Tom?=\n\
             Message-ID: <abc.123@nhs.example>\n\
             In-Reply-To: <first@nhs.example>\n\
             References: <first@nhs.example>\n <second@nhs.example>\n\
             X-Custom: one\n two\n\
             \n\
             Hello\n",
        );
        let msg = parse(&raw);
        assert!(!msg.unparsable);
        assert_eq!(msg.from.as_deref(), Some("rosehill.care@nhs.example"));
        assert_eq!(msg.from_name.as_deref(), Some("Rosehill Care"));
        assert_eq!(msg.sender.as_deref(), Some("jane.doe@nhs.example"));
        assert_eq!(msg.reply_to.as_deref(), Some("office@nhs.example"));
        assert_eq!(
            msg.return_path.as_deref(),
            Some("rosehill.care@nhs.example")
        );
        assert_eq!(msg.subject, "Password reset – Tom");
        assert_eq!(msg.message_id.as_deref(), Some("abc.123@nhs.example"));
        assert_eq!(msg.in_reply_to, ["first@nhs.example"]);
        assert_eq!(msg.references, ["first@nhs.example", "second@nhs.example"]);
        assert_eq!(msg.content_type, "text/plain");
        assert_eq!(msg.text, "Hello\n");
        assert_eq!(msg.size, raw.len());
        assert_eq!(msg.sha256, hex::encode(Sha256::digest(&raw)));
        // Headers keep message order, lower-case names, unfolded raw values; Subject decoded.
        assert_eq!(msg.header("x-custom"), Some("one two"));
        assert_eq!(msg.header("X-CUSTOM"), Some("one two"));
        assert_eq!(msg.header("subject"), Some("Password reset – Tom"));
        assert_eq!(msg.header("message-id"), Some("<abc.123@nhs.example>"));
        assert_eq!(
            msg.headers.first().map(|(n, _)| n.as_str()),
            Some("return-path")
        );
        assert_eq!(msg.header_values("references").count(), 1);
    }

    #[test]
    fn exchange_original_message_id_is_preferred() {
        let msg = parse(
            b"Message-ID: <rewritten@exchange>\r\nX-Microsoft-Original-Message-ID: <original@outlook>\r\n\r\nx",
        );
        assert_eq!(msg.message_id.as_deref(), Some("original@outlook"));
        let msg =
            parse(b"X-Microsoft-Original-Message-ID: <>\r\nMessage-Id: bare-id@host\r\n\r\nx");
        assert_eq!(msg.message_id.as_deref(), Some("bare-id@host"));
        let msg = parse(b"Subject: no id\r\n\r\nx");
        assert_eq!(msg.message_id, None);
    }

    #[test]
    fn null_return_path_is_distinguished_from_a_missing_one() {
        assert_eq!(
            parse(b"Return-Path: <>\r\nFrom: a@b.example\r\n\r\nx")
                .return_path
                .as_deref(),
            Some("")
        );
        assert_eq!(parse(b"From: a@b.example\r\n\r\nx").return_path, None);
    }

    #[test]
    fn missing_and_broken_addresses_are_none() {
        let msg = parse(b"From: just a name\r\nSubject: x\r\n\r\nbody");
        assert_eq!(msg.from, None);
        assert_eq!(msg.sender, None);
        assert_eq!(msg.subject, "x");
        let msg = parse(b"Subject: only\r\n\r\nbody");
        assert_eq!((msg.from, msg.from_name, msg.reply_to), (None, None, None));
    }

    #[test]
    fn unparsable_input_is_reported_not_panicked_on() {
        for raw in [
            &b""[..],
            b"\r\n\r\n",
            b"hello world with no header at all\n",
            &[0xff, 0xfe, 0x00, 0x9c, 0x80, 0x0a, 0x0d, 0xc3, 0x28][..],
            include_bytes!("../tests/fixtures/requests/garbage.eml"),
        ] {
            let msg = parse(raw);
            assert!(msg.unparsable, "{raw:?}");
            assert!(msg.headers.is_empty());
            assert_eq!(msg.size, raw.len());
            assert_eq!(msg.sha256.len(), 64);
        }
        // Headers without a body are still an email.
        assert!(!parse(b"Subject: hi\r\n").unparsable);
    }

    #[test]
    fn html_only_body_is_rendered_as_lines() {
        let raw = crlf(
            "From: a@b.example\n\
             Content-Type: text/html; charset=utf-8\n\
             \n\
             <html><head><style>p {color:red}</style></head><body>\
             <div>Hello,</div><div><b>Account:</b> tom.smith@nhs.example</div>\
             <div>Requested by:&nbsp;jane.doe@nhs.example</div>\
             <table><tr><td>Role:</td><td>member</td></tr></table>\
             <p>Thanks &amp; regards</p></body></html>\n",
        );
        let msg = parse(&raw);
        assert_eq!(msg.content_type, "text/html");
        let lines: Vec<&str> = msg
            .text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(
            lines,
            [
                "Hello,",
                "Account: tom.smith@nhs.example",
                "Requested by:\u{a0}jane.doe@nhs.example",
                "Role: member",
                "Thanks & regards"
            ]
        );
    }

    #[test]
    fn plain_alternative_is_preferred_over_html() {
        let raw = crlf(
            "From: a@b.example\n\
             Content-Type: multipart/alternative; boundary=\"b1\"\n\
             \n\
             --b1\n\
             Content-Type: text/plain; charset=utf-8\n\
             \n\
             plain version\n\
             --b1\n\
             Content-Type: text/html; charset=utf-8\n\
             \n\
             <p>html version</p>\n\
             --b1--\n",
        );
        let msg = parse(&raw);
        assert_eq!(msg.content_type, "multipart/alternative");
        assert_eq!(msg.text.trim(), "plain version");
    }

    #[test]
    fn transfer_encodings_and_charsets_are_decoded() {
        let qp = parse(&crlf(
            "From: a@b.example\nContent-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: quoted-printable\n\nName: Zo=C3=AB =\n=C3=85ngstr=C3=B6m\n",
        ));
        assert_eq!(qp.text.trim(), "Name: Zoë Ångström");
        let b64 = parse(&crlf(
            "From: a@b.example\nContent-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: base64\n\nQWNjb3VudDogdG9tLnNtaXRoQG5ocy5leGFtcGxl\n",
        ));
        assert_eq!(b64.text.trim(), "Account: tom.smith@nhs.example");
        let mut cp1252 = crlf(
            "From: a@b.example\nContent-Type: text/plain; charset=windows-1252\n\
             Content-Transfer-Encoding: 8bit\n\nName: Ren",
        );
        cp1252.extend_from_slice(b"\xe9e \x96 nights\r\n");
        assert_eq!(parse(&cp1252).text.trim(), "Name: Renée – nights");
        let mut latin1 =
            crlf("From: a@b.example\nContent-Type: text/plain; charset=iso-8859-1\n\n");
        latin1.extend_from_slice(b"Forename: Fran\xe7oise\r\n");
        assert_eq!(parse(&latin1).text.trim(), "Forename: Françoise");
    }

    #[test]
    fn shape_is_measured() {
        // The header section includes the blank line that ends it.
        let header = "From: a@b.example\r\nSubject: x\r\n\r\n";
        let single = parse(format!("{header}body").as_bytes());
        assert_eq!(
            (
                single.header_count,
                single.header_bytes,
                single.part_count,
                single.mime_depth
            ),
            (2, header.len(), 1, 0)
        );
        let nested = parse(&crlf(
            "From: a@b.example\n\
             Content-Type: multipart/mixed; boundary=\"outer\"\n\
             \n\
             --outer\n\
             Content-Type: multipart/alternative; boundary=\"inner\"\n\
             \n\
             --inner\n\
             Content-Type: text/plain\n\
             \n\
             plain\n\
             --inner\n\
             Content-Type: text/html\n\
             \n\
             <p>html</p>\n\
             --inner--\n\
             --outer\n\
             Content-Type: message/rfc822\n\
             \n\
             From: b@c.example\n\
             Subject: attached\n\
             \n\
             attached body\n\
             --outer--\n",
        ));
        assert_eq!(nested.header_count, 2);
        // mixed, alternative, plain, html, the message/rfc822 part and its root.
        assert_eq!(nested.part_count, 6);
        assert_eq!(nested.mime_depth, 2);
        assert_eq!(nested.text.trim(), "plain");
        let none = parse(b"");
        assert_eq!(
            (none.header_count, none.part_count, none.mime_depth),
            (0, 0, 0)
        );
    }

    #[test]
    fn line_endings_are_normalised() {
        assert_eq!(
            parse(b"From: a@b.example\r\n\r\none\r\ntwo\r\n").text,
            "one\ntwo\n"
        );
        assert_eq!(parse(b"From: a@b.example\r\rone\rtwo\r").text, "one\ntwo\n");
        assert_eq!(parse(b"From: a@b.example\n\none\ntwo\n").text, "one\ntwo\n");
    }

    #[test]
    fn stray_blank_lines_before_the_headers_are_skipped() {
        let msg = parse(b"   \r\n\r\nFrom: a@b.example\r\nSubject: x\r\n\r\nbody");
        assert!(!msg.unparsable);
        assert_eq!(msg.from.as_deref(), Some("a@b.example"));
        assert_eq!(msg.text, "body");
        assert!(parse(b" \r\n\t\r\n").unparsable);
    }

    #[test]
    fn multipart_report_is_the_top_level_type() {
        let msg = parse(include_bytes!(
            "../tests/fixtures/requests/bounce_multipart_report.eml"
        ));
        assert_eq!(msg.content_type, "multipart/report");
        assert_eq!(msg.from.as_deref(), Some("mailer-daemon@mail.nhs.example"));
        assert_eq!(msg.return_path.as_deref(), Some(""));
        assert!(msg.text.contains("could not"));
    }
}
