//! Forgery and abuse, through the real command line (issue 4): each test forges one thing and
//! shows that nothing changed and nothing was sent that should not be.

use crate::support::Instance;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

const PASS: &str = "Authentication-Results: mail.nhs.example; dkim=pass header.d=nhs.example; dmarc=pass header.from=nhs.example";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A request email; `headers` go first (so a test can put a header above or below others).
fn mail(headers: &[&str], from: &str, subject: &str, body: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let mut s = String::new();
    for h in headers {
        s.push_str(h);
        s.push_str("\r\n");
    }
    s.push_str(&format!(
        "From: {from}\r\nTo: helpdesk@nhs.example\r\nSubject: {subject}\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <trust-{n}-{}@test.example>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        std::process::id()
    ));
    s
}

fn run(i: &Instance, raw: &str) -> Value {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let path = i.dir.path().join(format!("m{n}.eml"));
    std::fs::write(&path, raw).unwrap();
    i.process(&[path.as_path()], false).remove(0)
}

const RESET_TOM: &str = "Account: tom.smith@nhs.example\r\nRequested by: jane.doe@nhs.example";

fn assert_refused_silently(i: &Instance, v: &Value, before: &str, reason: &str) {
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert_eq!(v["reason"], reason, "{v}");
    assert!(v["reply"].is_null(), "a forged message was answered: {v}");
    assert_eq!(i.export(), before, "the directory changed");
    assert_eq!(outbox(i).len(), 0, "something was queued to be sent");
}

/// (to, subject, body) of every queued reply.
fn outbox(i: &Instance) -> Vec<(String, String, String)> {
    // Through the Store and the instance's own config: SQLite or PostgreSQL alike.
    let database = i.database();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = postroom::store::Store::open(&database).await.unwrap();
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT to_address, subject, body FROM outbox ORDER BY id")
                .fetch_all(store.pool())
                .await
                .unwrap();
        store.close().await;
        rows
    })
}

#[test]
fn a_real_mailbox_with_no_evidence_changes_nothing() {
    let i = Instance::with_directory("");
    let before = i.export();
    let v = run(
        &i,
        &mail(
            &[],
            "rosehill.care@nhs.example",
            "Password reset",
            RESET_TOM,
        ),
    );
    assert_refused_silently(&i, &v, &before, "unauthenticated");
    let audit = i.audit();
    let ev = audit
        .iter()
        .find(|e| e["action"] == "request.rejected")
        .expect("audited");
    assert_eq!(ev["detail"]["trust"]["proven"], false);
    assert!(
        ev["detail"]["trust"]["summary"]
            .as_str()
            .unwrap()
            .contains("mail.nhs.example"),
        "{ev}"
    );
}

#[test]
fn the_default_trusts_nothing() {
    let i = Instance::import_fixture_directory(Instance::configured("", ""));
    let before = i.export();
    let v = run(
        &i,
        &mail(
            &[PASS],
            "rosehill.care@nhs.example",
            "Password reset",
            RESET_TOM,
        ),
    );
    assert_refused_silently(&i, &v, &before, "unauthenticated");
}

#[test]
fn a_signature_of_another_domain_proves_nothing() {
    let i = Instance::with_directory("");
    let before = i.export();
    let forged = "Authentication-Results: mail.nhs.example; dkim=pass header.d=evil.example; spf=pass smtp.mailfrom=x@evil.example; dmarc=fail header.from=nhs.example";
    let v = run(
        &i,
        &mail(
            &[forged],
            "rosehill.care@nhs.example",
            "Password reset",
            RESET_TOM,
        ),
    );
    assert_refused_silently(&i, &v, &before, "unauthenticated");
}

#[test]
fn authentication_results_planted_below_ours_are_ignored_and_noted() {
    let i = Instance::with_directory("");
    let before = i.export();
    let ours =
        "Authentication-Results: mail.nhs.example; dkim=none; dmarc=fail header.from=nhs.example";
    let raw = mail(
        &[
            ours,
            "Received: from evil.example by mail.nhs.example",
            PASS,
            "X-Postroom-Outcome: applied",
        ],
        "rosehill.care@nhs.example",
        "Password reset",
        RESET_TOM,
    );
    let v = run(&i, &raw);
    assert_refused_silently(&i, &v, &before, "unauthenticated");
    let audit = i.audit();
    let ev = audit
        .iter()
        .find(|e| e["action"] == "request.rejected")
        .unwrap();
    let ignored = ev["detail"]["trust"]["ignored_headers"].as_array().unwrap();
    assert_eq!(ignored.len(), 2, "{ignored:?}");
}

#[test]
fn the_reply_goes_to_the_registered_mailbox_only() {
    let i = Instance::with_directory("");
    let raw = mail(
        &[PASS, "Reply-To: attacker@evil.example"],
        "rosehill.care@nhs.example",
        "Password reset",
        RESET_TOM,
    );
    let v = run(&i, &raw);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(v["reply"]["to"], "rosehill.care@nhs.example");
    assert!(
        outbox(&i)
            .iter()
            .all(|(to, ..)| to == "rosehill.care@nhs.example")
    );
}

fn code_in(body: &str) -> String {
    body.lines()
        .find_map(|l| l.trim().strip_prefix("Code: "))
        .expect("a code line")
        .trim()
        .to_owned()
}

/// Make tom.smith an owner: held, code sent to jane's own account.
fn held_role_change(i: &Instance) -> (Value, String) {
    let v = run(
        i,
        &mail(
            &[PASS],
            "rosehill.care@nhs.example",
            "Change role",
            "Account: tom.smith@nhs.example\r\nRole: owner\r\nRequested by: jane.doe@nhs.example",
        ),
    );
    assert_eq!(v["outcome"], "awaiting_confirmation", "{v}");
    assert_eq!(v["reply"]["to"], "rosehill.care@nhs.example");
    let out = outbox(i);
    let (to, subject, body) = out
        .iter()
        .find(|(to, ..)| to == "jane.doe@nhs.example")
        .expect("code sent to the requester's own account");
    assert_eq!(to, "jane.doe@nhs.example");
    assert!(
        subject.starts_with(&format!("[{}] Confirm", v["reference"].as_str().unwrap())),
        "{subject}"
    );
    (v, code_in(body))
}

fn confirm(i: &Instance, from: &str, reference: &str, code: &str) -> Value {
    run(
        i,
        &mail(
            &[PASS],
            from,
            &format!("Re: [{reference}] Confirm: Change role"),
            &format!("Code: {code}\r\n\r\n> quoted"),
        ),
    )
}

fn role_of(i: &Instance, account: &str) -> String {
    i.export_row("rosehill.care@nhs.example", account)
        .unwrap()
        .split(',')
        .nth(4)
        .unwrap()
        .to_owned()
}

#[test]
fn an_owner_change_waits_for_the_code_then_applies_once() {
    let i = Instance::with_directory("");
    let (held, code) = held_role_change(&i);
    let reference = held["reference"].as_str().unwrap();
    assert_eq!(
        role_of(&i, "tom.smith@nhs.example"),
        "member",
        "nothing changes before the code"
    );

    let done = confirm(&i, "jane.doe@nhs.example", reference, &code);
    assert_eq!(done["outcome"], "applied", "{done}");
    assert_eq!(done["reference"], reference);
    assert_eq!(done["reply"]["to"], "rosehill.care@nhs.example");
    assert_eq!(role_of(&i, "tom.smith@nhs.example"), "owner");

    // Reused: nothing more happens.
    let again = confirm(&i, "jane.doe@nhs.example", reference, &code);
    assert_eq!(again["outcome"], "rejected");
    assert_eq!(again["reason"], "code_used");
    assert_eq!(again["reply"]["to"], "jane.doe@nhs.example");
    let changes = i
        .audit()
        .iter()
        .filter(|e| e["action"] == "membership.role_changed")
        .count();
    assert_eq!(changes, 1);
    // The code is blanked nowhere yet (not sent), but it never reaches the audit trail.
    assert!(!i.ok(&["audit"]).contains(&code));
}

#[test]
fn the_code_alone_in_the_subject_confirms() {
    let i = Instance::with_directory("");
    let (_, code) = held_role_change(&i);
    let v = run(&i, &mail(&[PASS], "jane.doe@nhs.example", &code, ""));
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(role_of(&i, "tom.smith@nhs.example"), "owner");
}

#[test]
fn a_wrong_code_changes_nothing_and_too_many_void_it() {
    let i = Instance::with_directory("[confirmation]\nmax_attempts = 2\n");
    let (held, code) = held_role_change(&i);
    let reference = held["reference"].as_str().unwrap();
    let wrong = if code == "ABCDEFGH" {
        "HGFEDCBA"
    } else {
        "ABCDEFGH"
    };
    let v = confirm(&i, "jane.doe@nhs.example", reference, wrong);
    assert_eq!(v["reason"], "bad_code", "{v}");
    let v = confirm(&i, "jane.doe@nhs.example", reference, wrong);
    assert_eq!(v["reason"], "code_void", "{v}");
    // Even the right code is refused now.
    let v = confirm(&i, "jane.doe@nhs.example", reference, &code);
    assert_eq!(v["outcome"], "rejected");
    assert_eq!(v["reason"], "code_void", "{v}");
    assert_eq!(role_of(&i, "tom.smith@nhs.example"), "member");
}

#[test]
fn an_expired_code_changes_nothing() {
    let i = Instance::with_directory("[confirmation]\nttl = \"1ms\"\n");
    let (held, code) = held_role_change(&i);
    std::thread::sleep(std::time::Duration::from_millis(20));
    let v = confirm(
        &i,
        "jane.doe@nhs.example",
        held["reference"].as_str().unwrap(),
        &code,
    );
    assert_eq!(v["reason"], "code_expired", "{v}");
    assert_eq!(role_of(&i, "tom.smith@nhs.example"), "member");
}

#[test]
fn only_the_requester_can_confirm() {
    let i = Instance::with_directory("");
    let (held, code) = held_role_change(&i);
    // tom has somehow seen the code (he reads the shared mailbox? no: it went to jane) and
    // tries it from his own, authenticated, account.
    let v = confirm(
        &i,
        "tom.smith@nhs.example",
        held["reference"].as_str().unwrap(),
        &code,
    );
    assert_eq!(v["outcome"], "rejected");
    assert_eq!(v["reason"], "wrong_confirmer");
    assert!(v["reply"].is_null());
    assert_eq!(role_of(&i, "tom.smith@nhs.example"), "member");
    // And jane's code still works afterwards.
    let v = confirm(
        &i,
        "jane.doe@nhs.example",
        held["reference"].as_str().unwrap(),
        &code,
    );
    assert_eq!(v["outcome"], "applied", "{v}");
}

#[test]
fn confirmation_can_be_switched_off_per_kind() {
    let i = Instance::with_directory("[confirmation]\nkinds = [\"leaver\"]\n");
    let v = run(
        &i,
        &mail(
            &[PASS],
            "rosehill.care@nhs.example",
            "Change role",
            "Account: tom.smith@nhs.example\r\nRole: owner\r\nRequested by: jane.doe@nhs.example",
        ),
    );
    assert_eq!(v["outcome"], "applied", "{v}");
}

#[test]
fn an_owner_who_leaves_hands_over_to_the_replacement() {
    let i = Instance::with_directory("");
    let body = "Account: jane.doe@nhs.example\r\nRequested by: jane.doe@nhs.example";
    let v = run(
        &i,
        &mail(&[PASS], "rosehill.care@nhs.example", "Leaver", body),
    );
    assert_eq!(v["reason"], "replacement_missing", "{v}");

    let body = "Account: jane.doe@nhs.example\r\nReplacement: tom.smith@nhs.example\r\nRequested by: jane.doe@nhs.example";
    let v = run(
        &i,
        &mail(&[PASS], "rosehill.care@nhs.example", "Leaver", body),
    );
    assert_eq!(v["outcome"], "awaiting_confirmation", "{v}");
    let code = outbox(&i)
        .iter()
        .rev()
        .find(|(to, ..)| to == "jane.doe@nhs.example")
        .map(|(.., body)| code_in(body))
        .unwrap();
    let done = run(
        &i,
        &mail(
            &[PASS],
            "jane.doe@nhs.example",
            &format!("Re: [{}] Confirm: Leaver", v["reference"].as_str().unwrap()),
            &format!("Code: {code}"),
        ),
    );
    assert_eq!(done["outcome"], "applied", "{done}");
    assert_eq!(role_of(&i, "tom.smith@nhs.example"), "owner");
    let jane = i
        .export_row("", "jane.doe@nhs.example")
        .expect("no membership left");
    assert!(jane.ends_with(",disabled"), "{jane}");
}

#[test]
fn answers_per_mailbox_are_capped_and_the_last_says_so() {
    let i = Instance::with_directory("[limits]\nmax_replies_per_mailbox_per_day = 2\n");
    // Requests whose answers carry no secret (tom is not locked: each is refused, and said so).
    // Four: the count stops at the cap, so the fourth (two past it) must be held back too.
    let bodies: Vec<Value> = (0..4)
        .map(|_| {
            run(
                &i,
                &mail(
                    &[PASS],
                    "rosehill.care@nhs.example",
                    "Unlock account",
                    RESET_TOM,
                ),
            )
        })
        .collect();
    assert!(
        bodies
            .iter()
            .all(|v| v["outcome"] == "rejected" && v["reason"] == "already_active"),
        "still processed: {bodies:?}"
    );
    assert!(
        !bodies[0]["reply"]["body"]
            .as_str()
            .unwrap()
            .contains("last automatic answer")
    );
    assert!(
        bodies[1]["reply"]["body"]
            .as_str()
            .unwrap()
            .contains("last automatic answer")
    );
    assert!(bodies[2]["reply"].is_null());
    assert!(bodies[3]["reply"].is_null());
    assert!(i.audit().iter().any(|e| e["action"] == "reply.suppressed"));
    // Each message is filed under its outcome and request, also the one whose answer the cap
    // kept back (the statement that queues a reply files its message, whether it queues or not).
    let database = i.database();
    let (filed, queued) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = postroom::store::Store::open(&database).await.unwrap();
        let filed: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
            "SELECT m.outcome, r.reference FROM messages m \
             LEFT JOIN requests r ON r.id = m.request_id ORDER BY m.id",
        )
        .fetch_all(store.pool())
        .await
        .unwrap();
        let queued: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM outbox")
            .fetch_one(store.pool())
            .await
            .unwrap();
        store.close().await;
        (filed, queued)
    });
    let expected: Vec<(Option<String>, Option<String>)> = bodies
        .iter()
        .map(|v| {
            (
                Some("rejected".to_owned()),
                v["reference"].as_str().map(str::to_owned),
            )
        })
        .collect();
    assert_eq!(filed, expected);
    assert_eq!(queued, 2);
}

#[test]
fn our_own_mail_coming_back_is_not_answered() {
    let i = Instance::with_directory("");
    let v = run(
        &i,
        &mail(
            &[PASS, "X-Postroom-Loop: helpdesk@nhs.example"],
            "rosehill.care@nhs.example",
            "Password reset",
            RESET_TOM,
        ),
    );
    assert_eq!(v["outcome"], "ignored");
    assert_eq!(v["reason"], "loop");
    // An autoresponder that answers one of our replies without saying it is automatic.
    let v = run(
        &i,
        &mail(
            &[PASS, "In-Reply-To: <HD-000001.Xk3mQ9pL2@nhs.example>"],
            "rosehill.care@nhs.example",
            "I am away",
            "Back on Monday.",
        ),
    );
    assert_eq!(v["outcome"], "ignored", "{v}");
    assert_eq!(v["reason"], "loop");
    assert_eq!(outbox(&i).len(), 0);
}

#[test]
fn organisation_limits_are_enforced_with_a_reason() {
    let i = Instance::with_directory(
        "[limits]\nmax_accounts_per_organisation = 3\nmax_members_per_mailbox = 4\n",
    );
    let v = run(
        &i,
        &mail(
            &[PASS],
            "rosehill.care@nhs.example",
            "New starter",
            "Name: Ann Other\r\nRequested by: jane.doe@nhs.example",
        ),
    );
    assert_eq!(v["reason"], "account_limit", "{v}");
    let v = run(
        &i,
        &mail(
            &[PASS],
            "rosehill.care@nhs.example",
            "Add member",
            "Account: sam.green@nhs.example\r\nRequested by: jane.doe@nhs.example",
        ),
    );
    assert_eq!(v["reason"], "member_limit", "{v}");
}

#[test]
fn structurally_hostile_mail_is_held_with_the_limit_named() {
    let i = Instance::with_directory("[limits]\nmax_headers = 5\n");
    let v = run(
        &i,
        &mail(
            &[PASS],
            "rosehill.care@nhs.example",
            "Password reset",
            RESET_TOM,
        ),
    );
    assert_eq!(v["outcome"], "needs_review", "{v}");
    assert_eq!(v["reason"], "too_complex");
    assert!(
        v["explanation"].as_str().unwrap().contains("headers"),
        "{v}"
    );
}

#[test]
fn trust_none_is_for_trials() {
    let i =
        Instance::import_fixture_directory(Instance::configured("[trust]\nmode = \"none\"\n", ""));
    let v = run(
        &i,
        &mail(
            &[],
            "rosehill.care@nhs.example",
            "Password reset",
            RESET_TOM,
        ),
    );
    assert_eq!(v["outcome"], "applied", "{v}");
}

/// Issue 13, item 7: the probe's message — `From: attacker@evil.example`, then
/// `From: rosehill.care@…`, and a `dmarc=pass` without `header.from` — was applied (the last
/// From: was used). RFC 5322 allows one From:; RFC 7489 §6.6.1 says reject.
#[test]
fn two_from_headers_are_refused_whichever_comes_first() {
    let i = Instance::with_directory("");
    let before = i.export();
    for (first, second) in [
        (
            "attacker@evil.example",
            "Rosehill Care <rosehill.care@nhs.example>",
        ),
        (
            "Rosehill Care <rosehill.care@nhs.example>",
            "attacker@evil.example",
        ),
    ] {
        let raw = mail(
            &[
                "Authentication-Results: mail.nhs.example; dmarc=pass",
                &format!("From: {first}"),
            ],
            second,
            "Password reset",
            RESET_TOM,
        );
        let v = run(&i, &raw);
        assert_refused_silently(&i, &v, &before, "unauthenticated");
        assert!(
            v["explanation"].as_str().unwrap().contains("from: headers"),
            "{v}"
        );
    }
    // With a DMARC pass that names our domain, two From: headers are still refused.
    let raw = mail(
        &[PASS, "From: attacker@evil.example"],
        "rosehill.care@nhs.example",
        "Password reset",
        RESET_TOM,
    );
    let v = run(&i, &raw);
    assert_refused_silently(&i, &v, &before, "unauthenticated");
}

/// A `dmarc=pass` that does not say which From: domain it evaluated proves nothing.
#[test]
fn a_dmarc_pass_without_header_from_proves_nothing() {
    let i = Instance::with_directory("");
    let before = i.export();
    let raw = mail(
        &["Authentication-Results: mail.nhs.example; dmarc=pass"],
        "rosehill.care@nhs.example",
        "Password reset",
        RESET_TOM,
    );
    let v = run(&i, &raw);
    assert_refused_silently(&i, &v, &before, "unauthenticated");
    let raw = mail(
        &["Authentication-Results: mail.nhs.example; dmarc=pass header.from=evil.example"],
        "rosehill.care@nhs.example",
        "Password reset",
        RESET_TOM,
    );
    let v = run(&i, &raw);
    assert_refused_silently(&i, &v, &before, "unauthenticated");
}

/// One From: naming two mailboxes, or two Sender: headers: whose mail is it? Refused.
#[test]
fn a_from_naming_two_mailboxes_or_two_sender_headers_are_refused() {
    let i = Instance::with_directory("");
    let before = i.export();
    let raw = mail(
        &[PASS],
        "rosehill.care@nhs.example, attacker@evil.example",
        "Password reset",
        RESET_TOM,
    );
    let v = run(&i, &raw);
    assert_refused_silently(&i, &v, &before, "unauthenticated");
    let raw = mail(
        &[
            PASS,
            "Sender: jane.doe@nhs.example",
            "Sender: tom.smith@nhs.example",
        ],
        "rosehill.care@nhs.example",
        "Password reset",
        "Account: tom.smith@nhs.example",
    );
    let v = run(&i, &raw);
    assert_refused_silently(&i, &v, &before, "unauthenticated");
}

/// Issue 13, item 3: with the daily cap reached, a password reset was applied and its reply —
/// the only copy of the temporary password — suppressed. A reply that carries a secret (a
/// temporary password, a confirmation code) is never suppressed by the cap.
#[test]
fn the_reply_cap_never_throws_away_a_temporary_password() {
    let i = Instance::with_directory("[limits]\nmax_replies_per_mailbox_per_day = 1\n");
    let first = run(
        &i,
        &mail(
            &[PASS],
            "rosehill.care@nhs.example",
            "Unlock account",
            RESET_TOM,
        ),
    );
    assert!(!first["reply"].is_null(), "{first}");
    // The cap is now reached: an answer without a secret is suppressed…
    let capped = run(
        &i,
        &mail(
            &[PASS],
            "rosehill.care@nhs.example",
            "Unlock account",
            RESET_TOM,
        ),
    );
    assert!(capped["reply"].is_null(), "{capped}");
    // …but a password reset's answer, the only copy of its password, is still sent.
    let reset = run(
        &i,
        &mail(
            &[PASS],
            "rosehill.care@nhs.example",
            "Password reset",
            RESET_TOM,
        ),
    );
    assert_eq!(reset["outcome"], "applied", "{reset}");
    let body = reset["reply"]["body"].as_str().unwrap_or_default();
    assert!(body.contains("Temporary password:"), "{reset}");
    let queued = outbox(&i);
    assert!(
        queued
            .iter()
            .any(|(_, _, b)| b.contains("Temporary password:")),
        "{queued:?}"
    );
}

/// A change asked for by name ("make Tom Smith an owner") waits for the code like any other,
/// and once confirmed changes the account the name was resolved to when it came in.
#[test]
fn an_owner_change_asked_by_name_applies_to_that_account_once_confirmed() {
    let i = Instance::with_directory("");
    let held = run(
        &i,
        &mail(
            &[PASS],
            "rosehill.care@nhs.example",
            "Mailbox owner",
            "Hi, please make Tom Smith an owner of our mailbox.\r\nRequested by: jane.doe@nhs.example",
        ),
    );
    assert_eq!(held["outcome"], "awaiting_confirmation", "{held}");
    let reference = held["reference"].as_str().unwrap();
    let out = outbox(&i);
    let (_, _, body) = out
        .iter()
        .find(|(to, ..)| to == "jane.doe@nhs.example")
        .expect("code sent to the requester's own account");
    let code = code_in(body);
    let done = confirm(&i, "jane.doe@nhs.example", reference, &code);
    assert_eq!(done["outcome"], "applied", "{done}");
    assert_eq!(role_of(&i, "tom.smith@nhs.example"), "owner");
}
