//! Name resolution at national scale (issue 12, point 9): a directory of `BENCH_ACCOUNTS`
//! (1,500,000) accounts in `BENCH_MAILBOXES` (100,000) shared mailboxes (one organisation
//! each, 15 accounts per organisation on average, sizes varying 1–30), on SQLite; then
//! `BENCH_LOOKUPS` (20,000) resolutions of names as sites write them (whole names, initial and
//! surname, first names alone, names of no one), each through `resolve::name` in a read
//! transaction, and the p50/p99/max per resolution.
//!
//! The directory is written with plain INSERTs in large transactions (keys computed by
//! `resolve::NameKeys`, as `insert_account` does), not through `directory import` (which
//! `scripts/bench`'s import figures measure). `BENCH_ACCOUNTS=150000 BENCH_MAILBOXES=10000`
//! is the quick mode (about a minute). Without `--bench` it does nothing and exits 0.
//!
//! Prints a table and, last, one line of JSON.

use postroom::config::DatabaseConfig;
use postroom::request::RequestKind;
use postroom::resolve::{self, NameKeys, Resolved, Scope};
use postroom::store::Store;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

const FIRST: [&str; 40] = [
    "Ravi",
    "Fatima",
    "Joe",
    "Hannah",
    "Chloë",
    "Siobhan",
    "Mary-Jane",
    "Tomasz",
    "Aisha",
    "Owen",
    "Emma",
    "Mohammed",
    "Priya",
    "Lucy",
    "Mark",
    "Grace",
    "Daniel",
    "Zoë",
    "Kwame",
    "Sophie",
    "Oliver",
    "Amelia",
    "Jack",
    "Isla",
    "Harry",
    "Ava",
    "George",
    "Mia",
    "Noah",
    "Ella",
    "Leo",
    "Lily",
    "Arthur",
    "Freya",
    "Oscar",
    "Ivy",
    "Theo",
    "Rosie",
    "Finley",
    "Esther",
];
const LAST: [&str; 40] = [
    "Gupta", "Ali", "Bloggs", "Moss", "Brontë", "O'Neill", "Smith", "Nowak", "Khan", "Davies",
    "Clarke", "Iqbal", "Sharma", "Brown", "Dunn", "Jones", "Taylor", "Wilson", "Evans", "Thomas",
    "Johnson", "Roberts", "Walker", "Wright", "Robinson", "Thompson", "White", "Hughes", "Edwards",
    "Green", "Hall", "Wood", "Harris", "Lewis", "Martin", "Jackson", "Clark", "Turner", "Hill",
    "Scott",
];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("ERROR: {msg}");
    std::process::exit(1)
}

fn name_of(rng: &mut rand::rngs::StdRng) -> String {
    format!(
        "{} {}",
        FIRST[rng.gen_range(0..FIRST.len())],
        LAST[rng.gen_range(0..LAST.len())]
    )
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("resolve: skipped (needs --bench: cargo bench --bench resolve)");
        return;
    }
    let accounts = env_usize("BENCH_ACCOUNTS", 1_500_000);
    let mailboxes = env_usize("BENCH_MAILBOXES", 100_000).max(1);
    let lookups = env_usize("BENCH_LOOKUPS", 20_000).max(1);
    let dir = tempfile::Builder::new()
        .prefix("postroom-bench-resolve-")
        .tempdir()
        .unwrap_or_else(|e| die(format!("temp dir: {e}")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(format!("tokio runtime: {e}")));
    rt.block_on(async {
        let cfg = DatabaseConfig {
            url: format!("sqlite://{}/resolve.db", dir.path().display()),
            max_connections: 4,
            acquire_timeout: Duration::from_secs(30),
        };
        let store = Store::open(&cfg)
            .await
            .unwrap_or_else(|e| die(format!("open: {e}")));
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);

        // --- the directory
        let started = Instant::now();
        let mut tx = store.begin().await.unwrap_or_else(|e| die(e));
        let mut written = 0usize;
        let per_org = accounts / mailboxes;
        for m in 0..mailboxes {
            let org = (m + 1) as i64;
            sqlx::query("INSERT INTO organisations (id, name, created_at) VALUES ($1, $2, 0)")
                .bind(org)
                .bind(format!("Organisation {org}"))
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|e| die(format!("organisation: {e}")));
            sqlx::query(
                "INSERT INTO mailboxes (id, organisation_id, address, created_at) VALUES ($1, $1, $2, 0)",
            )
            .bind(org)
            .bind(format!("site{org}@bench.example"))
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| die(format!("mailbox: {e}")));
            // Sizes vary around the mean: 1 to twice the mean.
            let size = rng.gen_range(1..=(2 * per_org).max(1));
            for a in 0..size {
                if written >= accounts {
                    break;
                }
                let name = name_of(&mut rng);
                let keys = NameKeys::of(&name);
                let id = (written + 1) as i64;
                sqlx::query(
                    "INSERT INTO accounts (id, organisation_id, address, name, status, status_changed_at, \
                     created_at, name_key, first_key, initial_key) \
                     VALUES ($1, $2, $3, $4, 'active', 0, 0, $5, $6, $7)",
                )
                .bind(id)
                .bind(org)
                .bind(format!("a{id}@bench.example"))
                .bind(&name)
                .bind(keys.full)
                .bind(keys.first)
                .bind(keys.initial)
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|e| die(format!("account: {e}")));
                sqlx::query(
                    "INSERT INTO memberships (mailbox_id, account_id, role, created_at) VALUES ($1, $2, $3, 0)",
                )
                .bind(org)
                .bind(id)
                .bind(if a == 0 { "owner" } else { "member" })
                .execute(&mut *tx)
                .await
                .unwrap_or_else(|e| die(format!("membership: {e}")));
                written += 1;
            }
            if m % 5_000 == 4_999 {
                tx.commit().await.unwrap_or_else(|e| die(e));
                tx = store.begin().await.unwrap_or_else(|e| die(e));
            }
        }
        tx.commit().await.unwrap_or_else(|e| die(e));
        let load = started.elapsed();

        // --- the look-ups
        let mut times: Vec<Duration> = Vec::with_capacity(lookups);
        let mut found = [0usize; 4];
        for i in 0..lookups {
            let org = rng.gen_range(1..=mailboxes) as i64;
            let full = name_of(&mut rng);
            let written_as = match i % 4 {
                0 => full.clone(),
                1 => {
                    let mut parts = full.split_whitespace();
                    let first = parts.next().unwrap_or_default();
                    let last = parts.last().unwrap_or_default();
                    format!("Mr {}. {last}", first.chars().next().unwrap_or('X'))
                }
                2 => full.split_whitespace().next().unwrap_or_default().to_owned(),
                _ => "Nobody Atall".to_owned(),
            };
            let kind = if i % 8 == 0 {
                RequestKind::RemoveMember
            } else {
                RequestKind::PasswordReset
            };
            let t = Instant::now();
            let mut conn = store.read().await.unwrap_or_else(|e| die(e));
            let r = resolve::name(&mut conn, &written_as, org, org, Scope::for_kind(kind), kind)
                .await
                .unwrap_or_else(|e| die(format!("resolve: {e}")));
            drop(conn);
            times.push(t.elapsed());
            found[match r {
                Resolved::One { .. } => 0,
                Resolved::Several(_) => 1,
                Resolved::None => 2,
                Resolved::TooLoose(_) => 3,
            }] += 1;
        }
        times.sort();
        let pick = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        let (p50, p99, max) = (pick(0.50), pick(0.99), pick(1.0));
        println!("name resolution, SQLite, {written} accounts in {mailboxes} mailboxes (loaded in {:.1} s)", load.as_secs_f64());
        println!("  look-ups        {lookups}");
        println!("  one / several / none / too loose   {} / {} / {} / {}", found[0], found[1], found[2], found[3]);
        println!("  per resolution  p50 {:.3} ms   p99 {:.3} ms   max {:.3} ms", p50.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3, max.as_secs_f64() * 1e3);
        println!(
            "{}",
            serde_json::json!({
                "bench": "resolve", "backend": "sqlite", "accounts": written, "mailboxes": mailboxes,
                "lookups": lookups, "p50_ms": p50.as_secs_f64() * 1e3, "p99_ms": p99.as_secs_f64() * 1e3,
                "max_ms": max.as_secs_f64() * 1e3,
            })
        );
        store.close().await;
    });
}
