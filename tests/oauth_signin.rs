//! XOAUTH2 sign-in for real: a private Dovecot whose passdb is `driver = oauth2`, asking a
//! small OAuth2 provider on loopback (this file) whether a token is active; the same provider
//! hands postroom its tokens with the client-credentials grant.
//!
//! Needs root and Dovecot (`tests/mailstack/mailstack.sh install`), like the mail stack; it
//! runs its own Dovecot so the shared stack's behaviour is untouched. Skips (with a message)
//! when those are missing.
//!
//! SMTP XOAUTH2 is not covered here: the test Postfix has no SASL. `src/smtp.rs` unit-tests
//! the `AUTH XOAUTH2` exchange against a scripted server instead.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const USER: &str = "helpdesk@test.example";
const CLIENT_ID: &str = "postroom";
const SECRET: &str = "right-secret";

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Tokens issued are active.
    Good,
    /// Tokens are issued but introspection says they are not active (revoked at once).
    Revoked,
    /// The token endpoint refuses the client (a disabled app or expired secret).
    BadClient,
}

#[derive(Default)]
struct Provider {
    mode: Option<Mode>,
    active: HashSet<String>,
    issued: u32,
}

type Shared = Arc<Mutex<Provider>>;

async fn token(
    State(p): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let mut p = p.lock().unwrap();
    let refused = |d: &str| {
        (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_client", "error_description": d})),
        )
    };
    if form.get("grant_type").map(String::as_str) != Some("client_credentials")
        || form.get("client_id").map(String::as_str) != Some(CLIENT_ID)
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": "bad form"})),
        );
    }
    if form.get("client_secret").map(String::as_str) != Some(SECRET) {
        return refused("Invalid client secret provided.");
    }
    let mode = p.mode.unwrap_or(Mode::Good);
    if mode == Mode::BadClient {
        return refused("The client has been disabled.");
    }
    p.issued += 1;
    let t = format!("tok-{}", p.issued);
    if mode == Mode::Good {
        p.active.insert(t.clone());
    }
    (
        StatusCode::OK,
        Json(json!({"access_token": t, "expires_in": 3600, "token_type": "Bearer"})),
    )
}

async fn introspect(
    State(p): State<Shared>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    let p = p.lock().unwrap();
    match form.get("token") {
        Some(t) if p.active.contains(t) => Json(json!({"active": true, "username": USER})),
        _ => Json(json!({"active": false})),
    }
}

/// Runs the provider on its own runtime thread; returns its port.
fn start_provider(state: Shared) -> u16 {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            let app = Router::new()
                .route("/token", post(token))
                .route("/introspect", post(introspect))
                .with_state(state);
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn id(flag: &str) -> String {
    let out = Command::new("id").args([flag, "dovecot"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct Dovecot {
    dir: PathBuf,
    conf: PathBuf,
    port: u16,
}

impl Dovecot {
    fn start(dir: &Path, provider_port: u16) -> Dovecot {
        let port = free_port();
        let (uid, gid) = (id("-u"), id("-g"));
        let d = dir.display();
        let mail = dir.join("mail");
        std::fs::create_dir_all(&mail).unwrap();
        // Mail is owned by the dovecot user (static userdb).
        let st = Command::new("chown")
            .args([&format!("{uid}:{gid}"), mail.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(st.success());
        let args = dir.join("oauth2.conf.ext");
        std::fs::write(
            &args,
            format!(
                "introspection_mode = post\n\
                 introspection_url = http://127.0.0.1:{provider_port}/introspect\n\
                 username_attribute = username\n\
                 active_attribute = active\n\
                 active_value = true\n"
            ),
        )
        .unwrap();
        let conf = dir.join("dovecot.conf");
        std::fs::write(
            &conf,
            format!(
                "instance_name = oauth-{port}\n\
                 base_dir = {d}/run\n\
                 state_dir = {d}/state\n\
                 log_path = {d}/dovecot.log\n\
                 auth_verbose = yes\n\
                 protocols = imap\n\
                 listen = 127.0.0.1\n\
                 default_internal_user = dovecot\n\
                 default_internal_group = dovecot\n\
                 default_login_user = dovenull\n\
                 disable_plaintext_auth = no\n\
                 auth_mechanisms = xoauth2\n\
                 ssl = no\n\
                 first_valid_uid = {uid}\n\
                 last_valid_uid = 0\n\
                 first_valid_gid = {gid}\n\
                 mail_location = maildir:~/Maildir\n\
                 mail_fsync = never\n\
                 passdb {{\n  driver = oauth2\n  mechanisms = xoauth2\n  args = {args}\n}}\n\
                 userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={d}/mail/%Ld/%Ln allow_all_users=yes\n}}\n\
                 namespace inbox {{\n  inbox = yes\n  separator = /\n}}\n\
                 service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n}}\n",
                args = args.display(),
            ),
        )
        .unwrap();
        // Not `output()`: the daemonised master keeps inherited pipes open for good.
        let status = Command::new("dovecot")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        let dovecot = Dovecot {
            dir: dir.to_owned(),
            conf,
            port,
        };
        assert!(
            status.success(),
            "dovecot -c {}: {status}\n{}",
            dovecot.conf.display(),
            dovecot.log()
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "dovecot not listening:\n{}",
                dovecot.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        dovecot
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("dovecot.log")).unwrap_or_default()
    }

    fn doveadm(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut c = Command::new("doveadm");
        c.arg("-c").arg(&self.conf).args(args);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(bytes) = stdin {
            input.write_all(bytes).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    }

    /// Deliver a request into the inbox (what the MTA would do).
    fn append(&self, subject: &str) {
        let raw = format!(
            "From: Jane Doe <jane.doe@test.example>\r\nTo: {USER}\r\nSubject: {subject}\r\n\
             Message-ID: <{subject}@test.example>\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\r\n\
             Hello, can you help?\r\n"
        );
        let out = self.doveadm(&["save", "-u", USER], Some(raw.as_bytes()));
        assert!(
            out.status.success(),
            "doveadm save: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn inbox_count(&self) -> usize {
        let out = self.doveadm(&["search", "-u", USER, "mailbox", "INBOX", "ALL"], None);
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    fn wait_inbox_empty(&self, daemon: &Daemon) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.inbox_count() > 0 {
            assert!(
                Instant::now() < deadline,
                "the request stayed in INBOX:\n{}\n--- dovecot ---\n{}",
                daemon.log(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.conf)
            .arg("stop")
            .output();
        let pid = std::fs::read_to_string(self.dir.join("run/master.pid")).unwrap_or_default();
        if let Ok(pid) = pid.trim().parse::<u32>() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
    }
}

struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_log_count(&mut self, needle: &str, n: usize, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let log = self.log();
            if log.matches(needle).count() >= n {
                return;
            }
            assert!(
                self.child.try_wait().unwrap().is_none(),
                "postroom run exited while waiting for {what}:\n{log}"
            );
            assert!(
                Instant::now() < deadline,
                "no {what} ({needle:?} x{n}):\n{log}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(dir: &Path, name: &str, imap_port: u16, provider_port: u16, secret: &str) -> PathBuf {
    let secret_file = dir.join(format!("{name}.secret"));
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "[database]\nurl = \"sqlite://{d}/postroom.db\"\n\n\
             [helpdesk]\naddress = \"{USER}\"\nname = \"Test Helpdesk\"\nreference_prefix = \"HD\"\n\n\
             [trust]\nmode = \"authentication_results\"\nauthserv_id = \"mail.test.example\"\n\n\
             [confirmation]\nenabled = false\n\n\
             [imap]\nhost = \"127.0.0.1\"\nport = {imap_port}\ntls = \"none\"\nusername = \"{USER}\"\n\
             auth = \"xoauth2\"\n\
             oauth2 = {{ token_url = \"http://127.0.0.1:{provider_port}/token\", client_id = \"{CLIENT_ID}\", \
             client_secret_file = \"{s}\", scope = \"https://outlook.office365.com/.default\" }}\n\
             poll_interval = \"1s\"\nreconnect_max = \"1s\"\ntimeout = \"10s\"\n\n\
             [smtp]\nhost = \"127.0.0.1\"\nport = {smtp}\ntls = \"none\"\ntimeout = \"2s\"\n\n\
             [web]\nlisten = \"127.0.0.1:0\"\n",
            d = dir.display(),
            s = secret_file.display(),
            smtp = free_port(),
        ),
    )
    .unwrap();
    path
}

fn postroom(config: &Path) -> Command {
    let mut c = Command::new(assert_cmd::cargo::cargo_bin("postroom"));
    c.arg("--config").arg(config).env("NO_COLOR", "1");
    for (k, _) in std::env::vars() {
        if k.starts_with("POSTROOM_") {
            c.env_remove(k);
        }
    }
    c
}

/// `postroom check`'s IMAP login line.
fn check_login_line(config: &Path) -> String {
    let out = postroom(config).arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    stdout
        .lines()
        .find(|l| l.contains("IMAP login"))
        .unwrap_or_else(|| {
            panic!(
                "no IMAP login line:\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .to_owned()
}

fn usable() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let dovecot = Path::new("/usr/sbin/dovecot").exists() && !id("-u").is_empty();
    if !(root && dovecot) {
        eprintln!("SKIPPED: needs root and Dovecot (tests/mailstack/mailstack.sh install)");
    }
    root && dovecot
}

#[test]
fn xoauth2_sign_in_against_dovecot() {
    if !usable() {
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("postroom-oauth-")
        .tempdir()
        .unwrap();
    // Dovecot's auth process runs as `dovecot` and must read the args file (field notes).
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = tmp.path();
    let state: Shared = Arc::new(Mutex::new(Provider::default()));
    let provider_port = start_provider(state.clone());
    let dovecot = Dovecot::start(dir, provider_port);
    let good = config(dir, "good", dovecot.port, provider_port, SECRET);
    let wrong = config(dir, "wrong", dovecot.port, provider_port, "wrong-secret");
    let set = |m: Mode| {
        let mut p = state.lock().unwrap();
        p.mode = Some(m);
        if m != Mode::Good {
            // Everything issued so far is revoked.
            p.active.clear();
        }
    };

    // `check`: which sign-in works, and why not.
    let line = check_login_line(&good);
    assert!(line.starts_with('✓'), "{line}");
    assert!(
        line.contains(&format!(
            "xoauth2, token from http://127.0.0.1:{provider_port}/token"
        )),
        "{line}"
    );
    let line = check_login_line(&wrong);
    assert!(line.starts_with('✗'), "{line}");
    assert!(
        line.contains("invalid_client: Invalid client secret provided."),
        "{line}"
    );
    assert!(!line.contains("wrong-secret"), "{line}");
    set(Mode::Revoked);
    let line = check_login_line(&good);
    assert!(line.starts_with('✗'), "{line}");
    assert!(
        line.contains("refused") && line.contains("XOAUTH2"),
        "{line}"
    );

    // `run`: signs in with a fresh token and processes a request.
    set(Mode::Good);
    let log = dir.join("run.log");
    let child = postroom(&good)
        .arg("run")
        .env("POSTROOM_LOG", "info,postroom=debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child, log };
    daemon.wait_log_count("IMAP session ready", 1, "a first session");
    dovecot.append("first-request");
    dovecot.wait_inbox_empty(&daemon);

    // The token is revoked and the provider refuses the client: the session is kicked, each
    // reconnect fails with the provider's message, and the process keeps going.
    set(Mode::BadClient);
    let out = dovecot.doveadm(&["kick", USER], None);
    assert!(
        out.status.success(),
        "kick: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.wait_log_count(
        "said: invalid_client: The client has been disabled.",
        2,
        "logged token failures",
    );
    assert!(!daemon.log().contains(SECRET));

    // The provider recovers: so does postroom, and mail flows again.
    set(Mode::Good);
    daemon.wait_log_count("IMAP session ready", 2, "a new session");
    dovecot.append("second-request");
    dovecot.wait_inbox_empty(&daemon);
    assert!(daemon.child.try_wait().unwrap().is_none());
}
