//! Access to the throw-away mail stack (private Dovecot + Postfix on loopback ports)
//! that `tests/mailstack/mailstack.sh start DIR` runs and describes in `DIR/env`.
//! `scripts/test` starts it and exports the `MAILSTACK_*` variables before
//! `cargo test`; tests call [`MailStack::require`], so a missing stack fails the test
//! instead of skipping it.
//!
//! - Every user shares one password ([`MailStack::password`], `secret`).
//! - Pre-created users: helpdesk@, rosehill.care@, oakview.gp@, jane.doe@ and
//!   raj.patel@nhs.example. Tests that count messages should use
//!   [`MailStack::unique_user`] so parallel tests never share an inbox.
//! - Postfix accepts mail from loopback for any address in `nhs.example` and
//!   `test.example` and delivers it to Dovecot over LMTP; unknown users bounce
//!   (550 from Dovecot); any other domain is refused at RCPT time.
//! - The IMAP hierarchy separator is `/`; APPEND through this helper creates the
//!   folder first.
//! - Tests that stop or restart a server get the stack with
//!   [`MailStack::require_exclusive`]; every other [`MailStack`] holds a shared lock
//!   (flock on `DIR/use.lock`) for as long as it lives, so a restart never happens
//!   under a running test, in this binary or another (nextest). Do not keep a
//!   `MailStack` in a `static`, and do not hold a shared one while asking for the
//!   exclusive one: that waits forever (the wait panics after [`LOCK_WAIT`]).
//! - The helpers also retry a whole IMAP/SMTP operation on errors for up to
//!   [`RETRY_FOR`].

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_imap::Session;
use futures::TryStreamExt;
use lettre::address::Envelope;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::net::TcpStream;

/// How long a helper keeps retrying an IMAP or SMTP operation that fails.
pub const RETRY_FOR: Duration = Duration::from_secs(20);
/// How long [`MailStack::require`] / [`MailStack::require_exclusive`] wait for the
/// use lock before panicking (a test holding both would otherwise hang CI).
pub const LOCK_WAIT: Duration = Duration::from_secs(600);
/// Bound on one IMAP/SMTP exchange (async-imap has no timeouts of its own).
const OP_TIMEOUT: Duration = Duration::from_secs(15);

const HOW_TO_START: &str = "the test mail stack is not running (MAILSTACK_* variables unset).\n\
     Run the tests with `scripts/test` (it installs Dovecot + Postfix, starts them and runs \
     cargo test), or by hand, as root:\n    \
     tests/mailstack/mailstack.sh install\n    \
     d=$(mktemp -d) && chmod 0755 $d && tests/mailstack/mailstack.sh start $d\n    \
     . $d/env && cargo test\n    \
     tests/mailstack/mailstack.sh stop $d";

#[derive(Debug, Clone)]
pub struct MailStack {
    /// The stack's directory (mail, logs, config).
    pub dir: PathBuf,
    pub imap_host: String,
    /// Plain IMAP (STARTTLS offered, LOGIN allowed without it).
    pub imap_port: u16,
    /// IMAP over implicit TLS; the server certificate is signed by `tls_ca`.
    pub imaps_port: Option<u16>,
    /// Postfix SMTP, no auth needed from loopback, STARTTLS offered.
    pub smtp_port: u16,
    /// Postfix SMTP over implicit TLS (RFC 8314); certificate signed by `tls_ca`.
    pub smtps_port: Option<u16>,
    /// Dovecot LMTP (Postfix delivers here).
    pub lmtp_port: u16,
    /// Every test user's password.
    pub password: String,
    /// PEM of the throw-away CA that signed the IMAPS/STARTTLS certificate.
    pub tls_ca: Option<PathBuf>,
    /// The ldapstack env file whose directory Dovecot also authenticates against
    /// (`MAILSTACK_LDAP_ENV` at start; see tests/common/ldapstack.rs), if any.
    pub ldap_env: Option<PathBuf>,
    users_file: PathBuf,
    script: PathBuf,
    use_lock: Arc<UseLock>,
}

/// A shared or exclusive flock on `DIR/use.lock`, released on drop. Dropping an
/// exclusive one first runs the script's start commands for whatever its test left
/// stopped (even when the test panicked), so one failing restart test cannot take the
/// other tests down with it. Also used by [`super::ldapstack`].
#[derive(Debug)]
pub(super) struct UseLock {
    _file: File,
    pub(super) exclusive: bool,
    restore: Option<(PathBuf, PathBuf, &'static [&'static str])>,
}

impl Drop for UseLock {
    fn drop(&mut self) {
        if let Some((script, dir, commands)) = self.restore.take() {
            let name = script
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            for &command in commands {
                match Command::new("bash")
                    .arg(&script)
                    .arg(command)
                    .arg(&dir)
                    .output()
                {
                    Ok(out) if out.status.success() => {}
                    Ok(out) => eprintln!(
                        "{name}: {command} after an exclusive test failed:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    ),
                    Err(e) => eprintln!("{name}: {command}: {e}"),
                }
            }
        }
    }
}

impl UseLock {
    /// `restore`: the script's commands that start what an exclusive test may stop.
    pub(super) fn take(
        dir: &Path,
        script: &Path,
        exclusive: bool,
        restore: &'static [&'static str],
    ) -> UseLock {
        let name = script
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let path = dir.join("use.lock");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .or_else(|_| File::open(&path))
            .unwrap_or_else(|e| panic!("{name}: open {}: {e}", path.display()));
        // Blocking flock in a helper thread, so that the wait can be bounded.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let result = if exclusive {
                file.lock()
            } else {
                file.lock_shared()
            };
            let _ = tx.send(result.map(|()| file));
        });
        let kind = if exclusive { "exclusive" } else { "shared" };
        match rx.recv_timeout(LOCK_WAIT) {
            Ok(Ok(file)) => UseLock {
                _file: file,
                exclusive,
                restore: exclusive.then(|| (script.to_path_buf(), dir.to_path_buf(), restore)),
            },
            Ok(Err(e)) => panic!("{name}: {kind} lock on {}: {e}", path.display()),
            Err(_) => panic!(
                "{name}: waited {LOCK_WAIT:?} for {kind} use of the stack ({}). \
                 Does this test hold a require() while asking for \
                 require_exclusive(), or is one kept in a static?",
                path.display()
            ),
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_port(name: &str) -> Option<u16> {
    let v = env(name)?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a port number")),
    )
}

impl MailStack {
    /// The stack described by the `MAILSTACK_*` variables, if they are set. Holds a
    /// shared use lock while it (or a clone) lives.
    pub fn from_env() -> Option<MailStack> {
        MailStack::from_env_locked(false)
    }

    fn from_env_locked(exclusive: bool) -> Option<MailStack> {
        let dir = PathBuf::from(env("MAILSTACK_DIR")?);
        let users_file = env("MAILSTACK_USERS_FILE")
            .map(PathBuf::from)
            .unwrap_or_else(|| dir.join("users"));
        let script = env("MAILSTACK_SCRIPT")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mailstack/mailstack.sh")
            });
        let use_lock = Arc::new(UseLock::take(
            &dir,
            &script,
            exclusive,
            &["start-dovecot", "start-postfix"],
        ));
        Some(MailStack {
            imap_host: env("MAILSTACK_IMAP_HOST").unwrap_or_else(|| "127.0.0.1".into()),
            imap_port: env_port("MAILSTACK_IMAP_PORT")?,
            imaps_port: env_port("MAILSTACK_IMAPS_PORT"),
            smtp_port: env_port("MAILSTACK_SMTP_PORT")?,
            smtps_port: env_port("MAILSTACK_SMTPS_PORT"),
            lmtp_port: env_port("MAILSTACK_LMTP_PORT")?,
            password: env("MAILSTACK_PASSWORD")?,
            tls_ca: env("MAILSTACK_TLS_CA").map(PathBuf::from),
            ldap_env: env("MAILSTACK_LDAP_ENV").map(PathBuf::from),
            users_file,
            script,
            use_lock,
            dir,
        })
    }

    /// The running stack; panics with instructions when there is none. Waits while
    /// a test has it exclusively (see [`require_exclusive`](Self::require_exclusive)).
    pub fn require() -> MailStack {
        match MailStack::from_env_locked(false) {
            Some(stack) => stack,
            None => panic!("{HOW_TO_START}"),
        }
    }

    /// The running stack for a test that stops, starts or restarts Dovecot or
    /// Postfix: waits until no other test uses the stack, and keeps them out until
    /// dropped. When the last clone is dropped, Dovecot and Postfix are started
    /// again if the test left them stopped.
    pub fn require_exclusive() -> MailStack {
        match MailStack::from_env_locked(true) {
            Some(stack) => stack,
            None => panic!("{HOW_TO_START}"),
        }
    }

    pub fn users_file(&self) -> &Path {
        &self.users_file
    }

    // ------------------------------------------------------------------ users

    /// Adds `address` (lowercased) with the shared password, unless present. Safe from
    /// parallel tests and processes (flock on `users.lock`, as the script does).
    /// Returns once Dovecot is sure to see the user: Dovecot stat()s the passwd-file
    /// at most once per second, so this waits for the clock to pass the file's mtime
    /// (up to 1 s) after appending.
    pub fn add_user(&self, address: &str) {
        self.add_users(&[address]);
    }

    /// [`add_user`](Self::add_user) for several addresses at once: one append and one wait
    /// for Dovecot's once-a-second look at the file, however many.
    pub fn add_users(&self, addresses: &[&str]) {
        let addresses: Vec<String> = addresses.iter().map(|a| a.to_ascii_lowercase()).collect();
        for address in &addresses {
            assert!(
                address.contains('@')
                    && !address.contains(':')
                    && !address.contains(char::is_whitespace),
                "bad test address {address:?}"
            );
        }
        let lock_path = PathBuf::from(format!("{}.lock", self.users_file.display()));
        let lock = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lock_path)
            .unwrap_or_else(|e| panic!("open {}: {e}", lock_path.display()));
        lock.lock()
            .unwrap_or_else(|e| panic!("lock {}: {e}", lock_path.display()));

        let existing = std::fs::read_to_string(&self.users_file).unwrap_or_default();
        let known: std::collections::HashSet<&str> = existing
            .lines()
            .filter_map(|line| line.split(':').next())
            .collect();
        let lines: String = addresses
            .iter()
            .filter(|a| !known.contains(a.as_str()))
            .map(|a| format!("{a}:{{PLAIN}}{}\n", self.password))
            .collect();
        if lines.is_empty() {
            return;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.users_file)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.users_file.display()));
        // One write() of whole lines: Dovecot never reads half of one.
        file.write_all(lines.as_bytes())
            .unwrap_or_else(|e| panic!("append to {}: {e}", self.users_file.display()));
        let mtime = file
            .metadata()
            .and_then(|m| m.modified())
            .map(unix_secs)
            .unwrap_or_else(|_| unix_secs(SystemTime::now()));
        while unix_secs(SystemTime::now()) <= mtime {
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(lock);
    }

    /// A fresh address `PREFIX-<pid>-<stamp>-<n>@test.example`, added as a user.
    pub fn unique_user(&self, prefix: &str) -> String {
        let address = self.unique_address(prefix);
        self.add_user(&address);
        address
    }

    /// `n` fresh users at once (see [`add_users`](Self::add_users)).
    pub fn unique_users(&self, prefix: &str, n: usize) -> Vec<String> {
        let addresses: Vec<String> = (0..n).map(|_| self.unique_address(prefix)).collect();
        let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
        self.add_users(&refs);
        addresses
    }

    /// A fresh address `PREFIX-<pid>-<stamp>-<n>@test.example`, not added.
    fn unique_address(&self, prefix: &str) -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        static STAMP: OnceLock<u64> = OnceLock::new();
        // The stamp keeps addresses unique across runs against one long-lived stack.
        let stamp = *STAMP.get_or_init(|| unix_secs(SystemTime::now()) % 1_000_000);
        let prefix: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}-{}-{stamp}-{n}@test.example", std::process::id())
    }

    // ------------------------------------------------------------------- SMTP

    /// Submits `raw` to Postfix with the given envelope (`""` as sender gives the
    /// null reverse-path of a bounce). Panics if Postfix does not accept it.
    pub async fn send(&self, envelope_from: &str, to: &[&str], raw: &[u8]) {
        if let Err(e) = self.try_send(envelope_from, to, raw).await {
            panic!(
                "mailstack: SMTP to 127.0.0.1:{} failed: {e}",
                self.smtp_port
            );
        }
    }

    /// Like [`send`](Self::send) but returns Postfix's refusal (e.g. a 5xx for a
    /// domain outside nhs.example/test.example) instead of panicking. Connection
    /// failures are retried for up to [`RETRY_FOR`]; SMTP refusals are not.
    pub async fn try_send(
        &self,
        envelope_from: &str,
        to: &[&str],
        raw: &[u8],
    ) -> Result<(), String> {
        let from = if envelope_from.is_empty() {
            None
        } else {
            Some(parse_address(envelope_from)?)
        };
        let rcpts = to
            .iter()
            .map(|a| parse_address(a))
            .collect::<Result<Vec<_>, _>>()?;
        let envelope = Envelope::new(from, rcpts).map_err(|e| e.to_string())?;
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            let transport: AsyncSmtpTransport<Tokio1Executor> =
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous("127.0.0.1")
                    .port(self.smtp_port)
                    .timeout(Some(OP_TIMEOUT))
                    .build();
            match transport.send_raw(&envelope, raw).await {
                Ok(_) => return Ok(()),
                // A status code means Postfix answered: its verdict stands.
                Err(e) if e.status().is_some() => return Err(e.to_string()),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(format!("{e} (retried for {RETRY_FOR:?})")),
            }
        }
    }

    // ------------------------------------------------------------------- IMAP

    /// A logged-in IMAP session for `user` (plain TCP, shared password).
    pub async fn imap_login(&self, user: &str) -> Result<Session<TcpStream>, String> {
        self.imap_login_with(user, &self.password).await
    }

    /// A logged-in IMAP session for `user` with `password` (plain TCP): for accounts
    /// whose password is not the shared one, e.g. people in the test directory. One
    /// attempt, no retry: a refusal is the answer (Dovecot delays it by 2 s).
    pub async fn imap_login_with(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Session<TcpStream>, String> {
        let addr = (self.imap_host.as_str(), self.imap_port);
        let tcp = within("connect", TcpStream::connect(addr)).await?;
        let mut client = async_imap::Client::new(tcp);
        // async-imap does not read the server greeting by itself.
        match within("greeting", client.read_response()).await? {
            Some(_) => {}
            None => return Err("connection closed before the IMAP greeting".into()),
        }
        match tokio::time::timeout(OP_TIMEOUT, client.login(user, password)).await {
            Err(_) => Err("LOGIN timed out".into()),
            Ok(Err((e, _))) => Err(format!("LOGIN {user}: {e}")),
            Ok(Ok(session)) => Ok(session),
        }
    }

    /// Every message in `folder` of `user`, raw, in UID order (`BODY.PEEK[]`: nothing
    /// is marked seen). A folder that does not exist yet gives an empty list.
    pub async fn fetch_all(&self, user: &str, folder: &str) -> Vec<Vec<u8>> {
        self.retrying(&format!("fetch {user} {folder}"), || async {
            let mut session = self.imap_login(user).await?;
            let mailbox = match within("SELECT", session.select(folder)).await {
                Ok(m) => m,
                Err(e) if e.contains("NONEXISTENT") || e.contains("doesn't exist") => {
                    let _ = session.logout().await;
                    return Ok(Vec::new());
                }
                Err(e) => return Err(e),
            };
            // async-imap 0.12 returns Ok(Mailbox::default()) from SELECT and STATUS (and
            // Ok(()) from NOOP) when the server closes the connection before the tagged
            // reply; Dovecot always sends UIDVALIDITY, so its absence means "lost".
            if mailbox.uid_validity.is_none() {
                return Err("connection lost during SELECT".into());
            }
            let mut messages = Vec::new();
            if mailbox.exists > 0 {
                let fetches: Vec<_> = within("UID FETCH", async {
                    session
                        .uid_fetch("1:*", "BODY.PEEK[]")
                        .await?
                        .try_collect::<Vec<_>>()
                        .await
                })
                .await?;
                let mut with_uid: Vec<(u32, Vec<u8>)> = fetches
                    .iter()
                    .map(|f| (f.uid.unwrap_or(0), f.body().unwrap_or_default().to_vec()))
                    .collect();
                with_uid.sort_by_key(|(uid, _)| *uid);
                messages = with_uid.into_iter().map(|(_, body)| body).collect();
            }
            let _ = session.logout().await;
            Ok(messages)
        })
        .await
    }

    /// Polls `folder` until it holds at least `n` messages and returns them all;
    /// panics with what it found after `timeout`.
    pub async fn wait_for(
        &self,
        user: &str,
        folder: &str,
        n: usize,
        timeout: Duration,
    ) -> Vec<Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.fetch_all(user, folder).await;
            if messages.len() >= n {
                return messages;
            }
            if Instant::now() >= deadline {
                let folders = self.folders(user).await;
                panic!(
                    "mailstack: {user} has {} message(s) in {folder:?} after {timeout:?}, \
                     expected at least {n} (folders: {folders:?}; delivery log: {})",
                    messages.len(),
                    self.dir.join("postfix.log").display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// APPENDs `raw` to `folder` of `user` (creating the folder if needed), bypassing
    /// Postfix: the way to drop a request straight into the helpdesk inbox.
    pub async fn append(&self, user: &str, folder: &str, raw: &[u8]) {
        self.retrying(&format!("append to {user} {folder}"), || async {
            let mut session = self.imap_login(user).await?;
            if !folder.eq_ignore_ascii_case("INBOX") {
                // Fails when the folder exists, which is fine.
                let _ = within("CREATE", session.create(folder)).await;
            }
            within("APPEND", session.append(folder, None, None, raw)).await?;
            let _ = session.logout().await;
            Ok(())
        })
        .await
    }

    /// Number of messages in `folder` (STATUS MESSAGES); 0 if it does not exist.
    pub async fn folder_count(&self, user: &str, folder: &str) -> usize {
        self.retrying(&format!("count {user} {folder}"), || async {
            let mut session = self.imap_login(user).await?;
            let status = within("STATUS", session.status(folder, "(MESSAGES UIDVALIDITY)"));
            let count = match status.await {
                // No UIDVALIDITY: the connection closed early (see fetch_all).
                Ok(m) if m.uid_validity.is_none() => {
                    return Err("connection lost during STATUS".into());
                }
                Ok(m) => m.exists as usize,
                Err(e) if e.contains("NONEXISTENT") || e.contains("doesn't exist") => 0,
                Err(e) => return Err(e),
            };
            let _ = session.logout().await;
            Ok(count)
        })
        .await
    }

    /// Names of all folders of `user`.
    pub async fn folders(&self, user: &str) -> Vec<String> {
        self.retrying(&format!("list {user}"), || async {
            let mut session = self.imap_login(user).await?;
            let names = within("LIST", async {
                session
                    .list(Some(""), Some("*"))
                    .await?
                    .try_collect::<Vec<_>>()
                    .await
            })
            .await?;
            let mut names: Vec<String> = names.iter().map(|n| n.name().to_string()).collect();
            names.sort();
            let _ = session.logout().await;
            Ok(names)
        })
        .await
    }

    async fn retrying<T, F, Fut>(&self, what: &str, mut op: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, String>>,
    {
        let deadline = Instant::now() + RETRY_FOR;
        loop {
            match op().await {
                Ok(v) => return v,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!(
                    "mailstack: {what} failed for {RETRY_FOR:?}, last error: {e} (Dovecot log: {})",
                    self.dir.join("dovecot.log").display()
                ),
            }
        }
    }

    // ------------------------------------------------------- server control

    // Each of these needs a stack from `require_exclusive()`.

    /// Stops Dovecot (open IMAP sessions are cut). Blocks until it is down.
    pub fn stop_dovecot(&self) {
        self.script("stop-dovecot");
    }

    /// Starts Dovecot again; blocks until IMAP and LMTP answer.
    pub fn start_dovecot(&self) {
        self.script("start-dovecot");
    }

    pub fn restart_dovecot(&self) {
        self.script("restart-dovecot");
    }

    /// Stops Postfix: SMTP submissions are refused until [`start_postfix`].
    pub fn stop_postfix(&self) {
        self.script("stop-postfix");
    }

    pub fn start_postfix(&self) {
        self.script("start-postfix");
    }

    // ------------------------------------------------------- routes (any test)

    /// Postfix delivers mail for `address` to `127.0.0.1:port` over LMTP (a postroom LMTP
    /// listener, issue 18) instead of Dovecot, from when this returns (the reload has
    /// taken). Other tests' addresses are untouched, so a shared stack is enough.
    pub fn route_to_lmtp(&self, address: &str, port: u16) {
        self.run_script(&["route-lmtp", address, &port.to_string()]);
    }

    /// Postfix tries its deferred mail now (`postqueue -f`) instead of at its next queue
    /// run.
    pub fn flush(&self) {
        self.run_script(&["flush"]);
    }

    fn script(&self, command: &str) {
        assert!(
            self.use_lock.exclusive,
            "mailstack: {command} needs MailStack::require_exclusive(): other tests use the \
             stack in parallel"
        );
        self.run_script(&[command]);
    }

    fn run_script(&self, args: &[&str]) {
        let (command, rest) = args.split_first().expect("a command");
        let out = Command::new("bash")
            .arg(&self.script)
            .arg(command)
            .arg(&self.dir)
            .args(rest)
            .output()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.script.display()));
        assert!(
            out.status.success(),
            "mailstack.sh {command} {} failed ({}):\n{}{}",
            self.dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn parse_address(a: &str) -> Result<Address, String> {
    a.parse::<Address>()
        .map_err(|e| format!("bad address {a:?}: {e}"))
}

/// Runs `fut` under [`OP_TIMEOUT`], flattening both failures into a message.
async fn within<T, E: std::fmt::Display>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(OP_TIMEOUT, fut).await {
        Err(_) => Err(format!("{what} timed out after {OP_TIMEOUT:?}")),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Ok(Ok(v)) => Ok(v),
    }
}
