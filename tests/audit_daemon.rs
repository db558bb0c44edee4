//! Signed audit checkpoints from the real `postroom run` on the real mail stack (issue 16):
//! the daemon signs one at start and on `[audit] checkpoint_every`, logs it, shows it at
//! `/healthz`, and emails it through the outbox and Postfix to `[audit] checkpoint_to`, an
//! address outside postroom. The email, saved as received, is a checkpoint that
//! `postroom audit verify --checkpoint` accepts; after a truncation it names the missing events.

use crate::common::mailstack::MailStack;
use crate::daemon_support::{Site, contains, header};
use serde_json::Value;
use std::io::{Read, Write};
use std::time::Duration;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn healthz(port: u16) -> Value {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    s.read_to_string(&mut response).unwrap();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"))
}

#[tokio::test]
async fn the_daemon_signs_logs_shows_and_emails_checkpoints() {
    let stack = MailStack::require();
    let archive = stack.unique_user("archive");
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("audit.key");
    let out = assert_cmd::Command::cargo_bin("postroom")
        .unwrap()
        .args(["audit", "keygen", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let port = free_port();
    let q = |s: &str| format!("\"{s}\"");
    let site = Site::new(
        &stack,
        &[
            ("audit", "signing_key_file", &q(key.to_str().unwrap())),
            ("audit", "checkpoint_every", &q("1h")),
            ("audit", "checkpoint_to", &q(&archive)),
            ("web", "listen", &q(&format!("127.0.0.1:{port}"))),
        ],
    );
    let events = site.audit().len();
    assert!(events >= 1, "the directory import is audited");

    let daemon = site.start_with(&[], true);
    daemon.wait_log("audit checkpoint signed", Duration::from_secs(20));

    // Emailed through the outbox and Postfix, marked as automatic like every reply.
    let mail = stack
        .wait_for(&archive, "INBOX", 1, Duration::from_secs(30))
        .await;
    let raw = &mail[0];
    assert!(
        header(raw, "Subject")
            .unwrap_or_default()
            .starts_with(&format!("postroom audit checkpoint: {events} events")),
        "{}",
        String::from_utf8_lossy(raw)
    );
    assert_eq!(
        header(raw, "Auto-Submitted").as_deref(),
        Some("auto-replied")
    );
    assert!(contains(raw, "postroom audit checkpoint v1"));

    // Shown at /healthz, as signed.
    let h = healthz(port);
    assert_eq!(h["audit"]["events"], events as i64, "{h}");
    assert_eq!(
        h["audit"]["last_checkpoint"]["events"], events as i64,
        "{h}"
    );
    assert_eq!(h["audit"]["last_checkpoint"]["key"], public.as_str(), "{h}");
    assert_eq!(
        h["audit"]["last_checkpoint"]["head"], h["audit"]["head"],
        "{h}"
    );

    let log = daemon.stop();
    let line = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["fields"]["message"] == "audit checkpoint signed")
        .unwrap_or_else(|| panic!("no checkpoint log line:\n{log}"));
    assert_eq!(line["fields"]["events"], events as i64, "{line}");
    assert_eq!(line["fields"]["emailed_to"], archive.as_str(), "{line}");

    // The email as received is the checkpoint to keep: it verifies…
    let saved = site.dir.path().join("checkpoint.eml");
    std::fs::write(&saved, raw).unwrap();
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "audit",
            "verify",
            "--checkpoint",
            saved.to_str().unwrap(),
            "--public-key",
            &public,
        ];
        args.extend_from_slice(extra);
        site.cli(&args)
    };
    let out = verify(&[]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // …and once the database has lost its last event (and its stored checkpoints), the kept
    // email still names what is missing.
    let store = postroom::store::Store::open(&site.database())
        .await
        .unwrap();
    let statements: &[&str] = if site.database().url.starts_with("sqlite") {
        &[
            "DROP TRIGGER audit_events_no_delete",
            "DROP TRIGGER audit_head_forward_only",
            "DROP TRIGGER audit_checkpoints_no_delete",
        ]
    } else {
        &[
            "DROP TRIGGER audit_events_no_change ON audit_events",
            "DROP TRIGGER audit_head_forward_only ON audit_head",
            "DROP TRIGGER audit_checkpoints_no_change ON audit_checkpoints",
        ]
    };
    let last = events as i64;
    for s in statements.iter().map(|s| s.to_string()).chain([
        format!("DELETE FROM audit_events WHERE seq = {last}"),
        format!(
            "UPDATE audit_head SET event_count = {}, head_hash = (SELECT hash FROM audit_events WHERE seq = {})",
            last - 1,
            last - 1
        ),
        "DELETE FROM audit_checkpoints".to_string(),
    ]) {
        sqlx::query(sqlx::AssertSqlSafe(s))
            .execute(store.pool())
            .await
            .unwrap();
    }
    store.close().await;
    let out = verify(&["--json"]);
    assert!(!out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["broken"], "truncated", "{report}");
    assert_eq!(report["event"], last, "{report}");
}
