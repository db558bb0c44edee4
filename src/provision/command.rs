//! The `command` connector: a program of the operator's makes each change (a PowerShell
//! script, a Graph call, anything a directory needs).
//!
//! Per operation, the program gets one JSON document on stdin —
//! `{"reference": "HD-…", "mailbox": "…", "operation": {"op": "reset_password", …}}` — and
//! answers with its exit status and, on its last line of stdout, a JSON value (what it read
//! back, kept with the job):
//! - exit 0: done;
//! - exit 75 (`EX_TEMPFAIL`, sysexits.h): not now, try again later;
//! - any other exit, a signal, or no answer within `timeout`: refused, with the program's
//!   stderr kept for staff (the timeout counts as "not now": whether it was done is unknown,
//!   and operations are written to be repeated).

use super::config::CommandConfig;
use super::operation::{NotDone, Operation};
use serde_json::{Value, json};
use std::process::Stdio;
use tokio::io::AsyncWriteExt;

/// sysexits.h: "temporary failure; the user is invited to retry".
const EX_TEMPFAIL: i32 = 75;
/// What of the program's stderr is kept: its tail, this long at most.
const STDERR_KEPT: usize = 2000;

pub struct CommandTarget {
    cfg: CommandConfig,
}

impl CommandTarget {
    pub fn new(cfg: &CommandConfig) -> CommandTarget {
        CommandTarget { cfg: cfg.clone() }
    }

    /// `postroom check`: the program can be run (found, and executable).
    pub fn check(&self) -> Result<String, String> {
        use std::os::unix::fs::PermissionsExt;
        let Some(program) = self.cfg.argv.first() else {
            return Err("no program configured".into());
        };
        let candidates: Vec<std::path::PathBuf> = if program.contains('/') {
            vec![program.into()]
        } else {
            std::env::var_os("PATH")
                .map(|p| std::env::split_paths(&p).map(|d| d.join(program)).collect())
                .unwrap_or_default()
        };
        candidates
            .iter()
            .find(|p| {
                std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .map(|p| format!("{} is there and executable", p.display()))
            .ok_or_else(|| format!("{program}: not found or not executable"))
    }

    pub async fn apply(
        &self,
        reference: &str,
        mailbox: &str,
        ops: &[Operation],
    ) -> Result<Vec<Value>, NotDone> {
        let mut done = Vec::new();
        for op in ops {
            let doc = json!({ "reference": reference, "mailbox": mailbox, "operation": op });
            let read_back = self.run(&doc, op).await?;
            done.push(json!({ "op": op.name(), "read_back": read_back }));
        }
        Ok(done)
    }

    async fn run(&self, doc: &Value, op: &Operation) -> Result<Value, NotDone> {
        let Some((program, args)) = self.cfg.argv.split_first() else {
            return Err(NotDone::Rejected("no program configured".into()));
        };
        let what = format!("{} ({})", program, op.describe());
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A program still running when its time is up is killed, not left behind.
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| NotDone::RetryLater(format!("starting {what}: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            let body = doc.to_string();
            // A program that exits without reading its input is judged by its exit status.
            let _ = stdin.write_all(body.as_bytes()).await;
            let _ = stdin.shutdown().await;
        }
        let out = match tokio::time::timeout(self.cfg.timeout, child.wait_with_output()).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Err(NotDone::RetryLater(format!("running {what}: {e}"))),
            Err(_) => {
                return Err(NotDone::RetryLater(format!(
                    "{what} gave no answer within {}",
                    humantime::format_duration(self.cfg.timeout)
                )));
            }
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stderr = tail(stderr.trim(), STDERR_KEPT);
        match out.status.code() {
            Some(0) => {
                let stdout = String::from_utf8_lossy(&out.stdout);
                let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
                Ok(last
                    .and_then(|l| serde_json::from_str(l.trim()).ok())
                    .unwrap_or(Value::Null))
            }
            Some(EX_TEMPFAIL) => Err(NotDone::RetryLater(format!(
                "{what} said not now: {stderr}"
            ))),
            Some(code) => Err(NotDone::Rejected(format!(
                "{what} refused (exit {code}): {stderr}"
            ))),
            None => Err(NotDone::Rejected(format!(
                "{what} was stopped by a signal: {stderr}"
            ))),
        }
    }
}

/// The last `max` bytes of `s`, cut at a character boundary.
fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn target(script: &str) -> CommandTarget {
        CommandTarget::new(&CommandConfig {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            timeout: Duration::from_secs(5),
        })
    }

    fn op() -> Operation {
        Operation::Unlock {
            address: "a@x.org".into(),
        }
    }

    #[tokio::test]
    async fn the_exit_status_says_done_not_now_or_refused() {
        let done = target("cat >/dev/null; echo noise; echo '{\"locked\":false}'")
            .apply("HD-1", "m@x.org", &[op()])
            .await
            .unwrap();
        assert_eq!(done[0]["read_back"]["locked"], false);
        let later = target("cat >/dev/null; echo busy >&2; exit 75")
            .apply("HD-1", "m@x.org", &[op()])
            .await;
        assert!(
            matches!(later, Err(NotDone::RetryLater(ref m)) if m.contains("busy")),
            "{later:?}"
        );
        let no = target("cat >/dev/null; echo 'policy says no' >&2; exit 3")
            .apply("HD-1", "m@x.org", &[op()])
            .await;
        assert!(
            matches!(no, Err(NotDone::Rejected(ref m)) if m.contains("policy says no") && m.contains("exit 3")),
            "{no:?}"
        );
    }

    #[tokio::test]
    async fn the_program_reads_the_operation_as_json() {
        let echo = target("cat")
            .apply("HD-7", "m@x.org", &[op()])
            .await
            .unwrap();
        assert_eq!(echo[0]["read_back"]["operation"]["op"], "unlock");
        assert_eq!(echo[0]["read_back"]["reference"], "HD-7");
    }

    #[tokio::test]
    async fn a_program_that_hangs_is_stopped_and_tried_later() {
        let mut t = target("sleep 30");
        t.cfg.timeout = Duration::from_millis(200);
        let r = t.apply("HD-1", "m@x.org", &[op()]).await;
        assert!(
            matches!(r, Err(NotDone::RetryLater(ref m)) if m.contains("no answer")),
            "{r:?}"
        );
    }
}
