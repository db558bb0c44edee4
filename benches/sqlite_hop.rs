//! What one statement's trip to SQLite costs in CPU (issue 18), so that the levers on the
//! IMAP path's CPU per request can be weighed before they are built.
//!
//! sqlx runs each SQLite connection on a thread of its own: a statement goes from tokio's
//! worker to that thread and its answer comes back, two thread wake-ups at least. A profile of
//! `postroom run` shows a quarter of its samples in the kernel's context switches, which read
//! as if those hand-overs were most of the cost. This measures them directly: `BENCH_STATEMENTS`
//! (50,000) statements that do next to nothing in SQLite (`SELECT ?`), one after another on
//! the store's writer connection inside a transaction, as the pipeline sends its own; the
//! threads kept on one CPU and one tokio worker, as `postroom run` keeps them (`src/cpu.rs`,
//! `src/main.rs`). Twice: on a CPU to itself, and sharing it with a busy process (as the mail
//! servers share it during the end-to-end run). Per statement: CPU time (user + system, the
//! whole process), wall time, and context switches (every thread's). The CPU includes SQLite's
//! own work for the statement and sqlx's `Any` layer, so it bounds the hand-over's cost from
//! above.
//!
//! About ten seconds. Without `--bench` it does nothing and exits 0. Prints a table and, last,
//! one line of JSON.

use postroom::cpu::Placement;
use postroom::store::{DatabaseConfig, Store};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

// Only its reading of /proc/PID/stat is used here.
#[allow(dead_code)]
#[path = "support/cpu_meter.rs"]
mod cpu_meter;
use cpu_meter::stat_cpu_ms;

fn die(msg: impl std::fmt::Display) -> ! {
    eprintln!("ERROR: {msg}");
    std::process::exit(1)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// This process's CPU time so far, in ms.
fn own_cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .unwrap_or_else(|e| die(format!("/proc/self/stat: {e}")));
    stat_cpu_ms(&stat).unwrap_or_else(|e| die(e))
}

/// Context switches of every thread of this process so far (voluntary and not).
fn own_switches() -> u64 {
    let tasks = std::fs::read_dir("/proc/self/task")
        .unwrap_or_else(|e| die(format!("/proc/self/task: {e}")));
    let mut total = 0;
    for task in tasks.flatten() {
        // A thread that ended since the listing has nothing more to count.
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        total += status
            .lines()
            .filter(|l| {
                l.starts_with("voluntary_ctxt_switches")
                    || l.starts_with("nonvoluntary_ctxt_switches")
            })
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// Per statement, one phase.
struct Phase {
    cpu_us: f64,
    wall_us: f64,
    switches: f64,
}

async fn phase(store: &Store, n: usize) -> Phase {
    let mut tx = store
        .begin()
        .await
        .unwrap_or_else(|e| die(format!("begin: {e}")));
    let (cpu0, sw0, t0) = (own_cpu_ms(), own_switches(), Instant::now());
    for i in 0..n {
        let v = i64::try_from(i).unwrap_or(i64::MAX);
        let got: i64 = sqlx::query_scalar("SELECT ?")
            .bind(v)
            .fetch_one(&mut *tx)
            .await
            .unwrap_or_else(|e| die(format!("SELECT: {e}")));
        if got != v {
            die(format!("SELECT {v} gave {got}"));
        }
    }
    let (cpu1, sw1, wall) = (own_cpu_ms(), own_switches(), t0.elapsed());
    tx.rollback()
        .await
        .unwrap_or_else(|e| die(format!("rollback: {e}")));
    let n = n as f64;
    Phase {
        cpu_us: (cpu1 - cpu0) * 1000.0 / n,
        wall_us: wall.as_secs_f64() * 1e6 / n,
        switches: sw1.saturating_sub(sw0) as f64 / n,
    }
}

/// A process that only spins, kept on `cpu`: what Dovecot and Postfix are to postroom's CPU
/// during the end-to-end run, without their noise. It is this program again (`--spin CPU`),
/// which ends by itself when this one is gone, so a bench that dies leaves nothing spinning.
fn busy_on(cpu: usize) -> Child {
    let me = std::env::current_exe().unwrap_or_else(|e| die(format!("own path: {e}")));
    Command::new(me)
        .args(["--spin", &cpu.to_string()])
        .spawn()
        .unwrap_or_else(|e| die(format!("starting the busy process: {e}")))
}

/// `--spin CPU`: spin on that CPU until the parent is gone or a minute has passed.
fn spin(cpu: &str) {
    let cpu: usize = cpu
        .parse()
        .unwrap_or_else(|_| die(format!("--spin {cpu}: not a CPU")));
    let mut one = rustix::thread::CpuSet::new();
    one.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &one) {
        die(format!("keeping the busy process on CPU {cpu}: {e}"));
    }
    let parent = std::os::unix::process::parent_id();
    let started = Instant::now();
    let mut x: u64 = 0;
    loop {
        for _ in 0..1_000_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        if std::os::unix::process::parent_id() != parent
            || started.elapsed() > Duration::from_secs(60)
        {
            return;
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--spin") {
        spin(args.get(at + 1).map_or("", String::as_str));
        return;
    }
    if !args.iter().any(|a| a == "--bench") {
        println!("sqlite_hop: skipped (needs --bench: cargo bench --bench sqlite_hop)");
        return;
    }
    let n = env_usize("BENCH_STATEMENTS", 50_000).max(1);
    // Before the runtime: its threads, and sqlx's, inherit the one CPU.
    let cpu = postroom::cpu::keep_threads(Placement::One)
        .unwrap_or_else(|e| die(format!("keeping the threads on one CPU: {e}")))
        .unwrap_or_else(|| die("keep_threads(One) named no CPU"));
    let dir = tempfile::Builder::new()
        .prefix("postroom-bench-hop-")
        .tempdir()
        .unwrap_or_else(|e| die(format!("temp dir: {e}")));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap_or_else(|e| die(format!("tokio runtime: {e}")));
    let (alone, shared) = rt.block_on(async {
        let cfg = DatabaseConfig {
            url: format!("sqlite://{}/hop.db", dir.path().display()),
            max_connections: 4,
            acquire_timeout: Duration::from_secs(30),
        };
        let store = Store::open(&cfg)
            .await
            .unwrap_or_else(|e| die(format!("open: {e}")));
        // Warm up: the statement prepared and cached, the threads started.
        phase(&store, n / 10 + 1).await;
        let alone = phase(&store, n).await;
        let mut busy = busy_on(cpu);
        tokio::time::sleep(Duration::from_millis(200)).await;
        let shared = phase(&store, n).await;
        let _ = busy.kill();
        let _ = busy.wait();
        store.close().await;
        (alone, shared)
    });

    println!();
    println!(
        "{:<52} {:>10} {:>10} {:>10}",
        format!("one statement ({n} each), on CPU {cpu}"),
        "CPU",
        "wall",
        "switches"
    );
    for (label, p) in [
        ("the CPU to itself", &alone),
        ("the CPU shared with a busy process", &shared),
    ] {
        println!(
            "{:<52} {:>7.1} µs {:>7.1} µs {:>10.1}",
            label, p.cpu_us, p.wall_us, p.switches
        );
    }
    println!(
        "{{\"sqlite_hop\":{{\"statements\":{n},\"alone\":{{\"cpu_us\":{:.2},\"wall_us\":{:.2},\"switches\":{:.2}}},\"shared\":{{\"cpu_us\":{:.2},\"wall_us\":{:.2},\"switches\":{:.2}}}}}}}",
        alone.cpu_us, alone.wall_us, alone.switches, shared.cpu_us, shared.wall_us, shared.switches
    );
}
