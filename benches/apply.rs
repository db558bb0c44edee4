//! Apply, in process (issue 7, part 2): requests per second through the whole pipeline WITH
//! the database transaction (message, request, directory change, audit events, outbox reply),
//! on SQLite and, when `BENCH_PG_URL` is set, PostgreSQL.
//!
//! The database holds a directory of 5,000 organisations, 10,000 mailboxes (two each) and
//! 50,000 accounts (per mailbox one owner and four members, two of them locked), imported
//! with `directory_csv::import`, and `BENCH_EARLIER` (100,000) earlier requests already
//! stored (loaded through `pipeline::Group`, 500 messages per transaction; not measured).
//! Then `BENCH_APPLY` (2,000) new requests, each the owner asking to unlock a locked member
//! of a random mailbox, are measured:
//!
//! - per message: `pipeline::process(.., Mode::Apply)`, one transaction each, in turn;
//! - grouped (SQLite only), as the IMAP watcher does: `pipeline::prepare` for 50 messages,
//!   then one `pipeline::Group` for them, committed.
//!
//! Each part has messages of its own (no duplicates). Fewer than 90 % `Applied` is an error:
//! a bench that measures refusals is lying.
//!
//! `BENCH_PG_URL` names a PostgreSQL server whose user may CREATE DATABASE: a fresh database
//! is made there and dropped again at the end. Without `--bench` (as `cargo test` runs bench
//! targets) it does nothing and exits 0.
//!
//! Prints a table and, last, one line of JSON.

// The tests' PostgreSQL helpers: a database made and dropped on a server.
// (Its unit test is compiled without a harness here, hence the allow.)
#[path = "../tests/common/testdb.rs"]
#[allow(unused_imports)]
mod testdb;

use postroom::Outcome;
use postroom::config::Config;
use postroom::pipeline::{self, Mode};
use postroom::store::Store;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

const AUTHSERV: &str = "mail.bench.example";
const DOMAIN: &str = "bench.example";
const ORGANISATIONS: usize = 5_000;
const MAILBOXES_PER_ORG: usize = 2;
const MAILBOXES: usize = ORGANISATIONS * MAILBOXES_PER_ORG;
/// Members per mailbox besides its owner; members 1..=LOCKED_MEMBERS are locked.
const MEMBERS: usize = 4;
const LOCKED_MEMBERS: usize = 2;
const ACCOUNTS: usize = MAILBOXES * (1 + MEMBERS);
/// Messages per transaction when loading the earlier requests.
const PRELOAD_GROUP: usize = 500;
/// Messages per transaction in the grouped part (the IMAP watcher's fetch batch).
const GROUP: usize = 50;

/// A PostgreSQL database to drop: (server URL, database name).
type PgDatabase = (String, String);

/// The SQLite directory and the PostgreSQL database to remove when [`die`] exits.
static LEFTOVERS: std::sync::Mutex<(Vec<PathBuf>, Vec<PgDatabase>)> =
    std::sync::Mutex::new((Vec::new(), Vec::new()));

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("apply: ERROR: {msg}");
    if let Ok(mut l) = LEFTOVERS.lock() {
        for dir in l.0.drain(..) {
            let _ = std::fs::remove_dir_all(dir);
        }
        for (server, name) in l.1.drain(..) {
            let _ = testdb::admin(
                &server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            );
        }
    }
    std::process::exit(1);
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => match v.trim().parse() {
            Ok(n) => n,
            Err(_) => die(format!("{name}={v:?} is not a number")),
        },
        _ => default,
    }
}

fn config(url: &str) -> Config {
    Config::from_toml_with_env(
        &format!(
            "[database]\nurl = \"{url}\"\nmax_connections = 4\n\
             [helpdesk]\naddress = \"helpdesk@{DOMAIN}\"\n\
             [trust]\nauthserv_id = \"{AUTHSERV}\"\n\
             [confirmation]\nenabled = false\n\
             [limits]\nmax_replies_per_mailbox_per_day = 100000000\n"
        ),
        &[],
    )
    .unwrap_or_else(|e| die(format!("config: {e}")))
}

fn mailbox(k: usize) -> String {
    format!("mb{k}@{DOMAIN}")
}

fn owner(k: usize) -> String {
    format!("owner{k}@{DOMAIN}")
}

/// Member `j` (1..=MEMBERS) of mailbox `k`.
fn member(k: usize, j: usize) -> String {
    format!("m{k}-{j}@{DOMAIN}")
}

fn directory_csv() -> String {
    let mut csv = String::with_capacity(ACCOUNTS * 64);
    csv.push_str("organisation,mailbox,account,name,role,status\n");
    for k in 0..MAILBOXES {
        let org = k / MAILBOXES_PER_ORG;
        let mb = mailbox(k);
        csv.push_str(&format!(
            "Org {org},{mb},{},Owner {k},owner,active\n",
            owner(k)
        ));
        for j in 1..=MEMBERS {
            let status = if j <= LOCKED_MEMBERS {
                "locked"
            } else {
                "active"
            };
            csv.push_str(&format!(
                "Org {org},{mb},{},Member {k} {j},member,{status}\n",
                member(k, j)
            ));
        }
    }
    csv
}

/// The owner of mailbox `k` asks to unlock `target`, with a passing Authentication-Results.
fn request(tag: &str, i: usize, k: usize, target: &str, date: &str) -> Vec<u8> {
    format!(
        "Authentication-Results: {AUTHSERV}; dkim=pass header.d={DOMAIN} header.s=s1; \
         dmarc=pass header.from={DOMAIN}\r\n\
         From: Mailbox {k} <{mb}>\r\n\
         To: Helpdesk <helpdesk@{DOMAIN}>\r\n\
         Subject: Locked out\r\n\
         Date: {date}\r\n\
         Message-ID: <{tag}-{i}.{pid}@{DOMAIN}>\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=\"utf-8\"\r\n\
         \r\n\
         Hi,\r\n\r\nOur colleague is locked out of the account, please unlock it.\r\n\r\n\
         Account: {target}\r\n\
         Requested by: {owner}\r\n\r\nThanks\r\n",
        mb = mailbox(k),
        owner = owner(k),
        pid = std::process::id(),
    )
    .into_bytes()
}

/// (mailbox, account) for every locked member, in a fixed random order.
fn locked_members() -> Vec<(usize, String)> {
    let mut v: Vec<(usize, String)> = (0..MAILBOXES)
        .flat_map(|k| (1..=LOCKED_MEMBERS).map(move |j| (k, member(k, j))))
        .collect();
    v.shuffle(&mut rand::rngs::StdRng::seed_from_u64(7));
    v
}

/// Outcomes (with their reason) of a run of messages.
#[derive(Default)]
struct Tally {
    by_outcome: BTreeMap<String, usize>,
    applied: usize,
}

impl Tally {
    fn add(&mut self, p: &pipeline::Processed) {
        let key = match &p.reason {
            Some(r) => format!("{:?}/{r}", p.outcome),
            None => format!("{:?}", p.outcome),
        };
        *self.by_outcome.entry(key).or_default() += 1;
        if p.outcome == Outcome::Applied {
            self.applied += 1;
        }
    }

    fn applied(&self) -> usize {
        self.applied
    }

    fn show(&self) -> String {
        self.by_outcome
            .iter()
            .map(|(k, n)| format!("{k}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Dies unless at least 90 % of `n` messages were applied.
    fn require_applied(&self, what: &str, n: usize) {
        if self.applied() * 10 < n * 9 {
            die(format!(
                "{what}: only {} of {n} requests applied ({}); the figure would measure refusals",
                self.applied(),
                self.show()
            ));
        }
    }
}

struct Figures {
    import_s: f64,
    preload_s: f64,
    earlier_applied: usize,
    per_message: f64,
    per_message_applied: usize,
    grouped: Option<(f64, usize)>,
}

async fn count(store: &Store, table: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| die(format!("counting {table}: {e}")))
}

async fn run_backend(name: &str, url: &str, earlier: usize, n: usize, grouped: bool) -> Figures {
    let cfg = config(url);
    let store = Store::open(&cfg.database)
        .await
        .unwrap_or_else(|e| die(format!("{name}: open {url}: {e}")));

    // The directory.
    let csv = directory_csv();
    eprintln!(
        "apply: {name}: importing {ACCOUNTS} accounts, {MAILBOXES} mailboxes, {ORGANISATIONS} organisations"
    );
    let t = Instant::now();
    let summary = postroom::directory_csv::import(&store, csv.as_bytes(), "bench-apply.csv")
        .await
        .unwrap_or_else(|e| die(format!("{name}: directory import: {e}")));
    let import_s = t.elapsed().as_secs_f64();
    eprintln!("apply: {name}:   import took {import_s:.1} s ({summary:?})");
    for (table, want) in [
        ("organisations", ORGANISATIONS),
        ("mailboxes", MAILBOXES),
        ("accounts", ACCOUNTS),
    ] {
        let got = count(&store, table).await;
        if got != want as i64 {
            die(format!(
                "{name}: {got} {table} after the import, expected {want}"
            ));
        }
    }

    // Locked members: the first 2n are kept for the measured parts, the rest are unlocked by
    // earlier requests; once they are used up, earlier requests ask to unlock an active
    // member (refused, already active: stored and answered all the same).
    let locked = locked_members();
    if locked.len() < 2 * n {
        die(format!(
            "BENCH_APPLY={n}: only {} locked accounts for 2 × {n} measured requests",
            locked.len()
        ));
    }
    let (measured, spare) = locked.split_at(2 * n);
    let date = chrono::Utc::now().to_rfc2822();

    // Earlier requests (not measured).
    eprintln!(
        "apply: {name}: storing {earlier} earlier requests ({PRELOAD_GROUP} per transaction)"
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let mut tally = Tally::default();
    let t = Instant::now();
    let mut i = 0;
    while i < earlier {
        let end = (i + PRELOAD_GROUP).min(earlier);
        let raws: Vec<Vec<u8>> = (i..end)
            .map(|e| match spare.get(e) {
                Some((k, target)) => request("earlier", e, *k, target, &date),
                None => {
                    let k = rng.gen_range(0..MAILBOXES);
                    let j = rng.gen_range(LOCKED_MEMBERS + 1..=MEMBERS);
                    request("earlier", e, k, &member(k, j), &date)
                }
            })
            .collect();
        run_group(
            &store,
            &cfg,
            &raws,
            name,
            "preload",
            "bench:earlier",
            &mut tally,
        )
        .await;
        i = end;
        if i % 20_000 == 0 && i < earlier {
            eprintln!(
                "apply: {name}:   {i} stored, {:.0} s",
                t.elapsed().as_secs_f64()
            );
        }
    }
    let preload_s = t.elapsed().as_secs_f64();
    let earlier_applied = tally.applied();
    eprintln!(
        "apply: {name}:   preload took {preload_s:.1} s ({:.0} req/s; {})",
        earlier as f64 / preload_s.max(1e-9),
        tally.show()
    );
    let stored = count(&store, "requests").await;
    if stored < earlier as i64 {
        die(format!(
            "{name}: {stored} requests stored, expected {earlier}"
        ));
    }

    // (a) One transaction per message.
    let (part_a, part_b) = measured.split_at(n);
    let raws: Vec<Vec<u8>> = part_a
        .iter()
        .enumerate()
        .map(|(i, (k, target))| request("single", i, *k, target, &date))
        .collect();
    eprintln!("apply: {name}: {n} requests, one transaction each");
    let mut tally = Tally::default();
    let t = Instant::now();
    for raw in &raws {
        let done = pipeline::process(&store, &cfg, raw, "bench:single", Mode::Apply)
            .await
            .unwrap_or_else(|e| die(format!("{name}: process: {e}")));
        tally.add(&done);
    }
    let per_message = n as f64 / t.elapsed().as_secs_f64().max(1e-9);
    tally.require_applied(&format!("{name}, per message"), n);
    let per_message_applied = tally.applied();
    eprintln!("apply: {name}:   {per_message:.0} req/s ({})", tally.show());

    // (b) Grouped, as the IMAP watcher on SQLite.
    let grouped = if grouped {
        let raws: Vec<Vec<u8>> = part_b
            .iter()
            .enumerate()
            .map(|(i, (k, target))| request("grouped", i, *k, target, &date))
            .collect();
        eprintln!("apply: {name}: {n} requests, {GROUP} per transaction");
        let mut tally = Tally::default();
        let t = Instant::now();
        for chunk in raws.chunks(GROUP) {
            run_group(
                &store,
                &cfg,
                chunk,
                name,
                "grouped",
                "bench:grouped",
                &mut tally,
            )
            .await;
        }
        let rate = n as f64 / t.elapsed().as_secs_f64().max(1e-9);
        tally.require_applied(&format!("{name}, grouped"), n);
        eprintln!("apply: {name}:   {rate:.0} req/s ({})", tally.show());
        Some((rate, tally.applied()))
    } else {
        None
    };

    let stored = count(&store, "requests").await;
    let want = earlier + n + if grouped.is_some() { n } else { 0 };
    if stored != want as i64 {
        die(format!(
            "{name}: {stored} requests stored at the end, expected {want}"
        ));
    }
    store.close().await;
    Figures {
        import_s,
        preload_s,
        earlier_applied,
        per_message,
        per_message_applied,
        grouped,
    }
}

fn row(backend: &str, figure: &str, value: String) {
    println!("{backend:<9} {figure:<60} {value:>16}");
}

fn json_f(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.1}"))
}

fn backend_json(f: &Figures, earlier: usize) -> String {
    format!(
        "{{\"per_message_reqs_per_s\":{:.1},\"per_message_applied\":{},\"grouped_reqs_per_s\":{},\"grouped_applied\":{},\"import_s\":{:.2},\"preload_s\":{:.2},\"preload_reqs_per_s\":{:.1},\"earlier_applied\":{}}}",
        f.per_message,
        f.per_message_applied,
        json_f(f.grouped.map(|g| g.0)),
        f.grouped.map_or("null".into(), |g| g.1.to_string()),
        f.import_s,
        f.preload_s,
        earlier as f64 / f.preload_s.max(1e-9),
        f.earlier_applied,
    )
}

/// Prepare `raws`, then process them in ONE `pipeline::Group` and commit it, as the IMAP
/// watcher on SQLite does; any error ends the bench.
async fn run_group(
    store: &Store,
    cfg: &Config,
    raws: &[Vec<u8>],
    name: &str,
    part: &str,
    source: &str,
    tally: &mut Tally,
) {
    let mut prepared = Vec::with_capacity(raws.len());
    for raw in raws {
        prepared.push(pipeline::prepare(cfg, raw).await);
    }
    let mut group = pipeline::Group::begin(store)
        .await
        .unwrap_or_else(|e| die(format!("{name}: {part}: begin: {e}")));
    for p in &prepared {
        let (g, done) = group
            .process(cfg, p, source)
            .await
            .unwrap_or_else(|e| die(format!("{name}: {part}: {e}")));
        group = g;
        tally.add(&done);
    }
    group
        .commit()
        .await
        .unwrap_or_else(|e| die(format!("{name}: {part}: commit: {e}")));
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs bench targets without --bench: too slow for a test.
        println!("apply: skipped (needs --bench: cargo bench --bench apply, or scripts/bench)");
        return;
    }
    let n = env_usize("BENCH_APPLY", 2000);
    let earlier = env_usize("BENCH_EARLIER", 100_000);
    if n == 0 {
        die("BENCH_APPLY=0: nothing to measure");
    }
    let pg_server = std::env::var("BENCH_PG_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    if let Some(u) = &pg_server
        && !(u.starts_with("postgres://") || u.starts_with("postgresql://"))
    {
        die(format!("BENCH_PG_URL={u:?} is not a postgres:// URL"));
    }

    let dir = tempfile::Builder::new()
        .prefix("postroom-bench-apply-")
        .tempdir()
        .unwrap_or_else(|e| die(format!("temp dir: {e}")));
    if let Ok(mut l) = LEFTOVERS.lock() {
        l.0.push(dir.path().to_path_buf());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(format!("tokio runtime: {e}")));

    let sqlite_url = format!("sqlite://{}", dir.path().join("apply.db").display());
    let sqlite = rt.block_on(run_backend("sqlite", &sqlite_url, earlier, n, true));

    let postgres = match &pg_server {
        None => {
            eprintln!("postgres: skipped (BENCH_PG_URL not set)");
            None
        }
        Some(server) => {
            let name = format!("postroom_bench_apply_{}", std::process::id());
            testdb::admin(server, &format!("CREATE DATABASE {name}"))
                .unwrap_or_else(|e| die(format!("CREATE DATABASE {name} on BENCH_PG_URL: {e}")));
            if let Ok(mut l) = LEFTOVERS.lock() {
                l.1.push((server.clone(), name.clone()));
            }
            let url = testdb::with_database(server, &name);
            let f = rt.block_on(run_backend("postgres", &url, earlier, n, false));
            if let Err(e) = testdb::admin(
                server,
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ) {
                eprintln!("apply: could not drop the database {name}: {e}");
            }
            if let Ok(mut l) = LEFTOVERS.lock() {
                l.1.clear();
            }
            Some(f)
        }
    };
    drop(rt);

    println!();
    println!("{:<9} {:<60} {:>16}", "backend", "figure", "value");
    for (name, f) in [("sqlite", Some(&sqlite)), ("postgres", postgres.as_ref())] {
        let Some(f) = f else {
            row(name, "skipped (BENCH_PG_URL not set)", "-".into());
            continue;
        };
        row(
            name,
            &format!("directory import ({ACCOUNTS} accounts, {MAILBOXES} mailboxes)"),
            format!("{:.1} s", f.import_s),
        );
        row(
            name,
            &format!(
                "preload, {earlier} earlier requests ({} applied)",
                f.earlier_applied
            ),
            format!(
                "{:.1} s, {:.0}/s",
                f.preload_s,
                earlier as f64 / f.preload_s.max(1e-9)
            ),
        );
        row(
            name,
            &format!(
                "apply, one transaction per message ({} of {n} applied)",
                f.per_message_applied
            ),
            format!("{:.0} req/s", f.per_message),
        );
        if let Some((rate, applied)) = f.grouped {
            row(
                name,
                &format!("apply, grouped {GROUP} per transaction ({applied} of {n} applied)"),
                format!("{rate:.0} req/s"),
            );
        }
    }
    println!(
        "{{\"apply\":{{\"sqlite\":{},\"postgres\":{},\"organisations\":{ORGANISATIONS},\"mailboxes\":{MAILBOXES},\"accounts\":{ACCOUNTS},\"earlier_requests\":{earlier},\"requests\":{n},\"group_size\":{GROUP}}}}}",
        backend_json(&sqlite, earlier),
        postgres
            .as_ref()
            .map_or("null".into(), |f| backend_json(f, earlier)),
    );
    drop(dir);
}
