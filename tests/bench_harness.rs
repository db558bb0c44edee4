//! The end-to-end benchmark (`benches/e2e.rs`, run by `scripts/bench`) fails loudly when the
//! mail servers are not there, rather than printing figures of zero (issue 7); the
//! national-scale one (`benches/national.rs`, issue 18) runs through at a tiny size, so that
//! neither rots.
//!
//! Runs the bench programs that `cargo test --all-targets` builds (as `scripts/test` does) with
//! `--bench`: e2e once without the mail stack's variables and once pointed at ports where
//! nothing listens; national on SQLite with a few hundred accounts.

use std::path::PathBuf;
use std::process::{Command, Output};

// Shared with the national bench, which lists the same processes to place them.
#[path = "../benches/support/procs.rs"]
mod procs;

/// The newest `e2e-*` program next to this test's own (target/debug/deps).
fn e2e_bench() -> PathBuf {
    bench_program("e2e")
}

/// The newest `NAME-*` bench program next to this test's own (target/debug/deps).
fn bench_program(name: &str) -> PathBuf {
    let prefix = format!("{name}-");
    let exe = std::env::current_exe().expect("own path");
    let deps = exe.parent().expect("deps directory");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(deps)
        .expect("read target/debug/deps")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && !n.contains('.'))
        })
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("no {name} bench program in target/debug/deps: build it with `cargo test --all-targets` (scripts/test does)"))
}

fn run(env: &[(&str, String)]) -> Output {
    let mut c = Command::new(e2e_bench());
    c.arg("--bench");
    for (k, _) in std::env::vars() {
        if k.starts_with("MAILSTACK_") || k.starts_with("BENCH_") {
            c.env_remove(k);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run the e2e bench")
}

/// A port on loopback where nothing listens (bound, then let go).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("address").port()
}

fn assert_failed_loudly(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "exit 0:\n{stderr}\n{stdout}");
    assert!(
        stderr.contains("e2e: ERROR:") && stderr.contains(needle),
        "{stderr}"
    );
    // No table and no JSON line of figures.
    assert!(
        !stdout.contains('{') && !stdout.contains("req/s"),
        "{stdout}"
    );
}

#[test]
fn without_the_mail_stack_the_bench_names_what_is_missing() {
    let out = run(&[]);
    assert_failed_loudly(&out, "is not set: start the mail stack first");
}

#[test]
fn with_no_server_on_the_ports_the_bench_stops_with_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = run(&[
        ("MAILSTACK_DIR", dir.path().display().to_string()),
        ("MAILSTACK_IMAP_PORT", closed_port().to_string()),
        ("MAILSTACK_SMTP_PORT", closed_port().to_string()),
        ("MAILSTACK_PASSWORD", "x".into()),
        ("BENCH_MESSAGES", "10".into()),
    ]);
    assert_failed_loudly(&out, "is not answering");
}

/// The national bench at a tiny size (600 accounts, 40 mailboxes, 700 earlier requests, four
/// unlocks a set after two to warm up: all ten locked members it has), none of the caller's
/// `BENCH_` variables but `extra`: its stdout and stderr, after checking it succeeded, and its
/// last line read as JSON.
fn national_bench(extra: &[(&str, &str)]) -> (String, String, serde_json::Value) {
    let mut c = Command::new(bench_program("national"));
    c.arg("--bench");
    for (k, _) in std::env::vars() {
        if k.starts_with("BENCH_") {
            c.env_remove(k);
        }
    }
    c.env("BENCH_POSTROOM_BIN", env!("CARGO_BIN_EXE_postroom"))
        .env("BENCH_NATIONAL_ACCOUNTS", "600")
        .env("BENCH_NATIONAL_MAILBOXES", "40")
        .env("BENCH_NATIONAL_REQUESTS", "700")
        .env("BENCH_NATIONAL_APPLY", "4")
        .env("BENCH_NATIONAL_WARMUP", "2")
        .env("BENCH_NATIONAL_LOOKUPS", "20")
        .env("BENCH_NATIONAL_PAGE_RUNS", "1")
        .envs(extra.iter().copied());
    let out = c.output().expect("run the national bench");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last).expect("a JSON line last");
    (stdout, stderr, v)
}

/// The national-scale bench at a tiny size on SQLite: the generator, the import by the real
/// binary, the copied requests (their audit chain verified by `postroom audit verify`),
/// apply, resolution, pages, export and replay all run, and it prints its table and its JSON
/// line with the sizes asked for.
#[test]
fn the_national_bench_runs_at_a_tiny_size() {
    let (stdout, stderr, v) = national_bench(&[("BENCH_NATIONAL_VERIFY", "1")]);
    let last = stdout.lines().last().unwrap_or_default();
    let n = &v["national"];
    assert_eq!(n["accounts"], 600, "{last}");
    assert_eq!(n["mailboxes"], 40, "{last}");
    assert_eq!(n["earlier_requests"], 700, "{last}");
    assert!(n["postgres"].is_null(), "{last}");
    let sqlite = &n["sqlite"];
    assert_eq!(sqlite["apply"]["n"], 4, "{last}");
    // Two warm-up unlocks, before the sets and apart from them.
    assert_eq!(sqlite["apply_warmup"]["n"], 2, "{last}");
    assert!(
        stdout.contains("apply warm-up, p50 / max (2, before the sets)"),
        "{stdout}"
    );
    assert!(
        sqlite["import"]["rows"].as_u64().unwrap_or(0) >= 600,
        "{last}"
    );
    assert!(
        sqlite["import"]["peak_rss_mb"].as_f64().unwrap_or(0.0) > 1.0,
        "{last}"
    );
    assert!(
        sqlite["pages"]["directory"]["p99_ms"].as_f64().is_some(),
        "{last}"
    );
    assert!(stdout.contains("page: queue"), "{stdout}");
    assert!(stderr.contains("audit verify: intact"), "{stderr}");
    assert_cpu_reported(&stdout, sqlite, last);
    // No server to keep anywhere on SQLite.
    assert!(sqlite["server_cpu"].is_null(), "{last}");
}

/// Each apply set says what it cost the machine per request: a row each, and numbers in the
/// JSON (clock ticks are 10 ms, so four requests may show no CPU of their own; never less).
fn assert_cpu_reported(stdout: &str, backend: &serde_json::Value, last: &str) {
    for set in ["back to back", "paced"] {
        assert!(
            stdout.contains(&format!(
                "CPU per request in the {set} set: this process / the rest"
            )),
            "{stdout}"
        );
    }
    for set in ["apply_cpu", "apply_paced_cpu"] {
        let c = &backend[set];
        assert!(
            c["client_ms"].as_f64().is_some_and(|x| x >= 0.0),
            "{set}.client_ms: {last}"
        );
        assert!(c["others_ms"].as_f64().is_some(), "{set}.others_ms: {last}");
        assert!(
            c["idle"].as_f64().is_some_and(|x| (0.0..=1.0).contains(&x)),
            "{set}.idle: {last}"
        );
    }
}

/// The same on PostgreSQL alone (`BENCH_NATIONAL_BACKENDS=postgres`, on the server the tests
/// use): the load is checkpointed before the measures, and each apply set reports what the
/// server wrote beside it (the log it wrote for the requests, at least).
///
/// `BENCH_PG_PID` names a stand-in for the server's postmaster: a shell with two children
/// (the tests' own server is shared with the other tests, so it is not moved). The bench keeps
/// it and its children on the CPU it keeps its own threads on, and says which.
#[test]
fn the_national_bench_runs_on_postgresql_alone_and_says_what_the_server_wrote() {
    let server = crate::common::testdb::require_pg_server();
    let mut stand_in = Command::new("sh")
        .args(["-c", "sleep 300 & sleep 300 & wait"])
        .spawn()
        .expect("start a stand-in process tree");
    let pid = stand_in.id().to_string();
    let (stdout, stderr, v) = national_bench(&[
        ("BENCH_PG_URL", server.as_str()),
        ("BENCH_NATIONAL_BACKENDS", "postgres"),
        ("BENCH_NATIONAL_PACE_MS", "1"),
        ("BENCH_PG_PID", pid.as_str()),
    ]);
    let children = procs::children_of(stand_in.id());
    let placed: Vec<String> = std::iter::once(stand_in.id())
        .chain(children.iter().copied())
        .map(cpus_allowed)
        .collect();
    for c in &children {
        let _ = Command::new("kill").arg(c.to_string()).status();
    }
    let _ = stand_in.kill();
    let _ = stand_in.wait();
    let last = stdout.lines().last().unwrap_or_default();
    let n = &v["national"];
    assert!(n["sqlite"].is_null(), "SQLite was not asked for: {last}");
    assert!(
        stdout.contains("sqlite    skipped (BENCH_NATIONAL_BACKENDS)"),
        "{stdout}"
    );
    let pg = &n["postgres"];
    assert_eq!(pg["apply"]["n"], 4, "{last}");
    assert!(stderr.contains("CHECKPOINT: "), "{stderr}");
    for set in ["apply_server", "apply_paced_server"] {
        let w = &pg[set];
        // Four unlocks write their messages, requests and audit events: kilobytes of log.
        assert!(
            w["wal_bytes"].as_i64().unwrap_or(0) > 5_000,
            "{set}: {last}"
        );
        for k in ["checkpoints", "checkpoint_buffers", "other_buffers"] {
            assert!(w[k].as_i64().is_some_and(|x| x >= 0), "{set}.{k}: {last}");
        }
    }
    assert!(
        stdout.contains("PostgreSQL's writing during the back to back set"),
        "{stdout}"
    );
    assert_cpu_reported(&stdout, pg, last);
    let cpu = pg["server_cpu"]
        .as_u64()
        .unwrap_or_else(|| panic!("server_cpu: {last}"));
    assert!(
        stderr.contains(&format!("threads kept on CPU {cpu}")),
        "{stderr}"
    );
    assert_eq!(children.len(), 2, "the stand-in's children: {children:?}");
    assert_eq!(placed, vec![cpu.to_string(); 3], "{stderr}");
    assert!(
        stdout.contains(&format!("on CPU {cpu}, the bench's")),
        "{stdout}"
    );
}

/// A process's `Cpus_allowed_list`.
fn cpus_allowed(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

/// The hand-over bench (`benches/sqlite_hop.rs`) at a small size: both phases measured, the
/// figures in its JSON line.
#[test]
fn the_sqlite_hop_bench_times_both_phases() {
    let mut c = Command::new(bench_program("sqlite_hop"));
    c.arg("--bench").env("BENCH_STATEMENTS", "3000");
    let out = c.output().expect("run the sqlite_hop bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {last}"));
    let hop = &v["sqlite_hop"];
    assert_eq!(hop["statements"], 3000, "{last}");
    for phase in ["alone", "shared"] {
        for figure in ["cpu_us", "wall_us", "switches"] {
            let x = hop[phase][figure]
                .as_f64()
                .unwrap_or_else(|| panic!("{phase}.{figure}: {last}"));
            assert!(x.is_finite() && x >= 0.0, "{phase}.{figure}: {last}");
        }
        // Every statement waits for another thread's answer.
        assert!(hop[phase]["wall_us"].as_f64() > Some(0.0), "{last}");
        assert!(hop[phase]["switches"].as_f64() >= Some(1.0), "{last}");
    }
    assert!(
        stdout.contains("the CPU shared with a busy process"),
        "{stdout}"
    );
}
