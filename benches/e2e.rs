//! End to end (issue 7, parts 2–4): the real `postroom run` (release build) against a private
//! Dovecot + Postfix on loopback, started by `scripts/bench`.
//!
//! 1. Throughput: `BENCH_MESSAGES` (2,000) request emails waiting in the helpdesk INBOX; time
//!    from starting `postroom run` until every reply is `sent` in the outbox (Postfix took
//!    it). Baseline in the same run: a minimal client (UID FETCH per batch, one SMTP reply
//!    per message over 1 or 4 connections with TCP_NODELAY, UID MOVE per batch; no parsing,
//!    no database).
//! 2. Latency: the daemon idle in IMAP IDLE, one request APPENDed every 100 ms for
//!    `BENCH_LATENCY_SECS` (60); APPEND done → outbox `sent_at` (Unix ms, set once Postfix
//!    accepted the reply). p50/p95/p99.
//! 3. LMTP (issue 18): `postroom run` with `[lmtp] listen`, the stack's Postfix routing the
//!    site's helpdesk address to it (`mailstack.sh route-lmtp`); one request every 100 ms for
//!    `BENCH_LATENCY_SECS` sent to Postfix's SMTP port; Postfix's `250` for the request →
//!    outbox `sent_at`. p50/p95/p99 (target p99 < 50 ms). Then `BENCH_MESSAGES` requests sent
//!    to Postfix at once over 4 connections: req/s until every reply is sent.
//! 4. Memory: peak RSS (VmHWM) of `postroom run` draining `BENCH_DRAIN` (10,000) waiting
//!    requests, and handling one ~`BENCH_BIG_MB` (10) MB message under a 12 MB limit.
//!
//! Needs the `MAILSTACK_*` variables (`source DIR/env` of `tests/mailstack/mailstack.sh
//! start DIR`) and `target/release/postroom`. Without `--bench` (as `cargo test` runs bench
//! targets) it does nothing and exits 0.
//!
//! Prints a table and, last, one line of JSON.

use async_imap::Session;
use futures::TryStreamExt;
use lettre::address::Envelope;
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::extension::ClientId;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;

const AUTHSERV: &str = "mail.bench.example";
/// Locked accounts in each site's directory; requests unlock them in turn (the first round is
/// applied, later rounds are answered "already active": every request gets a reply).
const LOCKED: usize = 200;

#[path = "support/cpu_meter.rs"]
mod cpu_meter;
use cpu_meter::{Meter, Spent, stat_cpu_ms};

type R<T> = Result<T, String>;

/// Daemons and temp dirs to clean up when [`die`] exits (process::exit runs no destructors).
static LEFTOVERS: std::sync::Mutex<(Vec<u32>, Vec<PathBuf>)> =
    std::sync::Mutex::new((Vec::new(), Vec::new()));

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("e2e: ERROR: {msg}");
    if let Ok(l) = LEFTOVERS.lock() {
        for pid in &l.0 {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        for dir in &l.1 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
    std::process::exit(1);
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| die(format!("{name}={v:?} is not a number"))),
        _ => default,
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[derive(Clone)]
struct Stack {
    imap_port: u16,
    smtp_port: u16,
    password: String,
    users_file: PathBuf,
}

impl Stack {
    fn from_env() -> Stack {
        let var = |n: &str| {
            std::env::var(n).unwrap_or_else(|_| {
                die(format!(
                    "{n} is not set: start the mail stack first (run scripts/bench as root)"
                ))
            })
        };
        let port = |n: &str| {
            var(n)
                .parse::<u16>()
                .unwrap_or_else(|_| die(format!("{n} is not a port")))
        };
        Stack {
            imap_port: port("MAILSTACK_IMAP_PORT"),
            smtp_port: port("MAILSTACK_SMTP_PORT"),
            password: var("MAILSTACK_PASSWORD"),
            users_file: std::env::var("MAILSTACK_USERS_FILE")
                .map(PathBuf::from)
                .unwrap_or_else(|_| PathBuf::from(var("MAILSTACK_DIR")).join("users")),
        }
    }

    /// Adds users to Dovecot's passwd-file (this private stack only), then waits for the
    /// next second: Dovecot re-reads the file at most once a second.
    fn add_users(&self, users: &[&str]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.users_file)
            .unwrap_or_else(|e| die(format!("{}: {e}", self.users_file.display())));
        for u in users {
            writeln!(f, "{}:{{PLAIN}}{}", u.to_ascii_lowercase(), self.password).unwrap();
        }
        drop(f);
        let mtime = std::fs::metadata(&self.users_file)
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        while SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            <= mtime
        {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    async fn login(&self, user: &str) -> R<Session<TcpStream>> {
        let tcp = TcpStream::connect(("127.0.0.1", self.imap_port))
            .await
            .map_err(|e| format!("IMAP connect 127.0.0.1:{}: {e}", self.imap_port))?;
        let mut client = async_imap::Client::new(tcp);
        client
            .read_response()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no IMAP greeting")?;
        client
            .login(user, &self.password)
            .await
            .map_err(|(e, _)| format!("IMAP LOGIN {user}: {e}"))
    }

    async fn count(&self, user: &str, folder: &str) -> R<u32> {
        let mut s = self.login(user).await?;
        let st = s
            .status(folder, "(MESSAGES)")
            .await
            .map_err(|e| e.to_string())?;
        let _ = s.logout().await;
        Ok(st.exists)
    }

    /// APPENDs `msgs` to `user`'s INBOX over `conns` parallel connections.
    async fn append_all(&self, user: &str, msgs: Vec<Vec<u8>>, conns: usize) -> R<()> {
        let per = msgs.len().div_ceil(conns.max(1)).max(1);
        let mut tasks = Vec::new();
        let mut msgs = msgs;
        while !msgs.is_empty() {
            let chunk: Vec<Vec<u8>> = msgs.drain(..per.min(msgs.len())).collect();
            let stack = self.clone();
            let user = user.to_string();
            tasks.push(tokio::spawn(async move {
                let mut s = stack.login(&user).await?;
                for m in chunk {
                    s.append("INBOX", None, None, &m)
                        .await
                        .map_err(|e| format!("APPEND: {e}"))?;
                }
                let _ = s.logout().await;
                Ok::<(), String>(())
            }));
        }
        for t in tasks {
            t.await.map_err(|e| e.to_string())??;
        }
        Ok(())
    }
}

/// A helpdesk site: its own helpdesk user, shared mailbox user, config, SQLite file and
/// directory (one owner, `LOCKED` locked members).
struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
    db_path: PathBuf,
    helpdesk: String,
    mailbox: String,
    owner: String,
    token: String,
    seq: std::sync::atomic::AtomicUsize,
}

fn bin() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/postroom");
    if !p.exists() {
        die(format!(
            "{} is missing: cargo build --release first",
            p.display()
        ));
    }
    p
}

impl Site {
    fn new(stack: &Stack, name: &str, extra: &str) -> Site {
        let stamp = now_ms() % 100_000_000;
        let token = format!("{name}{}x{stamp}", std::process::id());
        let helpdesk = format!("bench-hd-{token}@test.example");
        let mailbox = format!("bench-shared-{token}@test.example");
        stack.add_users(&[&helpdesk, &mailbox]);
        let dir = tempfile::Builder::new()
            .prefix("postroom-bench-")
            .tempdir()
            .unwrap();
        if let Ok(mut l) = LEFTOVERS.lock() {
            l.1.push(dir.path().to_path_buf());
        }
        let db_path = dir.path().join("postroom.db");
        let config = dir.path().join("postroom.toml");
        let text = format!(
            "[database]\nurl = \"sqlite://{db}\"\n\n\
             [helpdesk]\naddress = \"{helpdesk}\"\nname = \"Bench Helpdesk\"\nreference_prefix = \"HD\"\n\n\
             [trust]\nmode = \"authentication_results\"\nauthserv_id = \"{AUTHSERV}\"\n\n\
             [confirmation]\nenabled = false\n\n\
             [limits]\nmax_replies_per_mailbox_per_day = 100000000\n\n\
             [imap]\nhost = \"127.0.0.1\"\nport = {ip}\ntls = \"none\"\nusername = \"{helpdesk}\"\npassword = \"{pw}\"\n\
             idle = true\npoll_interval = \"1s\"\nreconnect_max = \"2s\"\ntimeout = \"30s\"\n{extra}\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {sp}\ntls = \"none\"\ntimeout = \"30s\"\nretry_initial = \"1s\"\nretry_max = \"2s\"\n\n\
             [web]\nlisten = \"127.0.0.1:0\"\n",
            db = db_path.display(),
            ip = stack.imap_port,
            pw = stack.password,
            sp = stack.smtp_port,
        );
        std::fs::write(&config, text).unwrap();
        let owner = format!("owner-{token}@test.example");
        let mut csv = format!(
            "organisation,mailbox,account,name,role,status\n\
             Bench {token},{mailbox},,,,\n\
             Bench {token},{mailbox},{owner},Olive Owner,owner,active\n"
        );
        for i in 0..LOCKED {
            csv.push_str(&format!(
                "Bench {token},{mailbox},locked{i}-{token}@test.example,Kim Locked {i},member,locked\n"
            ));
        }
        let csv_path = dir.path().join("directory.csv");
        std::fs::write(&csv_path, csv).unwrap();
        let site = Site {
            dir,
            config,
            db_path,
            helpdesk,
            mailbox,
            owner,
            token,
            seq: Default::default(),
        };
        let out = site
            .command()
            .args(["directory", "import", csv_path.to_str().unwrap()])
            .output()
            .unwrap();
        if !out.status.success() {
            die(format!(
                "postroom directory import: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        site
    }

    fn command(&self) -> Command {
        let mut c = Command::new(bin());
        c.arg("--config").arg(&self.config);
        for (k, _) in std::env::vars() {
            if k.starts_with("POSTROOM_") {
                c.env_remove(k);
            }
        }
        // `[runtime] cpu` for an A/B of the daemon's thread placement (src/cpu.rs).
        if let Ok(cpu) = std::env::var("BENCH_CPU") {
            c.env("POSTROOM_RUNTIME_CPU", cpu);
        }
        c
    }

    /// A request email (unlock of a locked member, asked by the owner) with a passing
    /// Authentication-Results, `pad` extra body bytes. Returns (Message-ID without <>, raw).
    fn request(&self, pad: usize) -> (String, Vec<u8>) {
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("bench-{n}-{}@test.example", self.token);
        let mut body = format!(
            "Hi,\r\n\r\nKim is locked out of her account, please unlock it.\r\n\r\n\
             Account: locked{}-{}@test.example\r\nRequested by: {}\r\n\r\nOlive\r\n",
            n % LOCKED,
            self.token,
            self.owner
        );
        if pad > 0 {
            let line = format!("{}\r\n", "x".repeat(76));
            body.push_str("\r\n--\r\n");
            while body.len() < pad {
                body.push_str(&line);
            }
        }
        let raw = format!(
            "Authentication-Results: {AUTHSERV}; dkim=pass header.d=test.example header.s=s1; \
             dmarc=pass header.from=test.example\r\n\
             From: Bench Care <{mb}>\r\n\
             To: Helpdesk <{hd}>\r\n\
             Subject: Locked out\r\n\
             Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n\
             Message-ID: <{id}>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=\"utf-8\"\r\n\
             \r\n{body}",
            mb = self.mailbox,
            hd = self.helpdesk,
        );
        (id, raw.into_bytes())
    }

    /// The envelope of a request: from the site's mailbox to its helpdesk address.
    fn envelope(&self) -> Envelope {
        Envelope::new(
            Some(self.mailbox.parse().unwrap()),
            vec![self.helpdesk.parse().unwrap()],
        )
        .unwrap()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("run.log")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&self) -> Daemon {
        let child = self
            .command()
            .arg("run")
            .env(
                "POSTROOM_LOG",
                std::env::var("BENCH_POSTROOM_LOG").unwrap_or_else(|_| "info".into()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(self.log_path()).unwrap()))
            .spawn()
            .unwrap_or_else(|e| die(format!("spawn postroom run: {e}")));
        if let Ok(mut l) = LEFTOVERS.lock() {
            l.0.push(child.id());
        }
        Daemon { child }
    }

    async fn pool(&self) -> sqlx::SqlitePool {
        let url = format!("sqlite://{}", self.db_path.display());
        sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap_or_else(|e| die(format!("open {url}: {e}")))
    }

    /// Waits until `n` replies are sent; dies with the daemon log after `timeout`.
    async fn wait_sent(&self, pool: &sqlx::SqlitePool, d: &mut Daemon, n: i64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let sent: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE status = 'sent'")
                .fetch_one(pool)
                .await
                .unwrap_or(0);
            if sent >= n {
                return;
            }
            if let Ok(Some(st)) = d.child.try_wait() {
                die(format!(
                    "postroom run exited ({st}) with {sent}/{n} replies sent; log:\n{}",
                    tail(&self.log())
                ));
            }
            if Instant::now() > deadline {
                die(format!(
                    "only {sent}/{n} replies sent after {timeout:?}; log:\n{}",
                    tail(&self.log())
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_log(&self, d: &mut Daemon, needle: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            if let Ok(Some(st)) = d.child.try_wait() {
                die(format!(
                    "postroom run exited ({st}); log:\n{}",
                    tail(&self.log())
                ));
            }
            if Instant::now() > deadline {
                die(format!(
                    "no {needle:?} in the log after {timeout:?}:\n{}",
                    tail(&self.log())
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

struct Daemon {
    child: Child,
}

impl Daemon {
    fn peak_rss_kb(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or_else(|| die("cannot read VmHWM of postroom run"))
    }

    /// CPU time (user + system, every thread) the daemon has used so far, in ms: what postroom
    /// costs per request, a figure the machine's drift moves far less than a rate.
    fn cpu_ms(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .unwrap_or_else(|e| die(format!("cannot read /proc/PID/stat of postroom run: {e}")));
        stat_cpu_ms(&stat).unwrap_or_else(|e| die(e))
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let pid = self.child.id();
        if let Ok(mut l) = LEFTOVERS.lock() {
            l.0.retain(|p| *p != pid);
        }
    }
}

// ------------------------------------------------------------------------ phases

/// The floor: fetch by UID in batches, reply over `senders` SMTP connections, UID MOVE per
/// batch. Its rate, and what it cost the machine per message.
async fn baseline(stack: &Stack, n: usize, batch: usize, senders: usize) -> R<(f64, Spent)> {
    let stamp = now_ms() % 100_000_000;
    let user = format!("bench-base-{}x{stamp}@test.example", std::process::id());
    let sink = format!("bench-sink-{}x{stamp}@test.example", std::process::id());
    stack.add_users(&[&user, &sink]);
    // The same messages postroom gets (shape and size).
    let site_like = (0..n)
        .map(|i| {
            format!(
                "From: Bench Care <{sink}>\r\nTo: <{user}>\r\nSubject: Locked out\r\n\
                 Message-ID: <base-{i}-{stamp}@test.example>\r\n\r\n\
                 Hi,\r\n\r\nKim is locked out of her account, please unlock it.\r\n\
                 Account: locked{i}@test.example\r\nRequested by: owner@test.example\r\n"
            )
            .into_bytes()
        })
        .collect();
    stack.append_all(&user, site_like, 4).await?;

    let envelope = Envelope::new(
        Some(user.parse().map_err(|e| format!("{e}"))?),
        vec![sink.parse().map_err(|e| format!("{e}"))?],
    )
    .map_err(|e| e.to_string())?;

    let meter = Meter::now()?;
    let started = Instant::now();
    // `senders` SMTP connections with TCP_NODELAY, as postroom opens them (src/smtp/transport.rs).
    let mut conns = Vec::with_capacity(senders);
    for _ in 0..senders {
        let tcp = TcpStream::connect(("127.0.0.1", stack.smtp_port))
            .await
            .map_err(|e| format!("SMTP connect: {e}"))?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &ClientId::default())
            .await
            .map_err(|e| format!("SMTP: {e}"))?;
        conns.push(tokio::sync::Mutex::new(conn));
    }
    let mut s = stack.login(&user).await?;
    let _ = s.create("done").await;
    s.select("INBOX").await.map_err(|e| e.to_string())?;
    let mut uids: Vec<u32> = s
        .uid_search("ALL")
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    uids.sort_unstable();
    let mut done = 0usize;
    for chunk in uids.chunks(batch) {
        let set = chunk
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let fetched: Vec<_> = s
            .uid_fetch(&set, "(UID BODY.PEEK[])")
            .await
            .map_err(|e| e.to_string())?
            .try_collect()
            .await
            .map_err(|e| e.to_string())?;
        // Each connection sends its share of the batch in turn; the connections side by side.
        let sent: Vec<R<()>> =
            futures::future::join_all(fetched.iter().enumerate().map(|(i, f)| {
                let (conn, envelope, user, sink) = (&conns[i % senders], &envelope, &user, &sink);
                async move {
                    let _ = f.body().ok_or("FETCH without a body")?;
                    let reply = format!(
                        "From: <{user}>\r\nTo: <{sink}>\r\nSubject: Re: Locked out\r\n\
                     Message-ID: <reply-{}-{stamp}@test.example>\r\n\r\nDone.\r\n",
                        f.uid.unwrap_or(0)
                    );
                    conn.lock()
                        .await
                        .send(envelope, reply.as_bytes())
                        .await
                        .map(|_| ())
                        .map_err(|e| format!("SMTP: {e}"))
                }
            }))
            .await;
        for r in sent {
            r?;
            done += 1;
        }
        s.uid_mv(&set, "done").await.map_err(|e| e.to_string())?;
    }
    let secs = started.elapsed().as_secs_f64();
    let spent = meter.spent(n, 0.0)?;
    let _ = s.logout().await;
    for c in conns {
        let _ = c.into_inner().quit().await;
    }
    if done != n {
        return Err(format!("baseline handled {done} of {n}"));
    }
    Ok((n as f64 / secs, spent))
}

/// The latency floor: a minimal client idle in IMAP IDLE on its own INBOX, one message
/// APPENDed every 100 ms for `secs`; on each wake-up it fetches the new UIDs and sends a
/// fixed short reply per message (TCP_NODELAY, one connection); APPEND done → reply
/// accepted, in ms. No parsing, no database: what the servers alone allow.
async fn latency_floor(stack: &Stack, secs: u64) -> R<Vec<i64>> {
    let stamp = now_ms() % 100_000_000;
    let user = format!("bench-idle-{}x{stamp}@test.example", std::process::id());
    let sink = format!("bench-isink-{}x{stamp}@test.example", std::process::id());
    stack.add_users(&[&user, &sink]);
    let envelope = Envelope::new(
        Some(user.parse().map_err(|e| format!("{e}"))?),
        vec![sink.parse().map_err(|e| format!("{e}"))?],
    )
    .map_err(|e| e.to_string())?;
    let tcp = TcpStream::connect(("127.0.0.1", stack.smtp_port))
        .await
        .map_err(|e| format!("SMTP connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut smtp = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &ClientId::default())
        .await
        .map_err(|e| format!("SMTP: {e}"))?;

    let mut s = stack.login(&user).await?;
    s.select("INBOX").await.map_err(|e| e.to_string())?;
    let appended: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u32, i64>>> =
        Default::default();
    let mut appender = {
        let (stack, user, appended) = (stack.clone(), user.clone(), appended.clone());
        tokio::spawn(async move {
            let mut a = stack.login(&user).await?;
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let end = Instant::now() + Duration::from_secs(secs);
            let mut i = 0u32;
            while Instant::now() < end {
                tick.tick().await;
                i += 1;
                let raw = format!(
                    "From: <{user}>\r\nTo: <{user}>\r\nSubject: {i}\r\n\
                     Message-ID: <idle-{i}-{stamp}@test.example>\r\n\r\nHi.\r\n"
                );
                a.append("INBOX", None, None, raw.as_bytes())
                    .await
                    .map_err(|e| format!("APPEND: {e}"))?;
                appended
                    .lock()
                    .map_err(|e| e.to_string())?
                    .insert(i, now_ms());
            }
            let _ = a.logout().await;
            Ok::<u32, String>(i)
        })
    };

    let mut replied: std::collections::HashMap<u32, i64> = Default::default();
    let mut next_uid = 1u32;
    let mut total: Option<u32> = None;
    let deadline = Instant::now() + Duration::from_secs(secs + 30);
    while total.is_none_or(|t| (replied.len() as u32) < t) {
        if Instant::now() > deadline {
            return Err(format!(
                "IDLE floor: {} of {total:?} replies after {secs} s + 30 s",
                replied.len()
            ));
        }
        // What arrived so far (also what came before IDLE began).
        let fetched: Vec<_> = s
            .uid_fetch(
                format!("{next_uid}:*"),
                "(UID BODY.PEEK[HEADER.FIELDS (SUBJECT)])",
            )
            .await
            .map_err(|e| e.to_string())?
            .try_collect()
            .await
            .map_err(|e| e.to_string())?;
        for f in &fetched {
            let Some(uid) = f.uid.filter(|u| *u >= next_uid) else {
                continue;
            };
            next_uid = next_uid.max(uid + 1);
            let header = String::from_utf8_lossy(f.header().unwrap_or_default()).to_string();
            let Some(n) = header
                .trim()
                .strip_prefix("Subject: ")
                .and_then(|v| v.trim().parse::<u32>().ok())
            else {
                continue;
            };
            let reply = format!(
                "From: <{user}>\r\nTo: <{sink}>\r\nSubject: Re: {n}\r\n\
                 Message-ID: <idle-reply-{n}-{stamp}@test.example>\r\n\r\nDone.\r\n"
            );
            smtp.send(&envelope, reply.as_bytes())
                .await
                .map_err(|e| format!("SMTP: {e}"))?;
            replied.insert(n, now_ms());
        }
        if total.is_none() && appender.is_finished() {
            total = Some((&mut appender).await.map_err(|e| e.to_string())??);
            continue;
        }
        let mut idle = s.idle();
        idle.init().await.map_err(|e| format!("IDLE: {e}"))?;
        let (wait, _interrupt) = idle.wait_with_timeout(Duration::from_secs(1));
        // New mail or the 1 s timeout: either way, look (the loop fetches from `next_uid`).
        wait.await.map_err(|e| format!("IDLE: {e}"))?;
        s = idle.done().await.map_err(|e| format!("DONE: {e}"))?;
    }
    let _ = s.logout().await;
    let _ = smtp.quit().await;
    let appended = appended.lock().map_err(|e| e.to_string())?;
    let mut lat: Vec<i64> = replied
        .iter()
        .filter_map(|(n, at)| Some(at - appended.get(n)?))
        .collect();
    lat.sort_unstable();
    Ok(lat)
}

/// N requests waiting (APPENDed over `conns` connections), then `postroom run`: requests/s
/// until every reply is sent, the daemon's peak RSS, and its CPU ms per request (start-up
/// included). With `keep_log`, the daemon's log is kept in `BENCH_LOG_DIR` when that is set
/// (for profiling).
async fn run_waiting(
    stack: &Stack,
    name: &str,
    n: usize,
    conns: usize,
    keep_log: bool,
) -> (f64, u64, f64, Spent) {
    let site = Site::new(stack, name, "");
    let msgs = (0..n).map(|_| site.request(0).1).collect();
    stack
        .append_all(&site.helpdesk, msgs, conns)
        .await
        .unwrap_or_else(|e| die(e));
    let pool = site.pool().await;
    let meter = Meter::now().unwrap_or_else(|e| die(e));
    let started = Instant::now();
    let mut d = site.spawn();
    site.wait_sent(
        &pool,
        &mut d,
        n as i64,
        Duration::from_secs(60 + n as u64 / 5),
    )
    .await;
    let secs = started.elapsed().as_secs_f64();
    let rss = d.peak_rss_kb();
    let daemon_ms = d.cpu_ms();
    let spent = meter.spent(n, daemon_ms).unwrap_or_else(|e| die(e));
    let cpu = daemon_ms / n as f64;
    d.stop();
    if keep_log && let Ok(dir) = std::env::var("BENCH_LOG_DIR") {
        let to = Path::new(&dir).join("e2e-postroom.log");
        if let Err(e) = std::fs::copy(site.log_path(), &to) {
            eprintln!("e2e: could not keep the log in {}: {e}", to.display());
        }
    }
    (n as f64 / secs, rss, cpu, spent)
}

/// One request every 100 ms to an idle daemon; APPEND done → reply sent, in ms.
async fn latency(stack: &Stack, secs: u64) -> (Vec<i64>, usize) {
    let site = Site::new(stack, "lat", "");
    let pool = site.pool().await;
    let mut d = site.spawn();
    site.wait_log(&mut d, "IMAP session ready", Duration::from_secs(30))
        .await;
    // Let it settle into IDLE.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut s = stack.login(&site.helpdesk).await.unwrap_or_else(|e| die(e));
    let mut sent_at = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        tick.tick().await;
        let (id, raw) = site.request(0);
        s.append("INBOX", None, None, &raw)
            .await
            .unwrap_or_else(|e| die(format!("APPEND: {e}")));
        sent_at.insert(id, now_ms());
    }
    let _ = s.logout().await;
    let n = sent_at.len();
    site.wait_sent(&pool, &mut d, n as i64, Duration::from_secs(60))
        .await;
    let lat = sent_minus(&pool, &sent_at).await;
    d.stop();
    (lat, n)
}

/// A loopback port nobody listens on now (bound and let go: the daemon binds it next).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| die(e));
    l.local_addr().unwrap().port()
}

/// tests/mailstack/mailstack.sh (`MAILSTACK_SCRIPT` when set, as scripts/bench exports it).
fn mailstack_script() -> PathBuf {
    std::env::var("MAILSTACK_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mailstack/mailstack.sh")
        })
}

/// An SMTP connection to the stack's Postfix with TCP_NODELAY (as postroom's own).
async fn smtp_conn(stack: &Stack) -> R<AsyncSmtpConnection> {
    let tcp = TcpStream::connect(("127.0.0.1", stack.smtp_port))
        .await
        .map_err(|e| format!("SMTP connect 127.0.0.1:{}: {e}", stack.smtp_port))?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &ClientId::default())
        .await
        .map_err(|e| format!("SMTP: {e}"))
}

/// Outbox `sent_at` − request accepted, in ms, for the requests in `accepted` (Message-ID →
/// Unix ms), sorted.
async fn sent_minus(
    pool: &sqlx::SqlitePool,
    accepted: &std::collections::HashMap<String, i64>,
) -> Vec<i64> {
    let rows: Vec<(Option<String>, Option<i64>)> =
        sqlx::query_as("SELECT in_reply_to, sent_at FROM outbox WHERE status = 'sent'")
            .fetch_all(pool)
            .await
            .unwrap_or_else(|e| die(format!("outbox: {e}")));
    let mut lat: Vec<i64> = rows
        .iter()
        .filter_map(|(irt, at)| {
            let id = irt
                .as_deref()?
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>');
            Some(at.as_ref()? - accepted.get(id)?)
        })
        .collect();
    lat.sort_unstable();
    lat
}

/// LMTP (issue 18): `postroom run` with `[lmtp] listen` on a loopback port (IMAP configured
/// as well, for the outcome folders), the site's helpdesk address routed to it by the stack's
/// Postfix (`mailstack.sh route-lmtp`). Latency: one request every 100 ms for `secs` sent to
/// Postfix's SMTP port; Postfix's `250` for the request → outbox `sent_at` (Postfix accepted
/// the reply), in ms. Then, with `burst` > 0, throughput: `burst` requests sent to Postfix at
/// once over 4 connections, from the first send until every reply is sent, in req/s.
/// Returns (latencies, requests sent, throughput).
async fn lmtp(stack: &Stack, secs: u64, burst: usize) -> (Vec<i64>, usize, f64) {
    let port = free_port();
    let site = Site::new(stack, "lmtp", "");
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&site.config)
            .unwrap_or_else(|e| die(e));
        writeln!(f, "\n[lmtp]\nlisten = \"127.0.0.1:{port}\"").unwrap();
    }
    let dir = std::env::var("MAILSTACK_DIR")
        .unwrap_or_else(|_| die("MAILSTACK_DIR is not set: start the mail stack first"));
    let script = mailstack_script();
    let out = Command::new("bash")
        .arg(&script)
        .args(["route-lmtp", &dir, &site.helpdesk, &port.to_string()])
        .output()
        .unwrap_or_else(|e| die(format!("{}: {e}", script.display())));
    if !out.status.success() {
        die(format!(
            "mailstack.sh route-lmtp failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let pool = site.pool().await;
    let mut d = site.spawn();
    site.wait_log(&mut d, "LMTP listening", Duration::from_secs(30))
        .await;
    site.wait_log(&mut d, "IMAP session ready", Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let envelope = site.envelope();
    let mut smtp = smtp_conn(stack).await.unwrap_or_else(|e| die(e));
    let mut accepted = std::collections::HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        tick.tick().await;
        let (id, raw) = site.request(0);
        smtp.send(&envelope, &raw)
            .await
            .unwrap_or_else(|e| die(format!("SMTP to Postfix: {e}")));
        accepted.insert(id, now_ms());
    }
    let _ = smtp.quit().await;
    let n = accepted.len();
    site.wait_sent(&pool, &mut d, n as i64, Duration::from_secs(60))
        .await;
    let lat = sent_minus(&pool, &accepted).await;

    let mut rate = f64::NAN;
    if burst > 0 {
        rate = burst_through_postfix(stack, &site, &pool, &mut d, n, burst).await;
    }
    d.stop();
    (lat, n, rate)
}

/// `burst` requests sent to Postfix at once over 4 connections, from the site's mailbox to its
/// helpdesk address, wherever Postfix delivers that (to postroom over LMTP, or to Dovecot for
/// the watcher): req/s from the first send until every reply is sent (`before` replies were
/// sent already).
async fn burst_through_postfix(
    stack: &Stack,
    site: &Site,
    pool: &sqlx::SqlitePool,
    d: &mut Daemon,
    before: usize,
    burst: usize,
) -> f64 {
    let envelope = site.envelope();
    let mut msgs: Vec<Vec<u8>> = (0..burst).map(|_| site.request(0).1).collect();
    let conns = 4;
    let per = burst.div_ceil(conns);
    let started = Instant::now();
    let mut tasks = Vec::new();
    while !msgs.is_empty() {
        let chunk: Vec<Vec<u8>> = msgs.drain(..per.min(msgs.len())).collect();
        let (stack, envelope) = (stack.clone(), envelope.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = smtp_conn(&stack).await?;
            for m in chunk {
                c.send(&envelope, &m)
                    .await
                    .map_err(|e| format!("SMTP to Postfix: {e}"))?;
            }
            let _ = c.quit().await;
            Ok::<(), String>(())
        }));
    }
    for t in tasks {
        t.await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .unwrap_or_else(|e| die(e));
    }
    site.wait_sent(
        pool,
        d,
        (before + burst) as i64,
        Duration::from_secs(60 + burst as u64 / 5),
    )
    .await;
    burst as f64 / started.elapsed().as_secs_f64()
}

/// The IMAP path measured as the LMTP burst is: `burst` requests sent to Postfix at once,
/// which delivers them to the helpdesk's mailbox in Dovecot, where `postroom run` (IDLE)
/// takes them. The fair comparison for LMTP's burst: both start from mail handed to Postfix.
async fn imap_burst(stack: &Stack, burst: usize) -> f64 {
    let site = Site::new(stack, "ib", "");
    let pool = site.pool().await;
    let mut d = site.spawn();
    site.wait_log(&mut d, "IMAP session ready", Duration::from_secs(30))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rate = burst_through_postfix(stack, &site, &pool, &mut d, 0, burst).await;
    d.stop();
    rate
}

/// Peak RSS handling one message of `mb` MB under a 12 MB (or larger) limit.
async fn big(stack: &Stack, mb: usize) -> (u64, String) {
    let limit = (mb + 2) * 1024 * 1024;
    let site = Site::new(stack, "big", &format!("max_message_bytes = {limit}\n"));
    let (_, raw) = site.request(mb * 1024 * 1024);
    stack
        .append_all(&site.helpdesk, vec![raw], 1)
        .await
        .unwrap_or_else(|e| die(e));
    let mut d = site.spawn();
    site.wait_log(&mut d, "processed outcome=", Duration::from_secs(120))
        .await;
    let outcome = site
        .log()
        .lines()
        .find(|l| l.contains("processed outcome="))
        .and_then(|l| l.split("outcome=").nth(1))
        .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
        .unwrap_or_default();
    // "processed" is logged before the batch's UID MOVE: wait for the move too.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = stack
            .count(&site.helpdesk, "INBOX")
            .await
            .unwrap_or(u32::MAX);
        if left == 0 {
            break;
        }
        if Instant::now() > deadline {
            die(format!(
                "the big message is still in INBOX ({left}) after 60 s; log:\n{}",
                tail(&site.log())
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss = d.peak_rss_kb();
    d.stop();
    (rss, outcome)
}

fn pct(sorted: &[i64], p: f64) -> i64 {
    if sorted.is_empty() {
        return -1;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets without --bench: nothing to do here
        // without the mail stack (scripts/bench runs the real thing).
        println!("e2e: skipped (needs --bench and the mail stack: run scripts/bench)");
        return;
    }
    let n = env_usize("BENCH_MESSAGES", 2000);
    let lat_secs = env_usize("BENCH_LATENCY_SECS", 60) as u64;
    let drain_n = env_usize("BENCH_DRAIN", 10_000);
    let big_mb = env_usize("BENCH_BIG_MB", 10);
    // BENCH_ONLY=e2e,latency: only these parts (baseline, e2e, latency, lmtp, drain, big); the
    // figures of the others print as NaN / 0. For profiling one part; the README's figures
    // come from full runs.
    let only: Option<Vec<String>> = std::env::var("BENCH_ONLY")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.split(',').map(|p| p.trim().to_owned()).collect());
    if let Some(parts) = &only {
        for p in parts {
            if !["baseline", "e2e", "latency", "lmtp", "drain", "big"].contains(&p.as_str()) {
                die(format!(
                    "BENCH_ONLY: unknown part {p:?} (baseline, e2e, latency, lmtp, drain, big)"
                ));
            }
        }
    }
    let stack = Stack::from_env();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        // Fail early and clearly when a server is not there.
        if let Err(e) = stack.login("nobody@test.example").await
            && e.contains("connect")
        {
            die(format!("Dovecot is not answering: {e}"));
        }
        if TcpStream::connect(("127.0.0.1", stack.smtp_port)).await.is_err() {
            die(format!("Postfix is not answering on 127.0.0.1:{}", stack.smtp_port));
        }

        let on = |phase: &str| only.as_ref().is_none_or(|o| o.iter().any(|p| p == phase));
        let (mut base1, mut base, mut e2e, mut e2e_rss, mut e2e_cpu) =
            (f64::NAN, f64::NAN, f64::NAN, 0, f64::NAN);
        let (mut base_spent, mut e2e_spent) = (Spent::NONE, Spent::NONE);
        if on("baseline") {
            eprintln!("e2e: baseline, {n} messages");
            (base1, _) = baseline(&stack, n, 50, 1).await.unwrap_or_else(|e| die(e));
            eprintln!("e2e:   baseline, 1 SMTP connection: {base1:.0} msg/s");
            // postroom sends over up to 4 connections (src/smtp/mod.rs SENDERS); the same
            // here is the fair floor.
            (base, base_spent) = baseline(&stack, n, 50, 4).await.unwrap_or_else(|e| die(e));
            eprintln!("e2e:   baseline, 4 SMTP connections: {base:.0} msg/s");
        }
        if on("e2e") {
            eprintln!("e2e: postroom run, {n} requests waiting");
            (e2e, e2e_rss, e2e_cpu, e2e_spent) = run_waiting(&stack, "tp", n, 4, true).await;
            eprintln!(
                "e2e:   postroom {e2e:.0} req/s, peak RSS {} MB, CPU {e2e_cpu:.2} ms per request",
                e2e_rss / 1024
            );
        }
        // The machine drifts (a shared VM varies by ±15% within minutes): the baseline is
        // measured again after postroom, and the ratio is against the mean of the two.
        let mut base_runs = vec![base];
        if on("baseline") && on("e2e") {
            let (again, again_spent) = baseline(&stack, n, 50, 4).await.unwrap_or_else(|e| die(e));
            eprintln!("e2e:   baseline again, 4 SMTP connections: {again:.0} msg/s");
            base_runs.push(again);
            base = (base + again) / 2.0;
            base_spent = Spent::mean(base_spent, again_spent);
        }
        let (mut lat, mut lat_n, mut floor) = (Vec::new(), 0, Vec::new());
        if on("latency") {
            eprintln!("e2e: latency floor, a minimal IDLE client, one message every 100 ms for {lat_secs} s");
            floor = latency_floor(&stack, lat_secs).await.unwrap_or_else(|e| die(e));
            eprintln!("e2e:   floor p50 {} ms, p99 {} ms ({} replies)", pct(&floor, 0.5), pct(&floor, 0.99), floor.len());
            eprintln!("e2e: latency, one request every 100 ms for {lat_secs} s");
            (lat, lat_n) = latency(&stack, lat_secs).await;
            eprintln!("e2e:   latency p50 {} ms, p99 {} ms ({} of {lat_n})", pct(&lat, 0.5), pct(&lat, 0.99), lat.len());
        }
        let (mut lm, mut lm_n, mut lm_rate, mut imap_rate) = (Vec::new(), 0, f64::NAN, f64::NAN);
        if on("lmtp") {
            eprintln!("e2e: LMTP, one request every 100 ms for {lat_secs} s through Postfix, then {n} at once");
            (lm, lm_n, lm_rate) = lmtp(&stack, lat_secs, n).await;
            eprintln!("e2e:   LMTP latency p50 {} ms, p99 {} ms ({} of {lm_n}); {n} requests {lm_rate:.0} req/s", pct(&lm, 0.5), pct(&lm, 0.99), lm.len());
            eprintln!("e2e: IMAP path, {n} requests sent to Postfix at once");
            imap_rate = imap_burst(&stack, n).await;
            eprintln!("e2e:   {imap_rate:.0} req/s");
        }
        let (mut drain_rss, mut drain_rate) = (0, f64::NAN);
        if on("drain") {
            eprintln!("e2e: drain {drain_n}");
            (drain_rate, drain_rss, _, _) = run_waiting(&stack, "drain", drain_n, 8, false).await;
            eprintln!("e2e:   drain peak RSS {} MB, {drain_rate:.0} req/s", drain_rss / 1024);
        }
        let (mut big_rss, mut big_outcome) = (0, "skipped".to_owned());
        if on("big") {
            eprintln!("e2e: one {big_mb} MB message");
            (big_rss, big_outcome) = big(&stack, big_mb).await;
        }

        let ratio = e2e / base;
        let (p50, p95, p99) = (pct(&lat, 0.50), pct(&lat, 0.95), pct(&lat, 0.99));
        let max = lat.last().copied().unwrap_or(-1);
        let ok = |b: bool| if b { "ok" } else { "MISSED" };
        println!();
        println!("{:<44} {:>14} {:>16} {:>7}", "figure", "value", "target", "");
        println!("{:<44} {:>8.0} msg/s {:>16} {:>7}", format!("baseline client, 1 SMTP conn ({n} msgs)"), base1, "", "");
        println!("{:<44} {:>8.0} msg/s {:>16} {:>7}", format!("baseline client, 4 SMTP conns ({n} msgs)"), base, "", "");
        if let [before, after] = base_runs[..] {
            println!("{:<44} {:>5.0} / {:>3.0} msg/s {:>13} {:>7}", "  (before / after postroom's run)", before, after, "", "");
        }
        println!("{:<44} {:>8.0} req/s {:>16} {:>7}", format!("postroom run end to end ({n} reqs)"), e2e, "", "");
        // Issue 18's targets for the IMAP path, reported every run: the ratio against the
        // minimal client's floor and the CPU postroom spends per request.
        println!("{:<44} {:>8.2} ms {:>19} {:>7}", "postroom CPU per request (user + system)", e2e_cpu, "<= 0.70 ms", ok(e2e_cpu <= 0.7));
        println!("{:<44} {:>14.2} {:>16} {:>7}", "ratio postroom/baseline (4 conns)", ratio, ">= 0.90", ok(ratio >= 0.9));
        println!("{:<44} {:>14.2} {:>16} {:>7}", "ratio postroom/baseline (1 conn)", e2e / base1, "", "");
        // Where the machine's CPU went (4 connections; the baseline's the mean of its two
        // runs). When the CPUs are never idle, each side's time is its CPU: the ratio is
        // about (others + client) of the baseline over the same of postroom, so one ms of
        // postroom's CPU weighs as much as one ms of the mail servers' — and the last line is
        // the CPU per request postroom could spend for a ratio of 0.9 at this run's costs.
        let (b, p) = (base_spent, e2e_spent);
        println!("{:<44} {:>6.2} / {:>4.2} ms {:>13} {:>7}", "  CPU per message, the client: baseline / postroom", b.client_ms, p.client_ms, "", "");
        println!("{:<44} {:>6.2} / {:>4.2} ms {:>13} {:>7}", "  the rest of the machine (mail servers)", b.others_ms, p.others_ms, "", "");
        println!("{:<44} {:>6.0} / {:>4.0} %  {:>13} {:>7}", "  CPUs idle", b.idle * 100.0, p.idle * 100.0, "", "");
        let explained = (b.others_ms + b.client_ms) / (p.others_ms + p.client_ms);
        let budget = (b.others_ms + b.client_ms) / 0.9 - p.others_ms;
        println!("{:<44} {:>14.2} {:>16} {:>7}", "  ratio the CPU accounts for", explained, "", "");
        println!("{:<44} {:>11.2} ms {:>16} {:>7}", "  postroom's CPU per request for 0.90", budget, "", "");
        println!("{:<44} {:>11} ms {:>16} {:>7}", format!("latency p50 ({} of {lat_n} replies)", lat.len()), p50, "", "");
        println!("{:<44} {:>11} ms {:>16} {:>7}", "latency p95", p95, "", "");
        println!("{:<44} {:>11} ms {:>16} {:>7}", "latency p99", p99, "< 250 ms", ok((0..250).contains(&p99)));
        println!("{:<44} {:>11} ms {:>16} {:>7}", "latency max", max, "", "");
        let (f50, f99) = (pct(&floor, 0.50), pct(&floor, 0.99));
        println!("{:<44} {:>6} / {:>4} ms {:>16} {:>7}", format!("floor p50 / p99: IDLE client ({} replies)", floor.len()), f50, f99, "", "");
        println!("{:<44} {:>6} / {:>4} ms {:>16} {:>7}", "postroom above the floor, p50 / p99", p50 - f50, p99 - f99, "", "");
        let (l50, l95, l99) = (pct(&lm, 0.50), pct(&lm, 0.95), pct(&lm, 0.99));
        let lmax = lm.last().copied().unwrap_or(-1);
        println!("{:<44} {:>11} ms {:>16} {:>7}", format!("LMTP latency p50 ({} of {lm_n} replies)", lm.len()), l50, "", "");
        println!("{:<44} {:>11} ms {:>16} {:>7}", "LMTP latency p95", l95, "", "");
        println!("{:<44} {:>11} ms {:>16} {:>7}", "LMTP latency p99", l99, "< 50 ms", ok((0..50).contains(&l99)));
        println!("{:<44} {:>11} ms {:>16} {:>7}", "LMTP latency max", lmax, "", "");
        println!("{:<44} {:>8.0} req/s {:>16} {:>7}", format!("LMTP end to end ({n} reqs sent at once)"), lm_rate, "", "");
        println!("{:<44} {:>8.0} req/s {:>16} {:>7}", format!("IMAP path, the same sent at once"), imap_rate, "", "");
        // Both start from mail handed to Postfix: the target's comparison.
        println!("{:<44} {:>14.2} {:>16} {:>7}", "LMTP / IMAP path, both through Postfix", lm_rate / imap_rate, ">= 1.00", ok(lm_rate >= imap_rate));
        // Against the run above, whose requests were in the mailbox before it started.
        println!("{:<44} {:>14.2} {:>16} {:>7}", "LMTP / IMAP path with requests waiting", lm_rate / e2e, "", "");
        println!("{:<44} {:>11} MB {:>16} {:>7}", format!("peak RSS draining {drain_n}"), drain_rss / 1024, if drain_n >= 10_000 { "< 64 MB" } else { "(< 64 MB @10k)" }, ok(drain_rss < 64 * 1024));
        println!("{:<44} {:>8.0} req/s {:>16} {:>7}", format!("drain rate ({drain_n})"), drain_rate, "", "");
        println!("{:<44} {:>11} MB {:>16} {:>7}", format!("peak RSS, end-to-end run ({n})"), e2e_rss / 1024, "", "");
        println!("{:<44} {:>11} MB {:>16} {:>7}", format!("peak RSS, one {big_mb} MB message ({big_outcome})"), big_rss / 1024, "", "");
        println!(
            "{{\"e2e\":{{\"messages\":{n},\"baseline_1conn_msgs_per_s\":{base1:.1},\"baseline_msgs_per_s\":{base:.1},\"baseline_runs_msgs_per_s\":{base_runs:?},\"baseline_smtp_connections\":4,\"postroom_reqs_per_s\":{e2e:.1},\"postroom_cpu_ms_per_req\":{e2e_cpu:.3},\"ratio\":{ratio:.3},\"target_ratio\":0.9,\"cpu_ms_per_msg\":{{\"baseline_client\":{:.3},\"baseline_others\":{:.3},\"postroom_client\":{:.3},\"postroom_others\":{:.3},\"baseline_idle\":{:.3},\"postroom_idle\":{:.3},\"ratio_accounted\":{explained:.3},\"postroom_budget_for_ratio\":{budget:.3}}},\"target_cpu_ms_per_req\":0.7,\"peak_rss_kb\":{e2e_rss}}},\
             \"latency\":{{\"seconds\":{lat_secs},\"requests\":{lat_n},\"measured\":{},\"p50_ms\":{p50},\"p95_ms\":{p95},\"p99_ms\":{p99},\"max_ms\":{max},\"target_p99_ms\":250,\"floor_p50_ms\":{},\"floor_p99_ms\":{}}},\
             \"lmtp\":{{\"seconds\":{lat_secs},\"requests\":{lm_n},\"measured\":{},\"p50_ms\":{l50},\"p95_ms\":{l95},\"p99_ms\":{l99},\"max_ms\":{lmax},\"target_p99_ms\":50,\"burst_messages\":{n},\"burst_reqs_per_s\":{lm_rate:.1},\"imap_burst_reqs_per_s\":{imap_rate:.1}}},\
             \"memory\":{{\"drain_messages\":{drain_n},\"drain_peak_rss_kb\":{drain_rss},\"drain_reqs_per_s\":{drain_rate:.1},\"target_drain_peak_rss_kb\":65536,\"big_message_mb\":{big_mb},\"big_message_outcome\":\"{big_outcome}\",\"big_message_peak_rss_kb\":{big_rss}}}}}",
            b.client_ms,
            b.others_ms,
            p.client_ms,
            p.others_ms,
            b.idle,
            p.idle,
            lat.len(),
            pct(&floor, 0.50),
            pct(&floor, 0.99),
            lm.len()
        );
    });
}
