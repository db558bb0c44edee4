//! Shared by the `tests/daemon_*.rs` files: a throw-away helpdesk site on the real mail stack
//! (unique helpdesk and shared-mailbox users, a temp config, a database of its own — SQLite,
//! or PostgreSQL with `POSTROOM_TEST_BACKEND=postgres`, see `tests/common/testdb.rs` — and a
//! directory imported through the CLI), the real `postroom run` binary started and stopped by
//! signal, and request emails to send.
//!
//! Use from a test file with `mod common; mod daemon_support;`.
#![allow(dead_code)]

use crate::common::mailstack::MailStack;
use crate::common::testdb::TestDb;
use serde_json::Value;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The `authserv-id` the test config trusts; request emails carry a passing
/// `Authentication-Results` header stamped with it.
pub const AUTHSERV: &str = "mail.test.example";

pub struct Site {
    pub stack: MailStack,
    /// The site's database (dropped with the site on PostgreSQL).
    pub db: TestDb,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    /// The helpdesk's own mailbox: the daemon watches its INBOX.
    pub helpdesk: String,
    /// The shared mailbox that sends requests and receives the replies.
    pub mailbox: String,
    /// Directory accounts (no mail user needed): an owner, a member, a locked member.
    pub owner: String,
    pub member: String,
    pub locked: String,
    /// Not a member of the mailbox.
    pub outsider: String,
    token: String,
}

/// `("imap", "idle", "false")`: TOML values as written in the file.
pub type Setting<'a> = (&'a str, &'a str, &'a str);

impl Site {
    /// A site with the default test settings (IDLE on, `poll_interval = "1s"`,
    /// `reconnect_max = "2s"`, SMTP retries from 1 s), `overrides` replacing or adding keys.
    pub fn new(stack: &MailStack, overrides: &[Setting<'_>]) -> Site {
        Site::on(stack, overrides, TestDb::new)
    }

    /// Like [`new`](Self::new) on a database of the caller's choosing (`TestDb::postgres`
    /// for the tests that exist only for PostgreSQL); `db` gets the site's directory.
    pub fn on(
        stack: &MailStack,
        overrides: &[Setting<'_>],
        db: impl FnOnce(&std::path::Path) -> TestDb,
    ) -> Site {
        let helpdesk = stack.unique_user("hd");
        let mailbox = stack.unique_user("shared");
        let token = mailbox
            .split('@')
            .next()
            .unwrap_or("x")
            .trim_start_matches("shared-")
            .to_string();
        let dir = tempfile::Builder::new()
            .prefix("postroom-daemon-")
            .tempdir()
            .unwrap();
        let config = dir.path().join("postroom.toml");
        let db = db(dir.path());

        let q = |s: &str| format!("\"{s}\"");
        let mut settings: Vec<(String, String, String)> = vec![
            ("database", "url", q(&db.url)),
            // A daemon killed by a test leaves its inbox's lease behind; the next one takes
            // over after this (the shortest allowed), not after the default 20 s.
            ("database", "lease_ttl", q("4s")),
            ("helpdesk", "address", q(&helpdesk)),
            ("helpdesk", "name", q("Test Helpdesk")),
            ("helpdesk", "reference_prefix", q("HD")),
            ("trust", "mode", q("authentication_results")),
            ("trust", "authserv_id", q(AUTHSERV)),
            ("confirmation", "enabled", "false".into()),
            ("imap", "host", q("127.0.0.1")),
            ("imap", "port", stack.imap_port.to_string()),
            ("imap", "tls", q("none")),
            ("imap", "username", q(&helpdesk)),
            ("imap", "password", q(&stack.password)),
            ("imap", "poll_interval", q("1s")),
            ("imap", "reconnect_max", q("2s")),
            ("imap", "timeout", q("10s")),
            ("smtp", "host", q("127.0.0.1")),
            ("smtp", "port", stack.smtp_port.to_string()),
            ("smtp", "tls", q("none")),
            ("smtp", "timeout", q("10s")),
            ("smtp", "retry_initial", q("1s")),
            ("smtp", "retry_max", q("2s")),
            // Many daemons run at once: each staff page on a port of its own.
            ("web", "listen", q("127.0.0.1:0")),
        ]
        .into_iter()
        .map(|(s, k, v)| (s.to_string(), k.to_string(), v))
        .collect();
        for (section, key, value) in overrides {
            settings.retain(|(s, k, _)| !(s == section && k == key));
            settings.push((section.to_string(), key.to_string(), value.to_string()));
        }
        let mut text = String::new();
        for section in [
            "database",
            "helpdesk",
            "trust",
            "confirmation",
            "policy",
            "limits",
            "imap",
            "lmtp",
            "smtp",
            "web",
            "audit",
            "continuity",
            "directory",
            "runtime",
        ] {
            let keys: Vec<_> = settings.iter().filter(|(s, _, _)| s == section).collect();
            if keys.is_empty() {
                continue;
            }
            text.push_str(&format!("[{section}]\n"));
            for (_, k, v) in keys {
                text.push_str(&format!("{k} = {v}\n"));
            }
            text.push('\n');
        }
        std::fs::write(&config, text).unwrap();

        let site = Site {
            stack: stack.clone(),
            db,
            owner: format!("owner-{token}@test.example"),
            member: format!("member-{token}@test.example"),
            locked: format!("locked-{token}@test.example"),
            outsider: format!("outsider-{token}@test.example"),
            helpdesk,
            mailbox,
            dir,
            config,
            token,
        };
        let csv = site.dir.path().join("directory.csv");
        std::fs::write(
            &csv,
            format!(
                "organisation,mailbox,account,name,role,status\n\
                 Test Care {t},{mb},,,,\n\
                 Test Care {t},{mb},{owner},Olive Owner,owner,active\n\
                 Test Care {t},{mb},{member},Mel Member,member,active\n\
                 Test Care {t},{mb},{locked},Kim Locked,member,locked\n\
                 Test Care {t},,{outsider},Otto Outsider,,active\n",
                t = site.token,
                mb = site.mailbox,
                owner = site.owner,
                member = site.member,
                locked = site.locked,
                outsider = site.outsider,
            ),
        )
        .unwrap();
        let out = site.cli(&["directory", "import", csv.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "directory import: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        site
    }

    /// The `[database]` settings of the site's config, for tests that look at the database
    /// through the Store.
    pub fn database(&self) -> postroom::config::DatabaseConfig {
        postroom::config::Config::load(&self.config)
            .unwrap()
            .database
    }

    /// The site's organisation in the directory (every account above belongs to it).
    pub fn organisation(&self) -> String {
        format!("Test Care {}", self.token)
    }

    /// The token that makes this site's addresses unique (`locked-TOKEN@test.example`).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// `postroom --config … ARGS`, run to completion.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.command().args(args).output().unwrap()
    }

    /// Like [`cli`](Self::cli) with another config file.
    pub fn cli_with(&self, config: &std::path::Path, args: &[&str]) -> std::process::Output {
        self.command_with(config).args(args).output().unwrap()
    }

    fn command(&self) -> Command {
        self.command_with(&self.config)
    }

    fn command_with(&self, config: &std::path::Path) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("postroom"));
        c.arg("--config").arg(config);
        for (k, _) in std::env::vars() {
            if k.starts_with("POSTROOM_") {
                c.env_remove(k);
            }
        }
        c
    }

    /// Start `postroom run` (human logs, `info,postroom=debug`); waits until the IMAP
    /// session is ready.
    pub fn start(&self) -> Daemon {
        self.start_with(&[], false)
    }

    /// Start with extra environment variables and, if `json`, `--log-format json`. Waits
    /// until the IMAP session is ready.
    pub fn start_with(&self, env: &[(&str, &str)], json: bool) -> Daemon {
        let d = self.spawn(env, json);
        d.wait_log("IMAP session ready", Duration::from_secs(20));
        d
    }

    /// Start without waiting for anything.
    pub fn spawn(&self, env: &[(&str, &str)], json: bool) -> Daemon {
        static N: AtomicU32 = AtomicU32::new(0);
        let log = self
            .dir
            .path()
            .join(format!("run-{}.log", N.fetch_add(1, Ordering::Relaxed)));
        let mut c = self.command();
        if json {
            c.args(["--log-format", "json"]);
        }
        c.arg("run")
            .env("POSTROOM_LOG", "info,postroom=debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(File::create(&log).unwrap()));
        for (k, v) in env {
            c.env(k, v);
        }
        let child = c.spawn().unwrap();
        Daemon { child, log }
    }

    /// The audit trail, one JSON value per event.
    pub fn audit(&self) -> Vec<Value> {
        let out = self.cli(&["audit"]);
        assert!(
            out.status.success(),
            "audit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Audit events with this action (`account.unlocked`, `request.applied`, …).
    pub fn audit_count(&self, action: &str) -> usize {
        self.audit()
            .iter()
            .filter(|e| e["action"] == action)
            .count()
    }

    // ------------------------------------------------------------------ requests

    /// A request from the shared mailbox to the helpdesk, with a passing
    /// Authentication-Results stamped by [`AUTHSERV`]. Returns (Message-ID without <>, bytes).
    pub fn request(&self, subject: &str, extra_headers: &str, body: &str) -> (String, Vec<u8>) {
        self.request_from(&self.mailbox, subject, extra_headers, body)
    }

    /// Like [`request`](Self::request), from another shared mailbox of the directory.
    pub fn request_from(
        &self,
        mailbox: &str,
        subject: &str,
        extra_headers: &str,
        body: &str,
    ) -> (String, Vec<u8>) {
        static N: AtomicU32 = AtomicU32::new(0);
        let id = format!(
            "req-{}-{}-{}@test.example",
            self.token,
            N.fetch_add(1, Ordering::Relaxed),
            std::process::id()
        );
        let raw = format!(
            "Authentication-Results: {AUTHSERV}; dkim=pass header.d=test.example header.s=s1; \
             dmarc=pass header.from=test.example\r\n\
             From: Test Care <{mb}>\r\n\
             To: Helpdesk <{hd}>\r\n\
             Subject: {subject}\r\n\
             Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\
             Message-ID: <{id}>\r\n\
             {extra_headers}\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=\"utf-8\"\r\n\
             \r\n\
             {body}",
            mb = mailbox,
            hd = self.helpdesk,
            body = body.replace('\n', "\r\n"),
        );
        (id, raw.into_bytes())
    }

    /// Unlock of the locked member asked by the owner: applied.
    pub fn unlock_request(&self) -> (String, Vec<u8>) {
        self.request(
            "Locked out",
            "",
            &format!(
                "Hi,\n\nKim is locked out of her account, please unlock it.\n\nAccount: {}\nRequested by: {}\n\nOlive\n",
                self.locked, self.owner
            ),
        )
    }

    /// The same asked by a mere member: rejected (requester_not_owner).
    pub fn rejected_request(&self) -> (String, Vec<u8>) {
        self.request(
            "Locked out",
            "",
            &format!(
                "Hi,\n\nKim is locked out of her account, please unlock it.\n\nAccount: {}\nRequested by: {}\n\nMel\n",
                self.locked, self.member
            ),
        )
    }

    /// No recognisable request: held for review (unknown_kind).
    pub fn review_request(&self) -> (String, Vec<u8>) {
        self.request(
            "Question",
            "",
            &format!("Hello, can you help?\n\nRequested by: {}\n", self.owner),
        )
    }

    /// An out-of-office answer: ignored (not_a_request), no reply.
    pub fn ignored_message(&self, padding: usize) -> (String, Vec<u8>) {
        let filler = "x".repeat(75);
        let mut body = String::from("I am out of the office until Monday.\n");
        while body.len() < padding {
            body.push_str(&filler);
            body.push('\n');
        }
        self.request("Out of office", "Auto-Submitted: auto-replied\r\n", &body)
    }
}

pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log contains `needle`; panics with the log after `timeout`, or when the
    /// process exits first.
    pub fn wait_log(&self, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "daemon log has no {needle:?} after {timeout:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Number of log lines containing `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig} {}", self.pid());
    }

    /// Waits for the process to end, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM; asserts a clean exit (status 0) within 5 seconds. Returns the log.
    pub fn stop(mut self) -> String {
        let started = Instant::now();
        self.signal("TERM");
        let status = self.wait_exit(Duration::from_secs(5));
        let log = self.log();
        match status {
            Some(s) => assert!(
                s.success(),
                "postroom run exited with {s} after SIGTERM:\n{log}"
            ),
            None => panic!(
                "postroom run still running {:?} after SIGTERM:\n{log}",
                started.elapsed()
            ),
        }
        log
    }

    /// Peak resident memory (VmHWM) in kB, from /proc.
    pub fn peak_rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ------------------------------------------------------------------------- mail

/// The value of header `name` (first occurrence, unfolded), if any.
pub fn header(raw: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut value: Option<String> = None;
    for line in head.split("\r\n") {
        if let Some(v) = value.as_mut() {
            if line.starts_with(' ') || line.starts_with('\t') {
                v.push(' ');
                v.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((n, v)) = line.split_once(':')
            && n.eq_ignore_ascii_case(name)
        {
            value = Some(v.trim().to_string());
        }
    }
    value
}

pub fn contains(raw: &[u8], needle: &str) -> bool {
    raw.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Polls until `check` is true; panics with `what` after `timeout`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < deadline, "not within {timeout:?}: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
