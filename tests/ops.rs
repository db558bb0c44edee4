//! Operator commands: backup, retention, replay, status, and the warning about a readable
//! config holding a secret (issue 8).

use crate::support::Instance;
use serde_json::Value;

fn postgres() -> bool {
    std::env::var("POSTROOM_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

#[test]
fn backup_is_a_consistent_copy_that_postroom_can_open() {
    let i = Instance::with_directory("");
    i.process_fixture("new_account_fields.eml");
    let copy = i.dir.path().join("backup.db");
    let out = i
        .cmd()
        .args(["backup", copy.to_str().unwrap()])
        .output()
        .unwrap();
    if postgres() {
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("pg_dump"));
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_backup = i
        .cmd()
        .env(
            "POSTROOM_DATABASE_URL",
            format!("sqlite://{}", copy.display()),
        )
        .args(["directory", "export"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&from_backup.stdout), i.export());
    // Never over an existing file.
    let again = i
        .cmd()
        .args(["backup", copy.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));
}

#[test]
fn retention_drops_old_raw_mail_and_long_disabled_accounts_but_keeps_the_audit() {
    let i = Instance::with_directory(
        "[retention]\nraw_messages = \"1ms\"\ndisabled_accounts = \"1ms\"\n",
    );
    assert_eq!(i.process_fixture("leaver.eml")["outcome"], "applied");
    std::thread::sleep(std::time::Duration::from_millis(20));
    // The log of status changes the directory page reads (migration 0190): the leaver's, and
    // one from long ago that retention forgets.
    let sql = |statement: &'static str| -> Vec<i64> {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let store = postroom::store::Store::open(&i.database()).await.unwrap();
            let rows = sqlx::query_scalar(statement)
                .fetch_all(store.pool())
                .await
                .unwrap();
            store.close().await;
            rows
        })
    };
    let changes = "SELECT changed_at FROM account_status_changes ORDER BY id";
    let leaver = sql(changes);
    assert_eq!(leaver.len(), 1, "the leaver's account disabled");
    sql("INSERT INTO account_status_changes (account_id, changed_at) VALUES (1, 5) RETURNING id");

    let dry: Value = serde_json::from_str(i.ok(&["retention", "--dry-run"]).trim()).unwrap();
    assert_eq!(
        dry["accounts_deleted"],
        serde_json::json!(["amy.jones@nhs.example"])
    );
    assert!(dry["raw_messages_dropped"].as_i64().unwrap() >= 1);
    assert!(
        i.export_row("", "amy.jones@nhs.example").is_some(),
        "a dry run deletes nothing"
    );

    let done: Value = serde_json::from_str(i.ok(&["retention"]).trim()).unwrap();
    assert_eq!(
        done["accounts_deleted"],
        serde_json::json!(["amy.jones@nhs.example"])
    );
    assert!(!i.export().contains("amy.jones@nhs.example"));
    let audit = i.audit();
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "account.deleted" && e["subject"] == "amy.jones@nhs.example")
    );
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "account.disabled" && e["subject"] == "amy.jones@nhs.example"),
        "earlier events are kept"
    );
    // The message row stays: delivered again, it is still a duplicate.
    assert_eq!(i.process_fixture("leaver.eml")["outcome"], "duplicate");
    // Older than the directory page looks back: forgotten; the leaver's is recent and stays.
    assert_eq!(sql(changes), leaver);
}

#[test]
fn replay_reports_what_a_rule_change_would_change_and_writes_nothing() {
    let i = Instance::with_directory("");
    for f in ["requester_not_owner.eml", "unlock.eml", "auto_reply.eml"] {
        i.process_fixture(f);
    }
    let before = i.export();
    let audit_before = i.audit().len();
    // Without --dry-run: refused.
    let out = i.cmd().args(["replay", "--since", "1h"]).output().unwrap();
    assert!(!out.status.success());

    // Same rules: the unlock is now "already active" (the directory moved on); nothing else.
    let same: Vec<Value> = i
        .ok(&["replay", "--since", "1h", "--dry-run"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = same.last().unwrap();
    assert_eq!(summary["replayed"], 3);
    assert_eq!(summary["changed"], 1, "{same:?}");
    assert_eq!(same[0]["reason"], "already_active");

    // Let members ask for resets: the refused request would now be applied.
    let mut cfg = std::fs::read_to_string(&i.config).unwrap();
    cfg.push_str("[policy]\npassword_reset = \"member\"\n");
    std::fs::write(&i.config, cfg).unwrap();
    let lines: Vec<Value> = i
        .ok(&["replay", "--since", "1h", "--dry-run"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let changed: Vec<&Value> = lines.iter().filter(|v| v.get("was").is_some()).collect();
    assert!(
        changed.iter().any(|c| c["was"] == "rejected"
            && c["now"] == "applied"
            && c["reference"] == "HD-000001"),
        "{lines:?}"
    );
    assert_eq!(i.export(), before);
    assert_eq!(i.audit().len(), audit_before);
}

#[test]
fn status_reports_queues_and_outbox() {
    let i = Instance::with_directory("");
    i.process_fixture("unknown_kind.eml");
    i.process_fixture("password_reset_fields.eml");
    let text = i.ok(&["status"]);
    assert!(text.contains("1 waiting for review"), "{text}");
    assert!(text.contains("oldest waiting:   HD-000001"), "{text}");
    assert!(text.contains("2 pending"), "{text}");
    assert!(
        text.contains("no instance of `postroom run` has reported yet"),
        "{text}"
    );
    let json: Value = serde_json::from_str(i.ok(&["status", "--json"]).trim()).unwrap();
    assert_eq!(json["needs_review"], 1);
    assert_eq!(json["outbox_pending"], 2);
}

#[test]
fn check_warns_about_a_readable_config_holding_a_password() {
    use std::os::unix::fs::PermissionsExt;
    let i = Instance::new(
        "[imap]\nhost = \"127.0.0.1\"\nport = 1\ntls = \"none\"\nusername = \"u\"\npassword = \"hunter2hunter2\"\n\
         [smtp]\nhost = \"127.0.0.1\"\nport = 1\ntls = \"none\"\n",
    );
    std::fs::set_permissions(&i.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = i.cmd().arg("check").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("every user on this machine can read it"),
        "{text}"
    );
    assert!(
        !text.contains("hunter2"),
        "the secret itself is never printed"
    );
    std::fs::set_permissions(&i.config, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = i.cmd().arg("check").output().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("every user"));
}

#[test]
fn long_imports_report_progress_in_plain_lines_when_not_on_a_terminal() {
    let i = Instance::new("");
    let path = i.dir.path().join("big.csv");
    let mut csv = String::from("organisation,mailbox,account,name,role\n");
    for n in 0..1500 {
        csv.push_str(&format!(
            "Org {},,person{n}@big.example,Person {n},\n",
            n % 7
        ));
    }
    std::fs::write(&path, csv).unwrap();
    let out = i
        .cmd()
        .args(["directory", "import", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    // Rows are counted as they are applied: the file is not read ahead for a total.
    assert!(err.contains("import: 1500 rows done"), "{err}");
}
