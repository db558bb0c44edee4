//! Provisioning through the `command` target (issue 15), on a real database: an applied
//! request leaves one provisioning job and a reply held for it; the job's worker runs the
//! operator's program with each operation as JSON; only then is the reply due. A program that
//! refuses sends the request to staff (`target_refused`) and the site is told a person has
//! it; the held "done" stays held. `replay --dry-run` shows what a rule change would do at
//! the target.

use crate::support::{Instance, fixture};
use postroom::config::Config;
use postroom::desk::provision_job::Provision;
use postroom::jobs::worker;
use postroom::provision::Connector;
use postroom::store::{Store, now_ms, outbox};
use serde_json::Value;
use std::sync::Arc;

/// An instance whose directory target is a shell script that logs each operation it is
/// given (one JSON line each) and answers as `behaviour` says.
fn instance(behaviour: &str) -> (Instance, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap().keep();
    let log = dir.join("operations.jsonl");
    let script = dir.join("provision.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ncat >> '{log}'\necho >> '{log}'\n{behaviour}\n",
            log = log.display()
        ),
    )
    .unwrap();
    let i = Instance::with_directory(&format!(
        "[directory]\ntarget = \"command\"\ncommand = [\"/bin/sh\", \"{}\"]\ntimeout = \"5s\"\n",
        script.display()
    ));
    (i, log)
}

async fn run_jobs(i: &Instance) -> worker::JobPass {
    let cfg = Config::load(&i.config).unwrap();
    let store = Store::open(&cfg.database).await.unwrap();
    let connector = Connector::build(&cfg.directory.target).unwrap().unwrap();
    let kind = Provision::new(connector, Arc::new(cfg), None);
    worker::pass(&store, &kind, None).await.unwrap()
}

async fn due_replies(i: &Instance) -> Vec<outbox::OutboxRow> {
    let store = Store::open(&i.database()).await.unwrap();
    outbox::due(&mut store.read().await.unwrap(), now_ms() + 1000, 50)
        .await
        .unwrap()
}

fn operations(log: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn the_site_hears_done_only_once_the_target_has_done_it() {
    let (i, log) = instance("echo '{\"reset\": true}'");
    let v = i.process_fixture("password_reset_fields.eml");
    assert_eq!(v["outcome"], "applied", "{v}");
    // Recorded and held: the reply is not due while the job is pending.
    assert!(due_replies(&i).await.is_empty());
    assert!(operations(&log).is_empty());

    let pass = run_jobs(&i).await;
    assert_eq!(pass.done, 1, "{pass:?}");
    let ops = operations(&log);
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0]["operation"]["op"], "reset_password");
    assert_eq!(ops[0]["operation"]["address"], "tom.smith@nhs.example");
    assert_eq!(ops[0]["reference"], v["reference"]);
    let password = ops[0]["operation"]["password"].as_str().unwrap().to_owned();
    assert!(password.len() >= 8);

    // Now the reply is due, and carries the password the target was given.
    let due = due_replies(&i).await;
    assert_eq!(due.len(), 1);
    assert!(due[0].body.contains("has been done"), "{}", due[0].body);
    assert!(due[0].body.contains(&password));
    let audit = i.audit();
    let done = audit.iter().find(|e| e["action"] == "job.done").unwrap();
    assert_eq!(
        done["detail"]["result"][0]["read_back"]["reset"], true,
        "{done}"
    );
    assert!(
        !done.to_string().contains(&password),
        "the audit never holds the password"
    );

    // Nothing left to do: a second pass does nothing, the program is not run again.
    assert_eq!(run_jobs(&i).await.done, 0);
    assert_eq!(operations(&log).len(), 1);
}

#[tokio::test]
async fn a_refusal_goes_to_staff_and_the_site_is_told_a_person_has_it() {
    let (i, log) = instance("echo 'password policy: too short' >&2; exit 3");
    let v = i.process_fixture("password_reset_fields.eml");
    assert_eq!(v["outcome"], "applied");
    let pass = run_jobs(&i).await;
    assert_eq!(pass.failed, 1, "{pass:?}");

    let audit = i.audit();
    let failed = audit.iter().find(|e| e["action"] == "job.failed").unwrap();
    assert!(
        failed["detail"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("password policy: too short")),
        "{failed}"
    );
    assert!(audit.iter().any(|e| {
        e["action"] == "request.needs_review"
            && e["detail"]["reason"] == "target_refused"
            && e["detail"]["target_said"]
                .as_str()
                .is_some_and(|t| t.contains("too short"))
    }));
    let status = i.ok(&["status"]);
    assert!(status.contains("review"), "{status}");

    // One reply is due: "a person has it" — not the held "done", which carries the password.
    let due = due_replies(&i).await;
    assert_eq!(
        due.len(),
        1,
        "{:?}",
        due.iter().map(|d| &d.body).collect::<Vec<_>>()
    );
    assert!(
        due[0]
            .body
            .contains("a person on the helpdesk is handling it"),
        "{}",
        due[0].body
    );
    assert!(!due[0].body.contains("has been done"));
    assert!(
        !due[0].body.contains("too short"),
        "the target's words are for staff"
    );

    // Someone fixes the cause and retries the job: done, the request applied after all, and
    // the held "done" reply goes out.
    let script = log.with_file_name("provision.sh");
    let text = std::fs::read_to_string(&script)
        .unwrap()
        .replace("exit 3", "echo '{}'");
    std::fs::write(&script, text).unwrap();
    let failed: Vec<Value> = i
        .ok(&["jobs", "--status", "failed"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].get("payload").is_none(),
        "the listing never shows a payload"
    );
    let id = failed[0]["id"].as_i64().unwrap().to_string();
    i.ok(&["jobs", "retry", &id]);
    let again = i.cmd().args(["jobs", "retry", &id]).output().unwrap();
    assert!(
        !again.status.success(),
        "a job that is not failed is not retried"
    );
    assert_eq!(run_jobs(&i).await.done, 1);
    let audit = i.audit();
    assert!(audit.iter().any(|e| e["action"] == "job.retry"));
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "request.applied" && e["detail"]["after"] == "target_refused")
    );
    let due = due_replies(&i).await;
    assert_eq!(due.len(), 2);
    assert!(due.iter().any(|d| d.body.contains("has been done")));
}

#[tokio::test]
async fn replay_dry_run_shows_what_a_rule_change_would_do_at_the_target() {
    let (i, log) = instance("echo '{}'");
    assert_eq!(
        i.process_fixture("requester_not_owner.eml")["outcome"],
        "rejected"
    );
    let mut cfg = std::fs::read_to_string(&i.config).unwrap();
    cfg.push_str("[policy]\npassword_reset = \"member\"\n");
    std::fs::write(&i.config, cfg).unwrap();
    let lines: Vec<Value> = i
        .ok(&["replay", "--since", "1h", "--dry-run"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let change = lines
        .iter()
        .find(|v| v["was"] == "rejected" && v["now"] == "applied")
        .unwrap_or_else(|| panic!("{lines:?}"));
    let ops: Vec<&str> = change["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert!(
        ops[0].starts_with("set a temporary password on "),
        "{ops:?}"
    );
    // A dry run writes no job and runs nothing.
    assert_eq!(run_jobs(&i).await, worker::JobPass::default());
    assert!(operations(&log).is_empty());
    let _ = fixture("requester_not_owner.eml");
}

/// The request's page shows its change at the directory: the target's refusal, and a retry
/// that puts the job back in the queue (audited), for a job of this request only.
#[tokio::test]
async fn staff_see_the_directory_s_answer_and_retry_the_job_from_the_request_page() {
    let dir = tempfile::tempdir().unwrap().keep();
    let script = dir.join("provision.sh");
    std::fs::write(
        &script,
        "#!/bin/sh\ncat >/dev/null\necho 'no such group <b>x</b>' >&2\nexit 3\n",
    )
    .unwrap();
    let w = crate::web_support::Web::with_config(&format!(
        "[directory]\ntarget = \"command\"\ncommand = [\"/bin/sh\", \"{}\"]\n",
        script.display()
    ))
    .await;
    let reference = w.process_fixture("password_reset_fields.eml");
    let connector = Connector::build(&w.cfg.directory.target).unwrap().unwrap();
    let kind = Provision::new(connector, w.cfg.clone(), None);
    assert_eq!(worker::pass(&w.store, &kind, None).await.unwrap().failed, 1);

    let me = w.agent().await;
    let page = w.get(&format!("/requests/{reference}"), Some(&me)).await;
    assert!(
        page.body.contains("Changes at the directory"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("no such group &#60;b&#62;x&#60;/b&#62;"),
        "escaped: {}",
        page.body
    );
    assert!(page.body.contains("Try again at the directory"));
    let job_id = w.scalar_i64("SELECT MAX(id) FROM jobs").await;

    // Another request's job is not this request's to retry.
    let other = w.process_fixture("unlock.eml");
    let wrong = w
        .submit(&format!("/requests/{other}/jobs/{job_id}/retry"), &[], &me)
        .await;
    assert_eq!(wrong.status, axum::http::StatusCode::NOT_FOUND);

    let done = w
        .submit(
            &format!("/requests/{reference}/jobs/{job_id}/retry"),
            &[],
            &me,
        )
        .await;
    assert_eq!(
        done.status,
        axum::http::StatusCode::SEE_OTHER,
        "{}",
        done.body
    );
    assert_eq!(
        w.scalar_i64(
            "SELECT COUNT(*) FROM jobs WHERE status = 'pending' AND retried_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(
        w.scalar_i64(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'job.retry' AND actor = 'staff:adam'"
        )
        .await,
        1
    );
    // Pending now: a second retry is refused, and says why.
    let again = w
        .submit(
            &format!("/requests/{reference}/jobs/{job_id}/retry"),
            &[],
            &me,
        )
        .await;
    assert_eq!(again.status, axum::http::StatusCode::CONFLICT);
}

/// `target = "manual"`: nothing runs the job; the request's page gives a person the exact
/// steps (with the temporary password they must set), and the site is answered only once
/// they say the changes are made. The password is then blanked from the kept job.
#[tokio::test]
async fn a_manual_change_is_answered_once_a_person_says_it_is_made() {
    let w = crate::web_support::Web::with_config("[directory]\ntarget = \"manual\"\n").await;
    let reference = w.process_fixture("password_reset_fields.eml");
    assert!(
        postroom::provision::Connector::build(&w.cfg.directory.target)
            .unwrap()
            .is_none(),
        "no worker for a manual target"
    );
    let held = outbox::due(&mut w.store.read().await.unwrap(), now_ms() + 1000, 50)
        .await
        .unwrap();
    assert!(held.is_empty(), "the reply waits for the person");

    let me = w.agent().await;
    let page = w.get(&format!("/requests/{reference}"), Some(&me)).await;
    assert!(page.body.contains("To do by hand"), "{}", page.body);
    assert!(
        page.body
            .contains("Update-MgUser -UserId &#39;tom.smith@nhs.example&#39;"),
        "{}",
        page.body
    );
    assert!(page.body.contains("ForceChangePasswordNextSignIn = $true"));
    let job_id = w.scalar_i64("SELECT MAX(id) FROM jobs").await;

    let done = w
        .submit(
            &format!("/requests/{reference}/jobs/{job_id}/done"),
            &[],
            &me,
        )
        .await;
    assert_eq!(
        done.status,
        axum::http::StatusCode::SEE_OTHER,
        "{}",
        done.body
    );
    let due = outbox::due(&mut w.store.read().await.unwrap(), now_ms() + 1000, 50)
        .await
        .unwrap();
    assert_eq!(due.len(), 1);
    assert!(due[0].body.contains("has been done"), "{}", due[0].body);
    assert_eq!(
        w.scalar_i64(
            "SELECT COUNT(*) FROM audit_events WHERE action = 'job.done' AND actor = 'staff:adam'"
        )
        .await,
        1
    );
    let job = postroom::store::jobs::find(&mut w.store.read().await.unwrap(), job_id)
        .await
        .unwrap()
        .unwrap();
    assert!(job.payload.contains("\"password\":\"\""), "{}", job.payload);
    // Done once: a second "made" is refused, and the page no longer offers the steps.
    let again = w
        .submit(
            &format!("/requests/{reference}/jobs/{job_id}/done"),
            &[],
            &me,
        )
        .await;
    assert_eq!(again.status, axum::http::StatusCode::CONFLICT);
    let page = w.get(&format!("/requests/{reference}"), Some(&me)).await;
    assert!(!page.body.contains("To do by hand"));
}
