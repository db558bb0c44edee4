//! The core path through the public command line: request emails in, decisions, directory
//! changes, audit events and replies out (issue 2).

use crate::support::{Instance, fixture, fixtures};
use serde_json::Value;

fn outcome(v: &Value) -> &str {
    v["outcome"].as_str().unwrap_or_default()
}

/// Each fixture, processed alone on a fresh copy of the fixture directory, with the outcome,
/// kind and reason code it must get.
const CASES: &[(&str, &str, &str, Option<&str>)] = &[
    (
        "password_reset_fields.eml",
        "applied",
        "password_reset",
        None,
    ),
    (
        "password_reset_free_text.eml",
        "applied",
        "password_reset",
        None,
    ),
    ("new_account_fields.eml", "applied", "new_account", None),
    ("new_account_first_last.eml", "applied", "new_account", None),
    ("unlock.eml", "applied", "unlock", None),
    ("add_member.eml", "applied", "add_member", None),
    ("remove_member.eml", "applied", "remove_member", None),
    (
        "change_role_to_owner.eml",
        "awaiting_confirmation",
        "change_role",
        Some("confirmation_needed"),
    ),
    ("leaver.eml", "applied", "leaver", None),
    ("on_behalf_sender.eml", "applied", "password_reset", None),
    ("outlook_html_only.eml", "applied", "password_reset", None),
    ("quoted_printable.eml", "applied", "password_reset", None),
    ("base64_body.eml", "applied", "password_reset", None),
    ("windows1252.eml", "applied", "new_account", None),
    ("forwarded_history.eml", "applied", "password_reset", None),
    ("reply_with_quote.eml", "applied", "unlock", None),
    (
        "auto_reply.eml",
        "ignored",
        "unknown",
        Some("not_a_request"),
    ),
    (
        "out_of_office_xautoreply.eml",
        "ignored",
        "unknown",
        Some("not_a_request"),
    ),
    (
        "bounce_multipart_report.eml",
        "ignored",
        "unknown",
        Some("not_a_request"),
    ),
    (
        "precedence_bulk.eml",
        "ignored",
        "unknown",
        Some("not_a_request"),
    ),
    (
        "last_owner_demote.eml",
        "rejected",
        "change_role",
        Some("last_owner"),
    ),
    (
        "last_owner_leaver.eml",
        "rejected",
        "leaver",
        Some("replacement_missing"),
    ),
    (
        "other_org_target.eml",
        "rejected",
        "password_reset",
        Some("other_organisation"),
    ),
    (
        "not_shared_mailbox.eml",
        "rejected",
        "password_reset",
        Some("not_shared_mailbox"),
    ),
    (
        "requester_not_owner.eml",
        "rejected",
        "password_reset",
        Some("requester_not_owner"),
    ),
    (
        "mailbox_field_other.eml",
        "rejected",
        "add_member",
        Some("other_mailbox"),
    ),
    (
        "ambiguous_kind.eml",
        "needs_review",
        "unknown",
        Some("not_asked"),
    ),
    (
        "unknown_kind.eml",
        "needs_review",
        "unknown",
        Some("unknown_kind"),
    ),
    (
        "ambiguous_account.eml",
        "needs_review",
        "password_reset",
        Some("ambiguous_account"),
    ),
    ("garbage.eml", "needs_review", "unknown", Some("unparsable")),
    ("leaves_one_member.eml", "applied", "remove_member", None),
];

#[test]
fn every_fixture_gets_its_outcome() {
    let mut failures = Vec::new();
    for (file, want_outcome, want_kind, want_reason) in CASES {
        let i = Instance::with_directory("");
        let v = i.process_fixture(file);
        let got = (
            outcome(&v).to_owned(),
            v["kind"].as_str().unwrap_or_default().to_owned(),
            v["reason"].as_str().map(str::to_owned),
        );
        let want = (
            want_outcome.to_string(),
            want_kind.to_string(),
            want_reason.map(str::to_owned),
        );
        if got != want {
            failures.push(format!(
                "{file}: got {got:?}, want {want:?} — {}",
                v["explanation"]
            ));
        }
        // Only a registered mailbox is ever answered, and never for mail that is not a request.
        let reply = &v["reply"];
        match *want_outcome {
            "ignored" => assert!(reply.is_null(), "{file}: ignored mail got a reply"),
            _ if *want_reason == Some("not_shared_mailbox")
                || *want_reason == Some("unparsable") =>
            {
                assert!(reply.is_null(), "{file}: reply to an unregistered sender")
            }
            _ => {
                assert!(
                    reply["to"]
                        .as_str()
                        .is_some_and(|t| t.ends_with("@nhs.example")),
                    "{file}: {v}"
                );
                let subject = reply["subject"].as_str().unwrap();
                assert!(
                    subject.starts_with(&format!("[{}] ", v["reference"].as_str().unwrap())),
                    "{subject}"
                );
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn password_reset_is_applied_audited_and_answered() {
    let i = Instance::with_directory("");
    let v = i.process_fixture("password_reset_fields.eml");
    assert_eq!(outcome(&v), "applied");
    assert_eq!(v["reference"], "HD-000001");
    let reply = &v["reply"];
    assert_eq!(reply["to"], "rosehill.care@nhs.example");
    assert!(
        reply["subject"]
            .as_str()
            .unwrap()
            .starts_with("[HD-000001] Done: ")
    );
    let body = reply["body"].as_str().unwrap();
    let pw_line = body
        .lines()
        .find(|l| l.starts_with("Temporary password: "))
        .expect(body);
    let pw = pw_line.trim_start_matches("Temporary password: ");
    assert_eq!(pw.len(), 16, "{pw_line}");
    assert!(body.contains("tom.smith@nhs.example"), "{body}");

    let audit = i.audit();
    let actions: Vec<&str> = audit
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"request.applied"), "{actions:?}");
    // The request's own event comes first, then the parts of the change (they are written
    // together, in one statement).
    let at = |a: &str| actions.iter().position(|x| *x == a).expect(a);
    assert!(at("request.applied") < at("password.reset"), "{actions:?}");
    let reset = audit
        .iter()
        .find(|e| e["action"] == "password.reset")
        .expect("password.reset event");
    assert_eq!(reset["actor"], "jane.doe@nhs.example");
    assert_eq!(reset["on_behalf_of"], "rosehill.care@nhs.example");
    assert_eq!(reset["subject"], "tom.smith@nhs.example");
    assert_eq!(reset["reference"], "HD-000001");
    // The temporary password is in the reply only: never in the audit trail.
    let all_audit = i.ok(&["audit"]);
    assert!(
        !all_audit.contains(pw),
        "password leaked into the audit trail"
    );
}

/// The reference is written with the request, in one statement, on both backends: past six
/// digits it keeps every one (`HD-1000000`; PostgreSQL's lpad would cut a longer number to
/// the length it is given).
#[test]
fn a_reference_past_six_digits_keeps_every_digit() {
    use postroom::store::{Backend, Store};
    let i = Instance::with_directory("");
    assert_eq!(i.process_fixture("unlock.eml")["reference"], "HD-000001");
    // The next request is number 1,000,000: SQLite numbers after the largest id, PostgreSQL
    // from the column's sequence.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = Store::open(&i.database()).await.unwrap();
        let mut c = store.write().await.unwrap();
        let sql = match store.backend() {
            Backend::Sqlite => {
                "INSERT INTO requests (id, message_id, kind, outcome, created_at, updated_at) \
                 SELECT 999999, message_id, kind, outcome, created_at, updated_at \
                 FROM requests WHERE id = 1"
            }
            Backend::Postgres => "SELECT setval(pg_get_serial_sequence('requests', 'id'), 999999)",
        };
        sqlx::query(sql).execute(&mut *c).await.unwrap();
        drop(c);
        store.close().await;
    });
    let v = i.process_fixture("password_reset_fields.eml");
    assert_eq!(outcome(&v), "applied", "{v}");
    assert_eq!(v["reference"], "HD-1000000");
    assert!(
        v["reply"]["subject"]
            .as_str()
            .unwrap()
            .starts_with("[HD-1000000] Done: "),
        "{v}"
    );
}

/// Issue 12: `two_asks.eml`, "Please reset the password for tom.smith@… and add sam.green@… to the mailbox"
/// asks for two things; each becomes a request of its own (own reference, outcome and audit),
/// from the one message in one transaction, answered in one reply that lists both.
#[test]
fn two_asks_in_one_message_become_two_requests_answered_in_one_reply() {
    let i = Instance::with_directory("");
    let f = fixture("two_asks.eml");
    let out = i.process(&[f.as_path()], false);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0]["kind"], "password_reset", "{out:?}");
    assert_eq!(out[1]["kind"], "add_member", "{out:?}");
    for v in &out {
        assert_eq!(outcome(v), "applied", "{v}");
        assert_eq!(v["file"], out[0]["file"]);
    }
    assert_ne!(out[0]["reference"], out[1]["reference"]);
    assert_eq!(
        out[0]["understood"]["targets"][0]["account"],
        "tom.smith@nhs.example"
    );
    assert_eq!(
        out[1]["understood"]["targets"][0]["account"],
        "sam.green@nhs.example"
    );
    // One reply, listing each request under its reference.
    assert_eq!(out[0]["reply"], out[1]["reply"]);
    let body = out[0]["reply"]["body"].as_str().unwrap();
    for v in &out {
        let reference = v["reference"].as_str().unwrap();
        assert!(body.contains(&format!("[{reference}]")), "{body}");
    }
    // Both changes were made; each request has its own audit event.
    assert!(
        i.export_row("rosehill.care@nhs.example", "sam.green@nhs.example")
            .is_some()
    );
    let applied: Vec<_> = i
        .audit()
        .into_iter()
        .filter(|e| e["action"] == "request.applied")
        .collect();
    assert_eq!(applied.len(), 2, "{applied:?}");
}

#[test]
fn the_same_message_twice_changes_nothing_the_second_time() {
    let i = Instance::with_directory("");
    let first = i.process_fixture("leaver.eml");
    assert_eq!(outcome(&first), "applied");
    let export_after_first = i.export();
    let audit_len = i.audit().len();
    let second = i.process_fixture("leaver.eml");
    assert_eq!(outcome(&second), "duplicate");
    assert_eq!(second["reference"], first["reference"]);
    assert!(second["reply"].is_null());
    assert_eq!(i.export(), export_after_first);
    assert_eq!(i.audit().len(), audit_len);
}

#[test]
fn dry_run_writes_nothing() {
    let i = Instance::with_directory("");
    let before = i.export();
    let files: Vec<_> = CASES.iter().map(|(f, ..)| fixture(f)).collect();
    let refs: Vec<_> = files.iter().map(|p| p.as_path()).collect();
    let out = i.process(&refs, true);
    assert_eq!(out.len(), CASES.len());
    assert_eq!(i.export(), before);
    // The only audit event is the import's.
    assert_eq!(i.audit().len(), 1);
    // And the same files applied for real afterwards are not duplicates.
    let v = i.process_fixture("leaver.eml");
    assert_eq!(outcome(&v), "applied");
}

#[test]
fn new_account_gets_an_allocated_address_and_membership() {
    let i = Instance::with_directory("");
    let v = i.process_fixture("new_account_fields.eml");
    assert_eq!(outcome(&v), "applied", "{v}");
    let row = i
        .export_row("rosehill.care@nhs.example", "zoe.angstrom@nhs.example")
        .expect("accent-folded address allocated and a member of the sending mailbox");
    assert!(row.ends_with(",member,active"), "{row}");
    // A second request for the same name is held for a person (issue 12): the same person
    // coming back, or a namesake? Staff check before a second account is made.
    let text = std::fs::read_to_string(fixture("new_account_fields.eml")).unwrap();
    let again = text
        .replacen("Message-ID: <", "Message-ID: <again-", 1)
        .replacen("Message-Id: <", "Message-Id: <again-", 1);
    let path = i.dir.path().join("again.eml");
    std::fs::write(&path, again).unwrap();
    let v = i.process(&[path.as_path()], false).remove(0);
    assert_eq!(outcome(&v), "needs_review", "{v}");
    assert_eq!(v["reason"], "starter_exists", "{v}");
    assert!(
        i.export_row("rosehill.care@nhs.example", "zoe.angstrom2@nhs.example")
            .is_none()
    );
}

#[test]
fn leaver_is_disabled_and_removed_from_every_mailbox() {
    let i = Instance::with_directory("");
    assert!(
        i.export_row("rosehill.care@nhs.example", "amy.jones@nhs.example")
            .is_some()
    );
    let v = i.process_fixture("leaver.eml");
    assert_eq!(outcome(&v), "applied", "{v}");
    let row = i
        .export_row("", "amy.jones@nhs.example")
        .expect("no membership left");
    assert!(row.ends_with(",disabled"), "{row}");
}

#[test]
fn last_owner_cannot_be_demoted_and_nothing_changes() {
    let i = Instance::with_directory("");
    let before = i.export();
    let v = i.process_fixture("last_owner_demote.eml");
    assert_eq!(outcome(&v), "rejected");
    assert_eq!(v["reason"], "last_owner");
    let body = v["reply"]["body"].as_str().unwrap();
    assert!(body.contains("last owner"), "{body}");
    assert_eq!(i.export(), before);
}

#[test]
fn a_mailbox_left_with_one_member_gets_a_warning() {
    let i = Instance::with_directory("");
    let v = i.process_fixture("leaves_one_member.eml");
    assert_eq!(outcome(&v), "applied", "{v}");
    let body = v["reply"]["body"].as_str().unwrap();
    assert!(body.contains("now has 1 member"), "{body}");
}

#[test]
fn a_reply_in_a_thread_becomes_a_comment() {
    let i = Instance::with_directory("");
    let first = i.process_fixture("password_reset_fields.eml");
    assert_eq!(first["reference"], "HD-000001");
    let v = i.process_fixture("thread_reply.eml");
    assert_eq!(outcome(&v), "ignored", "{v}");
    assert_eq!(v["reason"], "comment_added");
    assert_eq!(v["reference"], "HD-000001");
    assert!(v["reply"].is_null());
    assert!(i.audit().iter().any(|e| e["action"] == "request.comment"));
    // Fetched again (a crash between commit and IMAP move): a duplicate that remembers it was
    // a comment, so the watcher files it with the ignored mail, not the processed requests.
    let again = i.process_fixture("thread_reply.eml");
    assert_eq!(outcome(&again), "duplicate");
    assert_eq!(again["reference"], "HD-000001");
    assert!(
        again["explanation"]
            .as_str()
            .unwrap()
            .contains("outcome: ignored"),
        "{again}"
    );
}

#[test]
fn policy_can_let_members_ask() {
    let strict = Instance::with_directory("");
    assert_eq!(
        strict.process_fixture("requester_not_owner.eml")["reason"],
        "requester_not_owner"
    );
    let lenient = Instance::with_directory("[policy]\npassword_reset = \"member\"\n");
    assert_eq!(
        outcome(&lenient.process_fixture("requester_not_owner.eml")),
        "applied"
    );
}

#[test]
fn directory_import_is_idempotent_and_export_round_trips() {
    let i = Instance::with_directory("");
    let first = i.export();
    assert!(
        first.starts_with("organisation,mailbox,account,name,role,status\n"),
        "{first}"
    );
    let mut lines: Vec<&str> = first.lines().skip(1).collect();
    let sorted = {
        let mut s = lines.clone();
        s.sort();
        s
    };
    assert_eq!(lines, sorted, "export is sorted");
    let out = i.ok(&[
        "directory",
        "import",
        fixtures().join("directory.csv").to_str().unwrap(),
    ]);
    let summary: Value = serde_json::from_str(out.trim()).unwrap();
    for key in [
        "organisations",
        "mailboxes",
        "accounts",
        "accounts_updated",
        "memberships",
        "memberships_updated",
    ] {
        assert_eq!(summary[key], 0, "re-import changed {key}: {summary}");
    }
    // The export, imported into a fresh database, gives the same export.
    let path = i.dir.path().join("export.csv");
    std::fs::write(&path, &first).unwrap();
    let fresh = Instance::new("");
    fresh.ok(&["directory", "import", path.to_str().unwrap()]);
    assert_eq!(fresh.export(), first);
    lines.clear();
}

// On PostgreSQL an import sends each batch as one JSON text (src/store/directory_batch/): a
// quote, a backslash or a letter outside ASCII must arrive as it was written, and be found
// again by the next batch's look-ups.
#[test]
fn quotes_backslashes_and_accents_survive_an_import_and_are_found_again() {
    let i = Instance::new("");
    let org = r#""""O'Neill"" \ Sons, Practice""#;
    let rows = [
        format!("{org},zoe.site@nhs.example,,,,"),
        format!(
            r#"{org},zoe.site@nhs.example,zoe.darcy@nhs.example,"Zoë ""Jo"" D'Arcy \ Ünal",owner,active"#
        ),
        format!("{org},,emile+x@nhs.example,Émile 😀 Noël,,active"),
    ];
    let text = format!("{HEADER}{}\n", rows.join("\n"));
    let first = import_csv(&i, "quoted.csv", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary_counts(&first), [3, 1, 1, 2, 0, 1, 0], "{first}");
    let export = i.export();
    assert!(export.contains(org), "{export}");
    assert!(export.contains(r#""Zoë ""Jo"" D'Arcy \ Ünal""#), "{export}");
    assert!(
        export.contains("emile+x@nhs.example,Émile 😀 Noël"),
        "{export}"
    );
    // The second time every row is found by its organisation's name and its addresses, so
    // nothing is written again.
    let again = import_csv(&i, "quoted.csv", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary_counts(&again), [3, 0, 0, 0, 0, 0, 0], "{again}");
    assert_eq!(i.export(), export);
}

#[test]
fn a_bad_csv_row_names_its_line_and_applies_nothing() {
    let i = Instance::new("");
    let path = i.dir.path().join("bad.csv");
    std::fs::write(
        &path,
        "organisation,mailbox,account,name,role\n\
         Rosehill Care,rosehill.care@nhs.example,,,\n\
         Rosehill Care,,jane.doe@nhs.example,Jane Doe,\n\
         Rosehill Care,rosehill.care@nhs.example,jane.doe@nhs.example,Jane Doe,boss\n",
    )
    .unwrap();
    let out = i
        .cmd()
        .args(["directory", "import", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 4"), "{err}");
    assert!(err.contains("boss"), "{err}");
    assert_eq!(
        i.export(),
        "organisation,mailbox,account,name,role,status\n"
    );
}

// `directory import` applies its rows a thousand at a time (issue 18). The tests below cross
// that boundary: each batch is checked row by row against the database and its own earlier
// rows, so what a file does, and the line a bad row is reported at, must not depend on where
// the batches fall.

const IMPORT_BATCH: usize = 1000;

/// `n` account rows of `organisation` (`person{from}@…` on), one per line, in no mailbox.
fn account_rows(organisation: &str, from: usize, n: usize) -> String {
    (from..from + n)
        .map(|k| format!("{organisation},,person{k}@big.example,Person {k},,active\n"))
        .collect()
}

/// Import `text` as a file; the summary, or the error's text.
fn import_csv(i: &Instance, name: &str, text: &str) -> Result<Value, String> {
    let path = i.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let out = i
        .cmd()
        .args(["directory", "import", path.to_str().unwrap()])
        .output()
        .unwrap();
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn summary_counts(v: &Value) -> [u64; 7] {
    [
        "rows",
        "organisations",
        "mailboxes",
        "accounts",
        "accounts_updated",
        "memberships",
        "memberships_updated",
    ]
    .map(|k| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}")))
}

const HEADER: &str = "organisation,mailbox,account,name,role,status\n";

#[test]
fn a_bad_row_in_a_later_batch_names_its_line_and_applies_nothing() {
    let i = Instance::with_directory("");
    let before = i.export();
    // Line 2 + 2,300: an account of another organisation, well inside the third batch.
    let mut csv = format!("{HEADER}{}", account_rows("Big Org", 0, 2_300));
    csv.push_str("Big Org,,jane.doe@nhs.example,Jane Doe,,active\n");
    csv.push_str(&account_rows("Big Org", 2_300, 500));
    let err = import_csv(&i, "later.csv", &csv).unwrap_err();
    assert!(
        err.contains("line 2302: account jane.doe@nhs.example already belongs to Rosehill Care"),
        "{err}"
    );
    assert_eq!(i.export(), before, "rows of the earlier batches stayed");

    // A row the reader refuses comes after a row the database refuses, in the same batch:
    // the earlier row is the one reported, as when rows were applied one by one.
    let mut csv = format!("{HEADER}{}", account_rows("Big Org", 0, 1_500));
    csv.push_str("Big Org,rosehill.care@nhs.example,,,,\n"); // line 1502
    csv.push_str(&account_rows("Big Org", 1_500, 97));
    csv.push_str("Big Org,,not-an-address,X,,active\n"); // line 1600
    csv.push_str(&account_rows("Big Org", 1_597, 600));
    let err = import_csv(&i, "two_bad.csv", &csv).unwrap_err();
    assert!(
        err.contains(
            "line 1502: mailbox rosehill.care@nhs.example already belongs to Rosehill Care"
        ),
        "{err}"
    );
    assert!(!err.contains("line 1600"), "{err}");
    // Alone, the unreadable row is the one named.
    let csv = csv.replace("Big Org,rosehill.care@nhs.example,,,,\n", "");
    let err = import_csv(&i, "unreadable.csv", &csv).unwrap_err();
    assert!(
        err.contains("line 1599: account `not-an-address` is not an email address"),
        "{err}"
    );
    assert_eq!(i.export(), before);
}

#[test]
fn rows_of_one_batch_see_what_the_rows_before_them_made() {
    let i = Instance::new("");
    let csv = format!(
        "{HEADER}\
         Elm Surgery,elm.surgery@nhs.example,,,,\n\
         Elm Surgery,,ann.bell@nhs.example,Ann Bell,,active\n\
         Elm Surgery,elm.surgery@nhs.example,ann.bell@nhs.example,Ann Bell,owner,active\n\
         Elm Surgery,elm.reception@nhs.example,ann.bell@nhs.example,Ann Bell,member,active\n\
         Elm Surgery,elm.surgery@nhs.example,bob.cole@nhs.example,Bob Cole,member,locked\n\
         Elm Surgery,,bob.cole@nhs.example,Robert Cole,,active\n\
         Elm Surgery,elm.surgery@nhs.example,bob.cole@nhs.example,,owner,active\n\
         Elm Surgery,elm.reception@nhs.example,ann.bell@nhs.example,Ann Bell,member,active\n"
    );
    let first = import_csv(&i, "elm.csv", &csv).unwrap();
    // rows, organisations, mailboxes, accounts (+ updated), memberships (+ updated): Bob
    // made, then renamed and unlocked; his membership made, then made owner.
    assert_eq!(summary_counts(&first), [8, 1, 2, 2, 1, 3, 1], "{first}");
    let expected = format!(
        "{HEADER}\
         Elm Surgery,elm.reception@nhs.example,ann.bell@nhs.example,Ann Bell,member,active\n\
         Elm Surgery,elm.surgery@nhs.example,ann.bell@nhs.example,Ann Bell,owner,active\n\
         Elm Surgery,elm.surgery@nhs.example,bob.cole@nhs.example,Robert Cole,owner,active\n"
    );
    assert_eq!(i.export(), expected);
    // Again: Bob is renamed and locked, then back; demoted, then owner again.
    let again = import_csv(&i, "elm.csv", &csv).unwrap();
    assert_eq!(summary_counts(&again), [8, 0, 0, 0, 2, 0, 2], "{again}");
    assert_eq!(i.export(), expected);

    // An address made a mailbox by one row and named as an account by a later one of the
    // same batch, and the other way round: refused at the later row, nothing applied.
    let fresh = Instance::new("");
    let err = import_csv(
        &fresh,
        "mailbox_then_account.csv",
        &format!(
            "{HEADER}{}Elm Surgery,elm.x@nhs.example,,,,\n\
             Elm Surgery,,elm.x@nhs.example,Elm X,,active\n",
            account_rows("Elm Surgery", 0, 10)
        ),
    )
    .unwrap_err();
    assert!(
        err.contains(
            "line 13: elm.x@nhs.example is already a shared mailbox, not a personal account"
        ),
        "{err}"
    );
    let err = import_csv(
        &fresh,
        "account_then_mailbox.csv",
        &format!(
            "{HEADER}Elm Surgery,,elm.y@nhs.example,Elm Y,,active\n{}\
             Elm Surgery,elm.y@nhs.example,person3@big.example,Person 3,owner,active\n",
            account_rows("Elm Surgery", 0, 10)
        ),
    )
    .unwrap_err();
    assert!(
        err.contains("line 13: elm.y@nhs.example is already a personal account, not a mailbox"),
        "{err}"
    );
    assert_eq!(fresh.export(), HEADER);
}

#[test]
fn a_file_of_several_batches_imported_twice_changes_nothing_the_second_time() {
    let i = Instance::new("");
    // 3 organisations; every 40th account also owns a new mailbox of its organisation and the
    // next 39 are its members; a few accounts locked.
    let mut csv = String::from(HEADER);
    let mut mailbox = String::new();
    for k in 0..2_600 {
        let org = format!("Org {}", k / 1_000);
        let status = if k % 97 == 0 { "locked" } else { "active" };
        if k % 40 == 0 {
            mailbox = format!("box{k}@big.example");
            csv.push_str(&format!("{org},{mailbox},,,,\n"));
        }
        let role = if k % 40 == 0 { "owner" } else { "member" };
        csv.push_str(&format!(
            "{org},{mailbox},person{k}@big.example,Person {k},{role},{status}\n"
        ));
    }
    let first = import_csv(&i, "big.csv", &csv).unwrap();
    assert_eq!(
        summary_counts(&first),
        [2_665, 3, 65, 2_600, 0, 2_600, 0],
        "{first}"
    );
    let exported = i.export();
    assert_eq!(exported.lines().count(), 2_601);
    let again = import_csv(&i, "big.csv", &csv).unwrap();
    assert_eq!(summary_counts(&again), [2_665, 0, 0, 0, 0, 0, 0], "{again}");
    assert_eq!(i.export(), exported);
}

#[test]
fn a_role_changed_in_a_later_batch_counts_and_keeps_the_last_owner_rule() {
    let owners = format!(
        "{HEADER}\
         Big Org,big.box@big.example,owner.one@big.example,Owner One,owner,active\n\
         Big Org,big.box@big.example,owner.two@big.example,Owner Two,owner,active\n\
         {}",
        account_rows("Big Org", 0, IMPORT_BATCH)
    );
    // Line 1004, in the second batch: owner one becomes a member; owner two is left.
    let i = Instance::new("");
    let csv = format!(
        "{owners}Big Org,big.box@big.example,owner.one@big.example,Owner One,member,active\n"
    );
    let s = import_csv(&i, "handover.csv", &csv).unwrap();
    assert_eq!(summary_counts(&s), [1_003, 1, 1, 1_002, 0, 2, 1], "{s}");
    let export = i.export();
    assert!(
        export.contains(
            "Big Org,big.box@big.example,owner.one@big.example,Owner One,member,active\n"
        ),
        "{export}"
    );
    // Both demoted: the mailbox would have no owner; the first demotion is named, as before.
    let fresh = Instance::new("");
    let csv =
        format!("{csv}Big Org,big.box@big.example,owner.two@big.example,Owner Two,member,active\n");
    let err = import_csv(&fresh, "no_owner.csv", &csv).unwrap_err();
    assert!(
        err.contains("line 1004: this makes owner.one@big.example a member, and big.box@big.example would have no owner left"),
        "{err}"
    );
    assert_eq!(fresh.export(), HEADER);
}

#[test]
fn missing_config_is_a_clear_message() {
    let mut c = assert_cmd::Command::cargo_bin("postroom").unwrap();
    let out = c
        .args(["--config", "/nonexistent/postroom.toml", "migrate"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/postroom.toml") && err.contains("not found"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn bad_config_names_the_key() {
    let i = Instance::new("[policy]\nleaver = \"anyone\"\n");
    let out = i.cmd().arg("migrate").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("policy.leaver"), "{err}");
}

#[test]
fn audit_since_filters() {
    let i = Instance::with_directory("");
    i.process_fixture("unlock.eml");
    assert!(!i.audit().is_empty());
    assert!(i.ok(&["audit", "--since", "2999-01-01"]).trim().is_empty());
    assert!(!i.ok(&["audit", "--since", "1h"]).trim().is_empty());
}

#[test]
fn migrate_dry_run_lists_pending_then_nothing() {
    let i = Instance::new("");
    let out = i.ok(&["migrate", "--dry-run"]);
    assert!(out.contains("pending: 1 initial"), "{out}");
    i.ok(&["migrate"]);
    assert_eq!(
        i.ok(&["migrate", "--dry-run"]).trim(),
        "no pending migrations"
    );
}

/// Continuity (issue 16): a change that would leave a shared mailbox with nobody at all is
/// refused with advice to add a colleague first, and nothing changes. The owner rules already
/// keep every mailbox that has an owner from being emptied; a leaver also leaves the
/// organisation's other mailboxes, and one of those may have no owner and no other member.
/// Once a colleague is added there, the same leaver is applied.
#[test]
fn a_mailbox_is_never_left_with_no_member() {
    let i = Instance::with_directory("");
    let csv = i.dir.path().join("lone.csv");
    let directory = |extra: &str| {
        format!(
            "organisation,mailbox,account,name,role,status\n\
             Lone Practice,lone.practice@nhs.example,olga.owner@nhs.example,Olga Owner,owner,active\n\
             Lone Practice,lone.practice@nhs.example,sam.solo@nhs.example,Sam Solo,member,active\n\
             Lone Practice,lone.branch@nhs.example,sam.solo@nhs.example,Sam Solo,member,active\n{extra}"
        )
    };
    std::fs::write(&csv, directory("")).unwrap();
    i.ok(&["directory", "import", csv.to_str().unwrap()]);
    let path = i.dir.path().join("lone-leaver.eml");
    std::fs::write(
        &path,
        "Authentication-Results: mail.nhs.example; dkim=pass header.d=nhs.example header.s=s1; dmarc=pass header.from=nhs.example\r\n\
         From: Lone Practice <lone.practice@nhs.example>\r\n\
         To: Helpdesk <helpdesk@nhs.example>\r\n\
         Subject: Leaver\r\n\
         Date: Mon, 03 Mar 2025 10:03:00 +0000\r\n\
         Message-ID: <lone-leaver@nhs.example>\r\n\
         Content-Type: text/plain; charset=\"utf-8\"\r\n\r\n\
         Sam has left us, please close his account.\r\n\r\n\
         Account: sam.solo@nhs.example\r\nRequested by: olga.owner@nhs.example\r\n",
    )
    .unwrap();
    let before = i.export();
    let v = i.process(&[&path], false).remove(0);
    assert_eq!(outcome(&v), "rejected", "{v}");
    assert_eq!(v["reason"], "last_member", "{v}");
    let body = v["reply"]["body"].as_str().unwrap();
    assert!(
        body.contains("only member of lone.branch@nhs.example") && body.contains("colleague"),
        "{body}"
    );
    assert_eq!(i.export(), before, "nothing changed");

    // A colleague added to the branch's mailbox: the leaver goes through (a new message).
    std::fs::write(
        &csv,
        directory(
            "Lone Practice,lone.branch@nhs.example,ann.new@nhs.example,Ann New,member,active\n",
        ),
    )
    .unwrap();
    i.ok(&["directory", "import", csv.to_str().unwrap()]);
    let again = i.dir.path().join("lone-leaver-again.eml");
    let raw = std::fs::read_to_string(&path)
        .unwrap()
        .replace("<lone-leaver@", "<lone-leaver-again@");
    std::fs::write(&again, raw).unwrap();
    let v = i.process(&[&again], false).remove(0);
    assert_eq!(outcome(&v), "applied", "{v}");
    let body = v["reply"]["body"].as_str().unwrap();
    assert!(
        body.contains("lone.branch@nhs.example now has 1 member"),
        "{body}"
    );
}

/// Continuity reminders count against the daily reply cap like every answer (issue 16): with
/// the cap reached for a mailbox, its reminder waits for the next pass, and nothing is sent.
#[test]
fn a_reminder_never_goes_past_the_daily_reply_cap() {
    let i = Instance::with_directory("\n[limits]\nmax_replies_per_mailbox_per_day = 1\n");
    // Oakview is left with one member, and is answered: its one reply of the day.
    let v = i.process_fixture("leaves_one_member.eml");
    assert_eq!(outcome(&v), "applied", "{v}");
    let pass: Value = serde_json::from_str(i.ok(&["continuity", "remind"]).trim()).unwrap();
    assert_eq!(
        pass["capped"],
        serde_json::json!(["oakview.gp@nhs.example"]),
        "{pass}"
    );
    assert_eq!(pass["reminded"], serde_json::json!([]), "{pass}");
    assert!(
        !i.audit()
            .iter()
            .any(|e| e["action"] == "continuity.reminded")
    );
    // Still listed, with no reminder counted.
    let listed: Value = serde_json::from_str(i.ok(&["continuity"]).trim()).unwrap();
    assert_eq!(listed["mailbox"], "oakview.gp@nhs.example");
    assert_eq!(listed["reminders_sent"], 0, "{listed}");
}
