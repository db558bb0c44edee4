//! The staff page in a real browser: headless Chromium driven through chromedriver
//! (WebDriver, via fantoccini). Signs in, opens the queue, applies a held request, sees the
//! reply in the outbox, and finds the decision in the audit CSV export fetched with the
//! session's cookie.
//!
//! A second test puts two staff members on one request in two browser sessions at once
//! (issue 17): one takes it and the other's page says so without a reload; both decide; the
//! first wins and the second is shown who decided what, and when.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/install-browser`). Without them
//! the test fails when `CI` is set and is skipped, loudly, otherwise.
//!
//! With `POSTROOM_SCREENSHOTS=1` it writes the main pages to `docs/screenshots/*.png` (for the
//! README); otherwise the screenshots go to a temporary directory and are only checked to be
//! images.

use crate::support::Instance;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use postroom::config::Config;
use postroom::store::Store;
use postroom::store::outbox;
use postroom::store::staff::{self, StaffRole};
use postroom::web::{self, Status};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub(crate) const PASSWORD: &str = "correct horse battery staple";
const WIDTH: u32 = 1280;

fn find_program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// Chromium and chromedriver, or why not.
pub(crate) fn browser() -> Result<(PathBuf, PathBuf), String> {
    let chromium = find_program("chromium")
        .or_else(|| find_program("chromium-browser"))
        .ok_or("chromium is not installed")?;
    let driver = find_program("chromedriver").ok_or("chromedriver is not installed")?;
    Ok((chromium, driver))
}

/// A port nobody listens on right now.
pub(crate) async fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

pub(crate) async fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Shots {
    dir: PathBuf,
    _keep: Option<tempfile::TempDir>,
}

impl Shots {
    fn new() -> Shots {
        if std::env::var("POSTROOM_SCREENSHOTS").as_deref() == Ok("1") {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
            std::fs::create_dir_all(&dir).unwrap();
            Shots { dir, _keep: None }
        } else {
            let tmp = tempfile::tempdir().unwrap();
            Shots {
                dir: tmp.path().to_owned(),
                _keep: Some(tmp),
            }
        }
    }

    /// The whole page: the window is made as tall as the document (up to a limit), so the
    /// picture shows what a person scrolls through.
    async fn take(&self, c: &Client, name: &str) {
        let height = c
            .execute(
                "return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(900)
            .clamp(700, 2600) as u32;
        c.set_window_size(WIDTH, height + 140).await.unwrap();
        let png = c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        std::fs::write(self.dir.join(format!("{name}.png")), png).unwrap();
        c.set_window_size(WIDTH, 900).await.unwrap();
    }
}

/// Fill a text box as a person would.
pub(crate) async fn type_into(c: &Client, css: &str, text: &str) {
    let e = c.find(Locator::Css(css)).await.unwrap();
    e.clear().await.unwrap();
    e.send_keys(text).await.unwrap();
}

/// Click something that leads to another page, and wait until that page has loaded (a click
/// returns before a form's POST and its redirect have finished).
pub(crate) async fn click(c: &Client, css: &str) {
    let before = c.current_url().await.unwrap();
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let now = c.current_url().await.unwrap();
        let ready = c
            .execute("return document.readyState;", vec![])
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned));
        if now != before && ready.as_deref() == Some("complete") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "clicking {css} on {before} led nowhere"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(crate) async fn path_of(c: &Client) -> String {
    let u = c.current_url().await.unwrap();
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_owned(),
    }
}

/// A held request and enough around it that every page has something to show.
pub(crate) async fn instance() -> (Instance, Store, Arc<Config>) {
    // Targets (issue 17) so the queue shows time left; open all week, so what it says does not
    // depend on the day the test runs.
    let i = Instance::with_directory(
        "[queue]\nhours = \"Mon-Sun 00:00-24:00\"\n[queue.targets]\nunknown = \"4h\"\npassword_reset = \"1h\"\nnew_account = \"1d\"\n",
    );
    for f in [
        "unknown_kind.eml",          // HD-000001: held, applied below
        "password_reset_fields.eml", // applied
        "ambiguous_kind.eml",        // held
        "leaves_one_member.eml",     // applied; leaves Oakview at risk
        "other_org_target.eml",      // rejected
        "unlock.eml",                // applied: a status change
        "change_role_to_owner.eml",  // awaiting confirmation
        "ambiguous_account.eml",     // held
        "auto_reply.eml",            // ignored
    ] {
        i.process_fixture(f);
    }
    let cfg = Arc::new(Config::load(&i.config).unwrap());
    let store = Store::open(&cfg.database).await.unwrap();
    staff::add(&store, "alice", StaffRole::Admin, PASSWORD)
        .await
        .unwrap();
    // One reply the server refused, so the outbox shows a retry button.
    let mut c = store.read().await.unwrap();
    let id: i64 = sqlx::query_scalar(
        "SELECT o.id FROM outbox o JOIN requests r ON r.id = o.request_id WHERE r.outcome = 'rejected' LIMIT 1",
    )
    .fetch_one(&mut *c)
    .await
    .unwrap();
    outbox::mark_failed(
        &mut c,
        id,
        "550 5.7.1 <rosehill.care@nhs.example>: Recipient address rejected: Access denied",
    )
    .await
    .unwrap();
    drop(c);
    // A continuity pass: Oakview, left with one member, gets its first reminder.
    let pass = postroom::continuity::remind(&store, &cfg, true)
        .await
        .unwrap();
    assert_eq!(pass.reminded, ["oakview.gp@nhs.example"], "{pass:?}");
    (i, store, cfg)
}

/// One Chromium at a time: the machines have two cores, and the tests wait on real pages.
pub(crate) static ONE_BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A new headless Chromium session of `chromedriver` on `port`, with a profile of its own in
/// `profile` (its own cookies: another person).
pub(crate) async fn chromium_session(chromium: &Path, port: u16, profile: &Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session")
}

/// The staff page served from `store` and a chromedriver to drive Chromium against it, one
/// browser test at a time; `None` (after saying so) when Chromium is not installed outside CI.
pub(crate) struct Browsing {
    pub base: String,
    chromium: PathBuf,
    port: u16,
    chromedriver: tokio::process::Child,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    shutdown: CancellationToken,
    profiles: Vec<tempfile::TempDir>,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Browsing {
    /// `missing`: something else the test needs, or why it is missing.
    pub(crate) async fn start(
        store: &Store,
        cfg: &Arc<Config>,
        missing: Result<(), String>,
    ) -> Option<Browsing> {
        let turn = ONE_BROWSER.lock().await;
        let (chromium, driver) = match browser().and_then(|b| missing.map(|()| b)) {
            Ok(b) => b,
            Err(why) if std::env::var_os("CI").is_some() => {
                panic!("{why}: the browser tests need it in CI (run scripts/install-browser)")
            }
            Err(why) => {
                eprintln!(
                    "\n*** SKIPPED: {why}. Run scripts/install-browser (as root) to test the staff page in Chromium. ***\n"
                );
                return None;
            }
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let server = tokio::spawn(web::serve(
            store.clone(),
            cfg.clone(),
            listener,
            shutdown.clone(),
            Status::new(),
        ));
        let port = free_port().await;
        let chromedriver = tokio::process::Command::new(&driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        wait_for_port(port).await;
        Some(Browsing {
            base,
            chromium,
            port,
            chromedriver,
            server,
            shutdown,
            profiles: Vec::new(),
            _turn: turn,
        })
    }

    /// A new Chromium session with a profile of its own (another person).
    pub(crate) async fn session(&mut self) -> Client {
        let profile = tempfile::tempdir().unwrap();
        let client = chromium_session(&self.chromium, self.port, profile.path()).await;
        self.profiles.push(profile);
        client
    }

    /// Close the sessions and stop everything, then panic if the test's outcome was an error
    /// (so the browser is never left running).
    pub(crate) async fn finish(mut self, clients: Vec<Client>, outcome: Result<(), String>) {
        for c in clients {
            let _ = c.close().await;
        }
        let _ = self.chromedriver.kill().await;
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.server).await;
        outcome.unwrap_or_else(|e| panic!("{e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_applies_a_held_request_in_chromium() {
    let (_instance, store, cfg) = instance().await;
    let Some(mut b) = Browsing::start(&store, &cfg, Ok(())).await else {
        return;
    };
    let client = b.session().await;
    let outcome = drive(&client, &b.base).await;
    b.finish(vec![client], outcome).await;
}

/// What a person does; any failure is returned so the browser is closed before panicking.
async fn drive(c: &Client, base: &str) -> Result<(), String> {
    let shots = Shots::new();
    c.set_window_size(WIDTH, 900)
        .await
        .map_err(|e| e.to_string())?;

    // A page behind the session leads to the sign-in form, and back after signing in.
    c.goto(&format!("{base}/queue"))
        .await
        .map_err(|e| e.to_string())?;
    let here = path_of(c).await;
    if !here.starts_with("/login") {
        return Err(format!("not sent to sign in: {here}"));
    }
    shots.take(c, "login").await;
    type_into(c, "#name", "alice").await;
    type_into(c, "#password", PASSWORD).await;
    click(c, "form[action='/login'] button[type=submit]").await;
    let here = path_of(c).await;
    if here != "/queue" {
        let page = c.source().await.unwrap_or_default();
        return Err(format!("after signing in: {here}\n{page}"));
    }
    let queue = c.source().await.map_err(|e| e.to_string())?;
    for expected in ["HD-000001", "HD-000003", "unknown_kind", "Review queue"] {
        if !queue.contains(expected) {
            return Err(format!("the queue lacks {expected}"));
        }
    }
    shots.take(c, "queue").await;

    // A request held because it named two accounts (issue 12): its *apply as* form comes
    // prefilled with what postroom understood — the kind, the requester — and offers the
    // mailbox's members as the account.
    c.goto(&format!("{base}/requests/HD-000008"))
        .await
        .map_err(|e| e.to_string())?;
    let value = |css: &'static str| async move {
        c.find(Locator::Css(css))
            .await
            .map_err(|e| format!("{css}: {e}"))?
            .prop("value")
            .await
            .map_err(|e| format!("{css}: {e}"))
    };
    if value("#kind").await?.as_deref() != Some("password_reset") {
        return Err("the apply form does not start from the kind understood".into());
    }
    if value("#f-requested_by").await?.as_deref() != Some("jane.doe@nhs.example") {
        return Err("the apply form does not start from the requester understood".into());
    }
    let choices = c
        .find_all(Locator::Css("datalist#c-account option"))
        .await
        .map_err(|e| e.to_string())?;
    let mut offered = Vec::new();
    for o in &choices {
        offered.push(
            o.attr("value")
                .await
                .map_err(|e| e.to_string())?
                .unwrap_or_default(),
        );
    }
    if !offered.iter().any(|a| a == "tom.smith@nhs.example") {
        return Err(format!(
            "the account box offers {offered:?}, not the mailbox's members"
        ));
    }
    shots.take(c, "request-prefilled").await;
    c.goto(&format!("{base}/queue"))
        .await
        .map_err(|e| e.to_string())?;

    // Open the held request and apply it as a password reset.
    click(c, "a[href='/requests/HD-000001']").await;
    let detail = c.source().await.map_err(|e| e.to_string())?;
    if !detail.contains("Hello, can you help?")
        || !detail.contains("We could not tell what is being asked for.")
    {
        return Err("the request page lacks the email or the reason".into());
    }
    shots.take(c, "request").await;
    c.find(Locator::Css("#kind"))
        .await
        .map_err(|e| e.to_string())?
        .select_by_value("password_reset")
        .await
        .map_err(|e| e.to_string())?;
    type_into(c, "#f-account", "tom.smith@nhs.example").await;
    type_into(c, "#f-requested_by", "jane.doe@nhs.example").await;
    click(
        c,
        "form[action='/requests/HD-000001/apply'] button[type=submit]",
    )
    .await;
    let here = path_of(c).await;
    if here != "/requests/HD-000001?done=decided" {
        return Err(format!("after applying: {here}"));
    }
    let decided = c.source().await.map_err(|e| e.to_string())?;
    if !decided.contains("The reply to rosehill.care@nhs.example is in the outbox (pending).") {
        return Err(format!("no word of the reply:\n{decided}"));
    }
    shots.take(c, "request-decided").await;

    // The reply waits in the outbox.
    click(c, "nav.nav a[href='/outbox']").await;
    click(c, "nav.tabs a[href='/outbox?status=pending']").await;
    let out = c.source().await.map_err(|e| e.to_string())?;
    if !out.contains("[HD-000001] Done: Question") {
        return Err(format!("the reply is not in the outbox:\n{out}"));
    }
    click(c, "nav.nav a[href='/outbox']").await;
    shots.take(c, "outbox").await;

    // The other pages, for the pictures and to see they render in a browser.
    c.goto(&format!(
        "{base}/requests?mailbox=rosehill.care%40nhs.example"
    ))
    .await
    .map_err(|e| e.to_string())?;
    if !c
        .source()
        .await
        .map_err(|e| e.to_string())?
        .contains("requests match.")
    {
        return Err("the search found nothing".into());
    }
    shots.take(c, "requests").await;
    c.goto(&format!("{base}/directory"))
        .await
        .map_err(|e| e.to_string())?;
    // Continuity: the mailbox being reminded, why, and how often so far.
    let reminders = c
        .find(Locator::Css("#continuity tbody tr"))
        .await
        .map_err(|e| format!("no continuity reminder listed: {e}"))?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    if !(reminders.contains("oakview.gp@nhs.example")
        && reminders.contains("too few active members"))
    {
        return Err(format!("the continuity card shows {reminders:?}"));
    }
    shots.take(c, "directory").await;
    c.goto(&format!("{base}/audit"))
        .await
        .map_err(|e| e.to_string())?;
    shots.take(c, "audit").await;
    // The forensic report of a mailbox, stamped with the chain's verdict.
    c.goto(&format!(
        "{base}/audit/report?mailbox=rosehill.care%40nhs.example"
    ))
    .await
    .map_err(|e| e.to_string())?;
    let stamp = c
        .find(Locator::Css("#chain [role=status]"))
        .await
        .map_err(|e| format!("no chain verdict on the report: {e}"))?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    if !stamp.contains("audit chain intact") {
        return Err(format!("the report's stamp says {stamp:?}"));
    }
    if c.find_all(Locator::Css(".report-entry"))
        .await
        .map_err(|e| e.to_string())?
        .is_empty()
    {
        return Err("the report lists no request".into());
    }
    shots.take(c, "report").await;
    // A mailbox's history: each membership and the request behind each change.
    c.goto(&format!(
        "{base}/directory/history?mailbox=oakview.gp%40nhs.example"
    ))
    .await
    .map_err(|e| e.to_string())?;
    let rows = c
        .find_all(Locator::Css("#history tbody tr"))
        .await
        .map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Err("the history lists nobody".into());
    }
    let history = c
        .find(Locator::Css("#history"))
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    if !history.contains("HD-") {
        return Err(format!("no request named in the history: {history}"));
    }
    shots.take(c, "history").await;

    // The export, fetched as a download would be: with the session's cookie.
    let cookie = c
        .get_named_cookie("postroom_session")
        .await
        .map_err(|e| e.to_string())?;
    if cookie.http_only() != Some(true) {
        return Err("the session cookie is not HttpOnly".into());
    }
    let csv = fetch(
        &format!("{base}/audit.csv?actor=staff%3Aalice"),
        Some(cookie.value()),
    )
    .await?;
    let reset = csv
        .lines()
        .find(|l| l.contains("password.reset"))
        .ok_or_else(|| format!("no password reset in the export:\n{csv}"))?;
    if !reset.contains("staff:alice") || !reset.contains("tom.smith@nhs.example") {
        return Err(format!("the export's line: {reset}"));
    }
    if !csv.contains("request.applied") || !csv.contains("HD-000001") {
        return Err(format!("the decision is not in the export:\n{csv}"));
    }
    // Without the cookie there is no export.
    let stranger = fetch(&format!("{base}/audit.csv"), None).await?;
    if stranger.contains("password.reset") {
        return Err("the export was given without a session".into());
    }

    // Staff (alice is an admin): add an agent through the page's form.
    click(c, "nav.nav a[href='/staff']").await;
    type_into(c, "#new-name", "bob").await;
    type_into(c, "#new-password", "bob's long password").await;
    click(c, "form[action='/staff'] button[type=submit]").await;
    let here = path_of(c).await;
    if here != "/staff?done=added&name=bob" {
        let page = c.source().await.unwrap_or_default();
        return Err(format!("after adding bob: {here}\n{page}"));
    }
    let staff = c.source().await.map_err(|e| e.to_string())?;
    if !staff.contains("bob was added") || !staff.contains("action=\"/staff/bob/disable\"") {
        return Err(format!("bob is not on the staff page:\n{staff}"));
    }
    shots.take(c, "staff").await;

    // Saved replies (issue 17): an admin adds one, with placeholders; it is then offered on a
    // held request's reject form.
    c.goto(&format!("{base}/replies"))
        .await
        .map_err(|e| e.to_string())?;
    type_into(c, "#new-title", "Ask for the account").await;
    type_into(
        c,
        "#new-body",
        "Dear {site},\n\nplease send {reference} again, naming the account it is about.",
    )
    .await;
    click(c, "form[action='/replies'] button[type=submit]").await;
    let replies = c.source().await.map_err(|e| e.to_string())?;
    if !replies.contains("Ask for the account") {
        return Err(format!("the saved reply is not listed:\n{replies}"));
    }
    shots.take(c, "replies").await;

    // Sign out: back to the sign-in page, and the queue is closed again.
    click(c, "form[action='/logout'] button").await;
    if !path_of(c).await.starts_with("/login") {
        return Err("signing out did not lead to the sign-in page".into());
    }
    c.goto(&format!("{base}/queue"))
        .await
        .map_err(|e| e.to_string())?;
    if !path_of(c).await.starts_with("/login") {
        return Err("the queue is open after signing out".into());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_staff_members_on_one_request_in_two_chromium_sessions() {
    let i = Instance::with_directory("");
    for f in [
        "unknown_kind.eml",      // HD-000001: both go for it
        "ambiguous_kind.eml",    // HD-000002
        "ambiguous_account.eml", // HD-000003
    ] {
        i.process_fixture(f);
    }
    let cfg = Arc::new(Config::load(&i.config).unwrap());
    let store = Store::open(&cfg.database).await.unwrap();
    staff::add(&store, "alice", StaffRole::Admin, PASSWORD)
        .await
        .unwrap();
    staff::add(&store, "bob", StaffRole::Agent, PASSWORD)
        .await
        .unwrap();
    let Some(mut b) = Browsing::start(&store, &cfg, Ok(())).await else {
        return;
    };
    let alice = b.session().await;
    let bob = b.session().await;
    let outcome = two_people(&alice, &bob, &b.base).await;
    b.finish(vec![alice, bob], outcome).await;
}

pub(crate) async fn sign_in(c: &Client, base: &str, name: &str) -> Result<(), String> {
    c.set_window_size(WIDTH, 900)
        .await
        .map_err(|e| e.to_string())?;
    c.goto(&format!("{base}/login"))
        .await
        .map_err(|e| e.to_string())?;
    type_into(c, "#name", name).await;
    type_into(c, "#password", PASSWORD).await;
    click(c, "form[action='/login'] button[type=submit]").await;
    match path_of(c).await.as_str() {
        "/" | "/queue" => Ok(()),
        other => Err(format!("{name} is at {other} after signing in")),
    }
}

/// Wait until the presence notice of `c`'s page (refreshed by its script, no reload) says
/// `text`.
async fn notice_says(c: &Client, text: &str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        let now = c
            .find(Locator::Css("#presence"))
            .await
            .map_err(|e| format!("no presence notice: {e}"))?
            .text()
            .await
            .map_err(|e| e.to_string())?;
        if now.contains(text) {
            return Ok(now);
        }
        if Instant::now() > deadline {
            return Err(format!("the notice never said {text:?}; it says {now:?}"));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Alice and Bob on HD-000001 at once.
async fn two_people(a: &Client, b: &Client, base: &str) -> Result<(), String> {
    let shots = Shots::new();
    sign_in(a, base, "alice").await?;
    sign_in(b, base, "bob").await?;
    let request = format!("{base}/requests/HD-000001");
    a.goto(&request).await.map_err(|e| e.to_string())?;
    b.goto(&request).await.map_err(|e| e.to_string())?;
    // Each sees the other there.
    notice_says(b, "alice has this request open").await?;
    notice_says(a, "bob has this request open").await?;

    // Alice takes it; Bob's page says so without a reload.
    click(a, "form[action='/requests/HD-000001/claim'] button.primary").await;
    let page = a.source().await.map_err(|e| e.to_string())?;
    if !page.contains("<strong>You</strong> have taken this request") {
        return Err(format!("alice's claim is not shown:\n{page}"));
    }
    notice_says(b, "alice has taken this request").await?;
    // Alice starts writing her answer: Bob is told she is deciding it.
    type_into(
        a,
        "#reject-message",
        "Please tell us whose account this is about.",
    )
    .await;
    notice_says(b, "alice is deciding this request now").await?;
    shots.take(b, "request-presence").await;

    // Both decide; Alice is first and wins.
    type_into(b, "#reject-message", "We need the account's address.").await;
    click(
        a,
        "form[action='/requests/HD-000001/reject'] button[type=submit]",
    )
    .await;
    let done = a.source().await.map_err(|e| e.to_string())?;
    if !done.contains("Decision recorded: the request is now rejected.") {
        return Err(format!("alice's decision is not recorded:\n{done}"));
    }
    // Bob's notice changes under him; he sends his anyway and is shown what happened.
    notice_says(b, "HD-000001 has been decided: rejected by alice at").await?;
    click(
        b,
        "form[action='/requests/HD-000001/reject'] button[type=submit]",
    )
    .await;
    let told = b
        .find(Locator::Css(".alert-error"))
        .await
        .map_err(|e| format!("bob is not told: {e}"))?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    if !told.contains("HD-000001 was already decided: rejected by alice at") {
        return Err(format!("bob is told {told:?}"));
    }
    shots.take(b, "request-already-decided").await;

    // Bob gives the two others to himself from the queue in one step; Alice's queue shows it.
    b.goto(&format!("{base}/queue"))
        .await
        .map_err(|e| e.to_string())?;
    for r in ["HD-000002", "HD-000003"] {
        b.find(Locator::Css(&format!("#sel-{r}")))
            .await
            .map_err(|e| e.to_string())?
            .click()
            .await
            .map_err(|e| e.to_string())?;
    }
    click(b, "#bulk button[value=assign]").await;
    let result = b.source().await.map_err(|e| e.to_string())?;
    if !result.contains("Gave 2 of 2 to bob") {
        return Err(format!("the bulk result:\n{result}"));
    }
    a.goto(&format!("{base}/queue"))
        .await
        .map_err(|e| e.to_string())?;
    let rows = a
        .find(Locator::Css("table.list tbody"))
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    if rows.matches("bob").count() != 2 {
        return Err(format!("alice's queue shows {rows:?}"));
    }
    shots.take(a, "queue-team").await;
    Ok(())
}

/// GET `url` outside the browser, with the session cookie if given; the body (a redirect's
/// body is empty).
async fn fetch(url: &str, session: Option<&str>) -> Result<String, String> {
    use hyper_util::client::legacy::Client as HttpClient;
    use hyper_util::rt::TokioExecutor;
    let client: HttpClient<HttpConnector, axum::body::Body> =
        HttpClient::builder(TokioExecutor::new()).build_http();
    let mut req = axum::http::Request::get(url);
    if let Some(s) = session {
        req = req.header("cookie", format!("postroom_session={s}"));
    }
    let res = client
        .request(
            req.body(axum::body::Body::empty())
                .map_err(|e| e.to_string())?,
        )
        .await
        .map_err(|e| e.to_string())?;
    let bytes = axum::body::to_bytes(axum::body::Body::new(res.into_body()), 64 << 20)
        .await
        .map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
