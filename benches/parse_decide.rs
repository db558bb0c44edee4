//! Parse and decide, in process (issue 7, part 1): raw bytes → parsed message → screened →
//! trust evidence → extracted request → names resolved → decision, one core.
//!
//! Anchored in the same run by `mail-parser` parsing alone, so the ratio shows what postroom
//! adds. Inputs: every message of `../shared/corpus/` (real-world mail), a synthetic mix of
//! request emails made from `tests/fixtures/requests/`, and the labelled corpus of
//! `tests/understanding/` (requests naming people in words).
//!
//! Resolution (issue 12) is a database read: every person named in words is looked up with
//! `resolve::name` in a SQLite directory (`tests/understanding/directory.csv`, imported into a
//! temporary file), on a current-thread runtime, exactly as the pipeline does per ask. The
//! rules then decide on a fixed snapshot (loading the real one is the apply benchmark's part).
//!
//! `cargo bench --bench parse_decide` prints a table and, last, one line of JSON.

use postroom::config::Config;
use postroom::policy::{self, MailboxView, Snapshot};
use postroom::request::Role;
use postroom::request::extract::{self, ExtractContext, Mention};
use postroom::resolve::{self, Scope};
use postroom::store::directory::{self, Account, AccountStatus, Mailbox};
use postroom::store::{Conn, Store};
use postroom::{directory_csv, message, screen, trust};
use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

fn corpus() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let mut out = Vec::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if p.is_dir() {
                stack.push(p);
            } else if !(name.ends_with(".md")
                || name.ends_with(".tsv")
                || name.contains("LICENSE")
                || name.starts_with("README"))
                && let Ok(b) = std::fs::read(&p)
            {
                out.push(b);
            }
        }
    }
    assert!(
        out.len() > 500,
        "the shared corpus was not found at {} — the benchmark needs it",
        root.display()
    );
    out
}

/// 2,000 request emails: every fixture, with unique Message-IDs and a few wording variants.
fn request_mix() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/requests");
    let fixtures: Vec<String> = std::fs::read_dir(&dir)
        .expect("tests/fixtures/requests")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect();
    (0..2000)
        .map(|i| {
            let f = &fixtures[i % fixtures.len()];
            f.replacen("Message-ID: <", &format!("Message-ID: <mix{i}-"), 1)
                .into_bytes()
        })
        .collect()
}

/// The labelled corpus's messages (issue 12), each once.
fn named_requests() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/understanding/messages");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("tests/understanding/messages")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "eml"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    out.sort();
    out
}

/// The labelled corpus's directory in a SQLite file, and its mailboxes by address.
async fn directory_db(dir: &Path) -> (Store, HashMap<String, Mailbox>) {
    let cfg = Config::from_toml_with_env(
        &format!(
            "[database]\nurl = \"sqlite://{}\"\n[helpdesk]\naddress = \"helpdesk@nhs.example\"\n",
            dir.join("bench.db").display()
        ),
        &[],
    )
    .expect("bench database config");
    let store = Store::open(&cfg.database).await.expect("bench database");
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/understanding/directory.csv");
    directory_csv::import(
        &store,
        std::fs::File::open(&csv).expect("directory.csv"),
        "directory.csv",
    )
    .await
    .expect("import");
    let mut conn = store.read().await.expect("connection");
    let mailboxes = directory::list_mailboxes(&mut conn)
        .await
        .expect("mailboxes")
        .into_iter()
        .map(|m| (m.address.clone(), m))
        .collect();
    drop(conn);
    (store, mailboxes)
}

/// Every person an extracted request names in words, looked up as the pipeline does.
async fn resolve_asks(
    conn: &mut Conn,
    ex: &extract::Extracted,
    mailbox: Option<&Mailbox>,
) -> usize {
    let Some(mailbox) = mailbox else { return 0 };
    let mut found = 0;
    for ask in &ex.asks {
        if let Some(Mention::Name(name)) = &ask.target {
            let r = resolve::name(
                conn,
                name,
                mailbox.organisation_id,
                mailbox.id,
                Scope::for_kind(ask.kind),
                ask.kind,
            )
            .await
            .expect("resolve");
            black_box(&r);
            found += 1;
        }
    }
    found
}

fn snapshot() -> Snapshot {
    let mailbox = Mailbox {
        id: 1,
        organisation_id: 1,
        organisation: "Rosehill Care".into(),
        address: "rosehill.care@nhs.example".into(),
    };
    let people = [
        (
            1,
            "jane.doe@nhs.example",
            Role::Owner,
            AccountStatus::Active,
        ),
        (
            2,
            "tom.smith@nhs.example",
            Role::Member,
            AccountStatus::Active,
        ),
        (
            3,
            "amy.jones@nhs.example",
            Role::Member,
            AccountStatus::Active,
        ),
        (
            4,
            "kim.lee@nhs.example",
            Role::Member,
            AccountStatus::Locked,
        ),
    ];
    let view = MailboxView {
        mailbox: mailbox.clone(),
        members: people.len(),
        owners: people
            .iter()
            .filter(|(_, _, role, _)| *role == Role::Owner)
            .count(),
        roles: people.iter().map(|(id, _, role, _)| (*id, *role)).collect(),
    };
    let mut snap = Snapshot {
        mailbox: Some(view.clone()),
        organisation_accounts: 5,
        ..Default::default()
    };
    for (id, a, _, status) in people {
        snap.accounts.insert(
            a.into(),
            Account {
                id,
                organisation_id: 1,
                organisation: "Rosehill Care".into(),
                address: a.into(),
                name: a.into(),
                status,
            },
        );
        snap.account_mailboxes.insert(id, vec![view.clone()]);
    }
    snap
}

/// Run `f` over `inputs` repeatedly for at least `min`; returns (messages/s, MB/s).
fn measure(inputs: &[Vec<u8>], min: Duration, mut f: impl FnMut(&[u8])) -> (f64, f64) {
    let bytes: usize = inputs.iter().map(Vec::len).sum();
    for m in inputs.iter().take(50) {
        f(m); // warm up
    }
    let start = Instant::now();
    let mut rounds = 0usize;
    while start.elapsed() < min {
        for m in inputs {
            f(m);
        }
        rounds += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    (
        (inputs.len() * rounds) as f64 / secs,
        (bytes * rounds) as f64 / secs / 1e6,
    )
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs it briefly as a smoke test.
    let quick = !std::env::args().any(|a| a == "--bench");
    let min = if quick {
        Duration::from_millis(200)
    } else {
        Duration::from_secs(3)
    };
    let cfg = Config::from_toml_with_env(
        "[helpdesk]\naddress = \"helpdesk@nhs.example\"\n[trust]\nauthserv_id = \"mail.nhs.example\"\n",
        &[],
    )
    .expect("bench config");
    let snap = snapshot();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tmp = tempfile::tempdir().expect("temporary directory");
    let (store, mailboxes) = rt.block_on(directory_db(tmp.path()));
    let mut conn = rt.block_on(store.read()).expect("connection");
    let names_resolved = std::cell::Cell::new(0usize);
    let mut decide = |raw: &[u8]| {
        let msg = message::parse(raw);
        if msg.unparsable || screen::screen(&msg, &cfg.helpdesk.address).is_some() {
            return;
        }
        let ev = trust::assess(&msg, &cfg.trust, &[]);
        let ex = extract::extract(
            &msg,
            &ExtractContext {
                mailbox: msg.from.as_deref(),
                helpdesk: &cfg.helpdesk.address,
                reference_prefix: "HD",
            },
        );
        let mailbox = msg.from.as_deref().and_then(|a| mailboxes.get(a));
        names_resolved
            .set(names_resolved.get() + rt.block_on(resolve_asks(&mut conn, &ex, mailbox)));
        black_box((ev, policy::decide(&msg, &ex, &snap, &cfg)));
    };
    let parse_only = |raw: &[u8]| {
        black_box(mail_parser::MessageParser::default().parse(raw));
    };

    let sets = [
        ("request mix", request_mix()),
        ("named requests", named_requests()),
        ("shared corpus", corpus()),
    ];
    let mut json = Vec::new();
    println!(
        "{:<15} {:>8} {:>22} {:>22} {:>7} {:>14}",
        "input", "messages", "mail-parser alone", "postroom parse+decide", "ratio", "names/message"
    );
    for (name, inputs) in &sets {
        let (base_mps, base_mbs) = measure(inputs, min, parse_only);
        let (mps, mbs) = measure(inputs, min, &mut decide);
        // Names looked up per message: one more pass, counted.
        names_resolved.set(0);
        for m in inputs {
            decide(m);
        }
        let per_message = names_resolved.get() as f64 / inputs.len().max(1) as f64;
        println!(
            "{name:<15} {:>8} {:>10.0} msg/s {:>5.1} MB/s {:>10.0} msg/s {:>5.1} MB/s {:>7.2} {:>14.2}",
            inputs.len(),
            base_mps,
            base_mbs,
            mps,
            mbs,
            mps / base_mps,
            per_message
        );
        json.push(format!(
            "\"{}\":{{\"messages\":{},\"mail_parser_msgs_per_s\":{base_mps:.0},\"mail_parser_mb_per_s\":{base_mbs:.2},\"postroom_msgs_per_s\":{mps:.0},\"postroom_mb_per_s\":{mbs:.2},\"ratio\":{:.3},\"names_resolved_per_msg\":{per_message:.2}}}",
            name.replace(' ', "_"),
            inputs.len(),
            mps / base_mps
        ));
    }
    // A pooled connection goes back to its pool from inside the runtime.
    rt.block_on(async move {
        drop(conn);
        store.close().await;
    });
    println!("{{\"parse_and_decide\":{{{}}}}}", json.join(","));
}
