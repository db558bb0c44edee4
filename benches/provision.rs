//! Provisioning throughput against a real OpenLDAP (issue 15): jobs as the worker runs them —
//! one connection and bind per job, each operation read back — against the throw-away slapd of
//! tests/ldapstack/ (`LDAPSTACK_ENV`, started by `scripts/bench`).
//!
//! Three parts, `BENCH_PROVISION` jobs each (default 500), one after the other:
//! - new starters: create the account, set its temporary password (must change), add it to a
//!   mailbox group (3 operations with the password probe, read-backs);
//! - the new starters replayed, as after a crash: every operation finds its work done;
//! - password resets of those accounts (probe bind, RFC 3062 Password Modify, pwdReset, read).
//!
//! Prints a table and a last line of JSON.

use postroom::provision::Operation;
use postroom::provision::config::{LdapConfig, LdapMode};
use postroom::provision::ldap::LdapTarget;
use postroom::request::Role;
use postroom::secret::Secret;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn env_file() -> HashMap<String, String> {
    let path = std::env::var("LDAPSTACK_ENV").unwrap_or_else(|_| {
        eprintln!("ERROR: LDAPSTACK_ENV is not set (scripts/bench starts the test directory)");
        std::process::exit(2)
    });
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        eprintln!("ERROR: {path}: {e}");
        std::process::exit(2)
    });
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.strip_prefix("export ")?.split_once('=')?;
            Some((k.to_owned(), v.trim_matches('\'').to_owned()))
        })
        .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Part {
    name: &'static str,
    jobs: usize,
    ops: usize,
    wall: Duration,
    p50: Duration,
    p99: Duration,
}

async fn run(name: &'static str, target: &LdapTarget, jobs: &[Vec<Operation>]) -> Part {
    let mut each = Vec::with_capacity(jobs.len());
    let start = Instant::now();
    for ops in jobs {
        let t = Instant::now();
        if let Err(e) = target.apply(ops).await {
            eprintln!("ERROR: {name}: {e:?}");
            std::process::exit(1);
        }
        each.push(t.elapsed());
    }
    let wall = start.elapsed();
    each.sort();
    Part {
        name,
        jobs: jobs.len(),
        ops: jobs.iter().map(Vec::len).sum(),
        wall,
        p50: percentile(&each, 0.5),
        p99: percentile(&each, 0.99),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let env = env_file();
    let get = |k: &str| {
        env.get(k).cloned().unwrap_or_else(|| {
            eprintln!("ERROR: {k} missing from LDAPSTACK_ENV");
            std::process::exit(2)
        })
    };
    let n: usize = std::env::var("BENCH_PROVISION")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let password = std::fs::read_to_string(get("LDAPSTACK_BIND_PASSWORD_FILE"))
        .map(|p| p.trim_end().to_owned())
        .unwrap_or_default();
    let target = LdapTarget::new(&LdapConfig {
        url: get("LDAPSTACK_URL"),
        mode: LdapMode::OpenLdap,
        starttls: false,
        ca_file: None,
        bind_dn: get("LDAPSTACK_BIND_DN"),
        bind_password: Secret::new(password),
        people: get("LDAPSTACK_PEOPLE"),
        groups: get("LDAPSTACK_GROUPS"),
        owner_attribute: "owner".into(),
        owner_groups: None,
        timeout: Duration::from_secs(10),
    })
    .unwrap_or_else(|e| {
        eprintln!("ERROR: {e}");
        std::process::exit(2)
    });
    let run_id = format!(
        "{}{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() % 100_000)
            .unwrap_or(0)
    );
    let mailbox = format!("bench-{run_id}@test.example");
    let address = |i: usize| format!("bench{run_id}.n{i}@test.example");
    let starters: Vec<Vec<Operation>> = (0..n)
        .map(|i| {
            vec![
                Operation::CreateAccount {
                    address: address(i),
                    name: format!("Bench Person {i}"),
                    first: "Bench".into(),
                    last: format!("Person{i}"),
                    job_title: None,
                    password: format!("Start-pass-{i}"),
                },
                Operation::AddMember {
                    mailbox: mailbox.clone(),
                    account: address(i),
                    role: Role::Member,
                },
            ]
        })
        .collect();
    let resets: Vec<Vec<Operation>> = (0..n)
        .map(|i| {
            vec![Operation::ResetPassword {
                address: address(i),
                password: format!("Reset-pass-{i}"),
            }]
        })
        .collect();

    let parts = vec![
        run("new starters", &target, &starters).await,
        run("new starters replayed", &target, &starters).await,
        run("password resets", &target, &resets).await,
    ];

    println!("provisioning against OpenLDAP 2.5 on loopback, one job at a time ({n} jobs a part)");
    println!("| part | jobs/s | operations/s | job p50 | job p99 |");
    println!("|---|---|---|---|---|");
    let mut json = Vec::new();
    for p in &parts {
        let secs = p.wall.as_secs_f64().max(1e-9);
        println!(
            "| {} | {:.0} | {:.0} | {:.1} ms | {:.1} ms |",
            p.name,
            p.jobs as f64 / secs,
            p.ops as f64 / secs,
            p.p50.as_secs_f64() * 1e3,
            p.p99.as_secs_f64() * 1e3
        );
        json.push(serde_json::json!({
            "part": p.name,
            "jobs_per_s": p.jobs as f64 / secs,
            "ops_per_s": p.ops as f64 / secs,
            "p50_ms": p.p50.as_secs_f64() * 1e3,
            "p99_ms": p.p99.as_secs_f64() * 1e3,
        }));
    }
    println!("{}", serde_json::Value::Array(json));
}
