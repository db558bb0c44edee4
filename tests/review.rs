//! Staff decisions on held requests (the staff page's "apply as", "reject", "comment") go
//! through the same rules as the pipeline.

use crate::support::Instance;
use postroom::config::Config;
use postroom::review::{self, ReviewError};
use postroom::store::Store;
use postroom::{Outcome, RequestKind};
use std::collections::BTreeMap;

async fn open(i: &Instance) -> (Store, Config) {
    let cfg = Config::load(&i.config).unwrap();
    (Store::open(&cfg.database).await.unwrap(), cfg)
}

fn form(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn apply_as_runs_the_same_rules() {
    let i = Instance::with_directory("");
    let held = i.process_fixture("unknown_kind.eml");
    assert_eq!(held["outcome"], "needs_review");
    let reference = held["reference"].as_str().unwrap().to_owned();
    let (store, cfg) = open(&i).await;

    // Another organisation's account: refused, and nothing is written.
    let err = review::apply_as(
        &store,
        &cfg,
        &reference,
        RequestKind::PasswordReset,
        &form(&[
            ("account", "raj.patel@nhs.example"),
            ("requested_by", "jane.doe@nhs.example"),
        ]),
        "alice",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ReviewError::Refused(ref r) if r.code() == "other_organisation"),
        "{err}"
    );

    let done = review::apply_as(
        &store,
        &cfg,
        &reference,
        RequestKind::PasswordReset,
        &form(&[
            ("account", "Tom.Smith@nhs.example"),
            ("requested_by", "jane.doe@nhs.example"),
        ]),
        "alice",
    )
    .await
    .unwrap();
    assert_eq!(done.outcome, Outcome::Applied);
    let reply = done.reply.expect("the site is answered");
    assert_eq!(reply.to, "rosehill.care@nhs.example");
    assert!(reply.body.contains("Temporary password"));

    // Decided once: not again.
    let again = review::apply_as(
        &store,
        &cfg,
        &reference,
        RequestKind::Unlock,
        &form(&[]),
        "alice",
    )
    .await;
    assert!(matches!(again, Err(ReviewError::NotWaiting { .. })));
    store.close().await;

    let audit = i.audit();
    let reset = audit
        .iter()
        .find(|e| e["action"] == "password.reset")
        .unwrap();
    assert_eq!(reset["actor"], "staff:alice");
    assert_eq!(reset["on_behalf_of"], "rosehill.care@nhs.example");
}

#[tokio::test]
async fn reject_with_a_message_tells_the_site() {
    let i = Instance::with_directory("");
    let held = i.process_fixture("ambiguous_kind.eml");
    let reference = held["reference"].as_str().unwrap().to_owned();
    let (store, cfg) = open(&i).await;
    assert!(matches!(
        review::reject(&store, &cfg, &reference, "  ", "bob").await,
        Err(ReviewError::Invalid(_))
    ));
    let p = review::reject(
        &store,
        &cfg,
        &reference,
        "Please send one request per email.",
        "bob",
    )
    .await
    .unwrap();
    assert_eq!(p.outcome, Outcome::Rejected);
    let reply = p.reply.unwrap();
    assert_eq!(reply.to, "rosehill.care@nhs.example");
    assert!(reply.body.contains("Please send one request per email."));
    review::comment(&store, &reference, "Phoned the site.", "bob")
        .await
        .unwrap();
    store.close().await;
    let audit = i.audit();
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "request.rejected" && e["actor"] == "staff:bob")
    );
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "request.comment" && e["actor"] == "staff:bob")
    );
}

/// A staff decision that meets a message being applied at the same moment is run again, not
/// failed: on PostgreSQL both write the audit chain's head row under SERIALIZABLE, and the
/// later one gets a serialisation failure when the first commits (on SQLite it simply waits
/// its turn). Another instance (a second pool) holds such a write open while a comment is made.
#[tokio::test]
async fn a_staff_decision_meeting_a_concurrent_write_is_run_again_not_failed() {
    use postroom::store::journal::{self, NewAuditEvent};
    let i = Instance::with_directory("");
    let held = i.process_fixture("unknown_kind.eml");
    let reference = held["reference"].as_str().unwrap().to_owned();
    let (store, cfg) = open(&i).await;
    let other = Store::open(&cfg.database).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    journal::insert_audit(
        &mut tx,
        &NewAuditEvent {
            actor: "postroom",
            on_behalf_of: None,
            action: "test.concurrent",
            subject: None,
            detail: serde_json::json!({}),
            request_id: None,
            message_id: None,
        },
    )
    .await
    .unwrap();
    let comment = tokio::spawn({
        let (store, reference) = (store.clone(), reference.clone());
        async move { review::comment(&store, &reference, "checked by phone", "alice").await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    tx.commit().await.unwrap();
    comment.await.unwrap().unwrap();
    let audit = i.audit();
    let actions: Vec<&str> = audit.iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(
        actions.contains(&"test.concurrent") && actions.contains(&"request.comment"),
        "{actions:?}"
    );
    let out = i.ok(&["audit", "verify"]);
    assert!(out.contains("intact"), "{out}");
    other.close().await;
    store.close().await;
}

/// Retention blanks the email of old requests: a held request whose email is gone cannot be
/// decided again from nothing. Apply-as refuses with the reason, and nothing is written; the
/// site can still be told no.
#[tokio::test]
async fn a_request_whose_email_retention_deleted_is_refused_with_the_reason() {
    let i = Instance::with_directory("[retention]\nraw_messages = \"1ms\"\n");
    let held = i.process_fixture("unknown_kind.eml");
    assert_eq!(held["outcome"], "needs_review");
    let reference = held["reference"].as_str().unwrap().to_owned();
    std::thread::sleep(std::time::Duration::from_millis(5));
    i.ok(&["retention"]);
    let (store, cfg) = open(&i).await;

    let err = review::apply_as(
        &store,
        &cfg,
        &reference,
        RequestKind::PasswordReset,
        &form(&[
            ("account", "tom.smith@nhs.example"),
            ("requested_by", "jane.doe@nhs.example"),
        ]),
        "alice",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ReviewError::Refused(ref r) if r.code() == "message_gone"),
        "{err}"
    );
    assert!(
        !i.audit().iter().any(|e| e["action"] == "password.reset"),
        "nothing was applied"
    );
    let rejected = review::reject(&store, &cfg, &reference, "Please send it again.", "alice")
        .await
        .unwrap();
    assert_eq!(rejected.outcome, Outcome::Rejected);
    assert_eq!(
        rejected.reply.map(|r| r.to).as_deref(),
        Some("rosehill.care@nhs.example")
    );
}
