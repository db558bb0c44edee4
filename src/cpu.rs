//! Which CPUs `postroom run` keeps its threads on (`[runtime] cpu`).
//!
//! Every database statement crosses threads: tokio's worker hands it to the thread sqlx runs
//! each SQLite connection on, and is woken with the answer (PostgreSQL's answers wake the worker
//! from the socket). When the two threads sit on different CPUs, each hand-over wakes the other
//! CPU, which on a virtual machine is an interprocessor interrupt and an exit to the
//! hypervisor. A profile of the end-to-end benchmark put a quarter of the daemon's CPU time in
//! the context switches alone. With every thread on one CPU, the same runs took 0.70–0.74 ms of
//! CPU per request instead of 0.91–1.02 (README, Performance). postroom needs far less than a
//! CPU (one tokio worker, see `main.rs`), so one is the default. Threads made later (a new
//! database connection, tokio's blocking pool) inherit the mask of the thread that makes them,
//! so pinning the threads there are at the start covers them too.
//! One is placed elsewhere on purpose: SQLite's checkpointer opens its connection on the
//! CPUs left over ([`background_cpus`]; `store/wal.rs`), since its copying would take the one
//! CPU from the requests for 10–15 ms at a time and it hands over one statement in 100 ms.
//!
//! Several instances on one machine should each be given their own `cpu = N` (or `"any"`):
//! by default each stays on the CPU it happened to start on, which may be the same one.

use crate::config_value::{ConfigError, key_err};
use rustix::thread::{CpuSet, Pid, sched_getaffinity, sched_getcpu, sched_setaffinity};
use serde::Deserialize;
use std::collections::HashSet;
use std::sync::OnceLock;

/// The CPUs this process may use other than the one [`keep_threads`] kept its threads on;
/// set when it kept them on one and others were left.
static OTHER_CPUS: OnceLock<CpuSet> = OnceLock::new();

/// Where background work that seldom talks to the rest should run: the CPUs the threads were
/// not kept on, or `None` when they were not kept on one or there is no other. A thread that
/// copies megabytes for a few milliseconds (SQLite's checkpoints, `store/wal.rs`) on the one
/// CPU would take it from the requests for that time; its rare hand-overs cost little
/// across CPUs.
pub fn background_cpus() -> Option<CpuSet> {
    OTHER_CPUS.get().copied()
}

/// Where the daemon's threads run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// All on one CPU: the one the daemon is on when it starts (the default).
    One,
    /// Wherever the kernel puts each.
    Any,
    /// All on this CPU.
    Cpu(usize),
}

/// `[runtime]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeConfig {
    pub cpu: Placement,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRuntime {
    cpu: Option<toml::Value>,
}

pub(crate) fn check_runtime(raw: RawRuntime) -> Result<RuntimeConfig, ConfigError> {
    const KEY: &str = "runtime.cpu";
    let cpu = match raw.cpu {
        None => Placement::One,
        Some(toml::Value::String(s)) => match s.trim() {
            "one" => Placement::One,
            "any" => Placement::Any,
            other => {
                return Err(key_err(
                    KEY,
                    format!("`{other}`: expected \"one\", \"any\" or a CPU number (0, 1, …)"),
                ));
            }
        },
        Some(toml::Value::Integer(n)) => match usize::try_from(n) {
            Ok(n) if n < CpuSet::MAX_CPU => Placement::Cpu(n),
            _ => {
                return Err(key_err(
                    KEY,
                    format!(
                        "{n} is not a CPU number (0 to {})",
                        CpuSet::MAX_CPU.saturating_sub(1)
                    ),
                ));
            }
        },
        Some(other) => {
            return Err(key_err(
                KEY,
                format!(
                    "expected \"one\", \"any\" or a CPU number, not a {}",
                    other.type_str()
                ),
            ));
        }
    };
    Ok(RuntimeConfig { cpu })
}

/// `run`'s start: keep the threads where `[runtime] cpu` says, and say so in the log. With
/// `"one"` (the default) a kernel that refuses — a sandbox that forbids `sched_setaffinity` —
/// is only warned about, since one CPU is an optimisation; a CPU named in the config that
/// cannot be had stops the start.
pub fn place_threads(placement: Placement) -> Result<(), String> {
    settle(placement, keep_threads(placement))
}

/// What [`place_threads`] makes of [`keep_threads`]'s answer.
fn settle(placement: Placement, kept: Result<Option<usize>, String>) -> Result<(), String> {
    match kept {
        Ok(Some(cpu)) => tracing::info!(
            cpu,
            "threads kept on CPU {cpu} ([runtime] cpu = \"any\" lets the kernel place them)"
        ),
        Ok(None) => tracing::info!("threads placed by the kernel ([runtime] cpu = \"any\")"),
        Err(e) if placement == Placement::One => {
            tracing::warn!("could not keep the threads on one CPU ({e}); the kernel places them");
        }
        Err(e) => return Err(e),
    }
    Ok(())
}

/// Keep every thread of this process on the CPU `placement` names; which one, or `None` for
/// [`Placement::Any`]. A CPU this process may not use is an error naming the key.
pub fn keep_threads(placement: Placement) -> Result<Option<usize>, String> {
    let allowed = sched_getaffinity(None)
        .map_err(|e| format!("reading this process's CPUs (sched_getaffinity): {e}"))?;
    let cpu = match placement {
        Placement::Any => return Ok(None),
        Placement::One => {
            let here = sched_getcpu();
            if allowed.is_set(here) {
                here
            } else {
                (0..CpuSet::MAX_CPU)
                    .find(|c| allowed.is_set(*c))
                    .ok_or("this process may run on no CPU at all (sched_getaffinity)")?
            }
        }
        Placement::Cpu(n) => {
            if !allowed.is_set(n) {
                return Err(format!(
                    "config key `runtime.cpu`: this process may not run on CPU {n} (it may use {})",
                    cpu_list(&allowed)
                ));
            }
            n
        }
    };
    let mut one = CpuSet::new();
    one.set(cpu);
    let mut others = allowed;
    others.unset(cpu);
    if others.count() > 0 {
        // The first placement wins: later calls (tests, the bench) keep the same CPU.
        let _ = OTHER_CPUS.set(others);
    }
    // Threads may start while the list is read: go round until a pass finds none new.
    let mut pinned = HashSet::new();
    for _ in 0..5 {
        let mut new = 0;
        for tid in threads()? {
            if !pinned.insert(tid) {
                continue;
            }
            new += 1;
            let Some(pid) = Pid::from_raw(tid) else {
                continue;
            };
            match sched_setaffinity(Some(pid), &one) {
                Ok(()) => {}
                // Gone since the list was read.
                Err(rustix::io::Errno::SRCH) => {}
                Err(e) => return Err(format!("keeping thread {tid} on CPU {cpu}: {e}")),
            }
        }
        if new == 0 {
            break;
        }
    }
    Ok(Some(cpu))
}

/// The ids of this process's threads.
fn threads() -> Result<Vec<i32>, String> {
    let dir = std::fs::read_dir("/proc/self/task")
        .map_err(|e| format!("listing this process's threads (/proc/self/task): {e}"))?;
    Ok(dir
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

/// `0-3,6` for the log and errors.
fn cpu_list(set: &CpuSet) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(usize, usize)> = None;
    for c in (0..CpuSet::MAX_CPU).filter(|c| set.is_set(*c)) {
        run = match run {
            Some((start, end)) if end + 1 == c => Some((start, c)),
            Some((start, end)) => {
                parts.push(range(start, end));
                Some((c, c))
            }
            None => Some((c, c)),
        };
    }
    if let Some((start, end)) = run {
        parts.push(range(start, end));
    }
    parts.join(",")
}

fn range(start: usize, end: usize) -> String {
    if start == end {
        start.to_string()
    } else {
        format!("{start}-{end}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Result<RuntimeConfig, ConfigError> {
        check_runtime(toml::from_str(text).unwrap())
    }

    #[test]
    fn one_cpu_is_the_default_and_each_form_reads() {
        assert_eq!(check("").unwrap().cpu, Placement::One);
        assert_eq!(check("cpu = \"one\"").unwrap().cpu, Placement::One);
        assert_eq!(check("cpu = \"any\"").unwrap().cpu, Placement::Any);
        assert_eq!(check("cpu = 3").unwrap().cpu, Placement::Cpu(3));
    }

    #[test]
    fn a_bad_value_names_the_key() {
        for bad in [
            "cpu = -1",
            "cpu = \"all\"",
            "cpu = 1.5",
            "cpu = 100000",
            "cpus = 1",
        ] {
            let e = match toml::from_str::<RawRuntime>(bad) {
                Ok(raw) => check_runtime(raw).unwrap_err().to_string(),
                Err(e) => e.to_string(),
            };
            assert!(
                e.contains("runtime.cpu") || e.contains("unknown field `cpus`"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn a_refusal_stops_the_start_only_when_a_cpu_was_named() {
        let refused = || Err("Operation not permitted".to_owned());
        assert_eq!(settle(Placement::One, refused()), Ok(()));
        assert!(settle(Placement::Cpu(1), refused()).is_err());
        assert_eq!(settle(Placement::Cpu(1), Ok(Some(1))), Ok(()));
        assert_eq!(settle(Placement::Any, Ok(None)), Ok(()));
    }

    #[test]
    fn cpu_lists_read_as_ranges() {
        let mut set = CpuSet::new();
        for c in [0, 1, 2, 3, 6, 8, 9] {
            set.set(c);
        }
        assert_eq!(cpu_list(&set), "0-3,6,8-9");
        assert_eq!(cpu_list(&CpuSet::new()), "");
    }
}
