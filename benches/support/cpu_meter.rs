//! CPU time from /proc, for the benches that say where a machine's CPU went during a phase
//! (`benches/e2e.rs`, `benches/national.rs`). Errors are strings for the bench's own `die`.

use std::process::Command;
use std::time::Instant;

/// The kernel's clock ticks per second (`getconf CLK_TCK`), the unit of /proc/PID/stat's times.
pub fn clock_ticks_per_s() -> Result<f64, String> {
    static TICKS: std::sync::OnceLock<Option<f64>> = std::sync::OnceLock::new();
    TICKS
        .get_or_init(|| {
            Command::new("getconf")
                .arg("CLK_TCK")
                .output()
                .ok()
                .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
                .filter(|t: &f64| *t > 0.0)
        })
        .ok_or_else(|| "getconf CLK_TCK gave no clock tick rate".to_owned())
}

/// CPU time spent on the whole machine (every CPU, busy: user, nice, system, interrupts,
/// steal; `/proc/stat`) and by this process (`/proc/self/stat`), in ms: read before and
/// after a phase, the difference is what the phase cost the machine besides its client.
#[derive(Clone, Copy)]
pub struct Meter {
    machine_ms: f64,
    own_ms: f64,
    /// The machine's CPUs (the `cpuN` lines): not this process's affinity, which a bench
    /// that keeps its threads on one CPU narrows to one.
    cpus: f64,
    at: Instant,
}

/// What a phase cost per message (or request): the client's CPU, the rest of the machine's
/// (for the end-to-end bench Dovecot, Postfix and their delivery agents; for the national
/// bench the PostgreSQL server; the kernel's work for them; on a quiet machine nothing else),
/// and the share of the CPUs left idle.
#[derive(Clone, Copy, Debug)]
pub struct Spent {
    pub client_ms: f64,
    pub others_ms: f64,
    pub idle: f64,
}

#[allow(dead_code)] // each bench uses part of it
impl Spent {
    pub const NONE: Spent = Spent {
        client_ms: f64::NAN,
        others_ms: f64::NAN,
        idle: f64::NAN,
    };

    pub fn mean(a: Spent, b: Spent) -> Spent {
        Spent {
            client_ms: (a.client_ms + b.client_ms) / 2.0,
            others_ms: (a.others_ms + b.others_ms) / 2.0,
            idle: (a.idle + b.idle) / 2.0,
        }
    }
}

/// utime + stime of a /proc/PID/stat line, in ms.
pub fn stat_cpu_ms(stat: &str) -> Result<f64, String> {
    // The fields after the command name (which may hold spaces) in parentheses: utime and
    // stime are fields 14 and 15 of proc(5), here 11 and 12.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| -> Result<f64, String> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| format!("unexpected /proc/PID/stat: {stat}"))
    };
    Ok((ticks(11)? + ticks(12)?) * 1000.0 / clock_ticks_per_s()?)
}

impl Meter {
    pub fn now() -> Result<Meter, String> {
        let stat = std::fs::read_to_string("/proc/stat")
            .map_err(|e| format!("cannot read /proc/stat: {e}"))?;
        let cpu: Vec<f64> = stat
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("cpu "))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|v| v.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        // user nice system idle iowait irq softirq steal (proc(5)); guest time is inside user.
        let mut busy = 0.0;
        for i in [0, 1, 2, 5, 6, 7] {
            busy += cpu
                .get(i)
                .copied()
                .ok_or_else(|| format!("unexpected /proc/stat: {stat}"))?;
        }
        let cpus = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count()
            .max(1) as f64;
        let own = std::fs::read_to_string("/proc/self/stat")
            .map_err(|e| format!("cannot read /proc/self/stat: {e}"))?;
        Ok(Meter {
            machine_ms: busy * 1000.0 / clock_ticks_per_s()?,
            own_ms: stat_cpu_ms(&own)?,
            cpus,
            at: Instant::now(),
        })
    }

    /// Since `self`, per message: `client_ms` is this process's CPU plus `extra_client_ms`
    /// (a child process's, when the client runs apart from the harness).
    pub fn spent(&self, n: usize, extra_client_ms: f64) -> Result<Spent, String> {
        let end = Meter::now()?;
        let machine = end.machine_ms - self.machine_ms;
        let own = end.own_ms - self.own_ms;
        let capacity = end.at.duration_since(self.at).as_secs_f64() * 1000.0 * self.cpus;
        let n = n.max(1) as f64;
        Ok(Spent {
            client_ms: (own + extra_client_ms) / n,
            others_ms: (machine - own - extra_client_ms) / n,
            idle: (1.0 - machine / capacity).max(0.0),
        })
    }
}
