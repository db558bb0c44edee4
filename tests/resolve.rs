//! Names resolve to accounts (issue 12): through the real binary (`postroom process`), against
//! the fixture directory (tests/fixtures/directory.csv: Rosehill Care and Oakview GP).

use crate::support::Instance;
use serde_json::Value;

/// A message from Rosehill's mailbox, proven by the fixtures' boundary, with `headers`
/// (`Name: value` lines, CRLF-ended) added.
fn message(
    i: &Instance,
    name: &str,
    subject: &str,
    headers: &str,
    body: &str,
) -> std::path::PathBuf {
    let raw = format!(
        "Return-Path: <rosehill.care@nhs.example>\r\n\
         Authentication-Results: mail.nhs.example; dkim=pass header.d=nhs.example header.s=s1; dmarc=pass header.from=nhs.example\r\n\
         From: Rosehill Care <rosehill.care@nhs.example>\r\n\
         To: Helpdesk <helpdesk@nhs.example>\r\n\
         Subject: {subject}\r\n\
         Date: Mon, 03 Mar 2025 09:07:00 +0000\r\n\
         Message-ID: <{name}.resolve-test@nhs.example>\r\n\
         {headers}\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{}",
        body.replace('\n', "\r\n")
    );
    let path = i.dir.path().join(format!("{name}.eml"));
    std::fs::write(&path, raw).unwrap();
    path
}

fn run(i: &Instance, path: &std::path::Path) -> Vec<Value> {
    i.process(&[path], false)
}

fn one(i: &Instance, path: &std::path::Path) -> Value {
    let mut all = run(i, path);
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

#[test]
fn a_name_in_the_account_field_resolves_to_the_one_account_with_that_name() {
    let i = Instance::with_directory("");
    let path = message(
        &i,
        "name-field",
        "Password reset",
        "",
        "Please reset the password.\n\nAccount: tom SMITH\nRequested by: jane.doe@nhs.example\n",
    );
    let v = one(&i, &path);
    assert_eq!(v["outcome"], "applied", "{v}");
    let target = &v["understood"]["targets"][0];
    assert_eq!(target["as_written"], "tom smith", "{v}");
    assert_eq!(target["account"], "tom.smith@nhs.example", "{v}");
    assert_eq!(
        target["how"], "the only account of the organisation with that name",
        "{v}"
    );
    // The reply says what was understood.
    let body = v["reply"]["body"].as_str().unwrap();
    assert!(body.contains("What we understood"), "{body}");
    assert!(body.contains("tom smith → tom.smith@nhs.example"), "{body}");
}

#[test]
fn a_title_and_an_initial_resolve_when_unique() {
    let i = Instance::with_directory("");
    let path = message(
        &i,
        "initial",
        "Password reset",
        "Sender: jane.doe@nhs.example\r\n",
        "Please reset the password.\n\nAccount: Mr T. Smith\n",
    );
    let v = one(&i, &path);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(
        v["understood"]["targets"][0]["account"],
        "tom.smith@nhs.example"
    );
    assert_eq!(
        v["understood"]["requester"]["how"],
        "the Sender header (sent on behalf of the mailbox)"
    );
}

#[test]
fn two_accounts_with_one_name_go_to_a_person_with_both_named() {
    let i = Instance::with_directory("");
    let extra = i.dir.path().join("more.csv");
    std::fs::write(
        &extra,
        "organisation,mailbox,account,name,role,status\n\
         Rosehill Care,,thomas.smith@nhs.example,Tom Smith,,active\n",
    )
    .unwrap();
    i.ok(&["directory", "import", extra.to_str().unwrap()]);
    let path = message(
        &i,
        "ambiguous",
        "Password reset",
        "",
        "Please reset the password.\n\nAccount: Tom Smith\nRequested by: jane.doe@nhs.example\n",
    );
    let v = one(&i, &path);
    assert_eq!(v["outcome"], "needs_review", "{v}");
    assert_eq!(v["reason"], "ambiguous_name", "{v}");
    let why = v["explanation"].as_str().unwrap();
    assert!(why.contains("thomas.smith@nhs.example"), "{why}");
    assert!(why.contains("tom.smith@nhs.example"), "{why}");
    // Nothing changed: the password of neither was reset.
    assert!(
        !i.audit().iter().any(|e| e["action"] == "password.reset"),
        "{:?}",
        i.audit()
    );
}

#[test]
fn a_name_that_matches_nothing_goes_to_a_person_quoting_the_name() {
    let i = Instance::with_directory("");
    let path = message(
        &i,
        "unknown",
        "Unlock account",
        "",
        "Please unlock this account.\n\nAccount: Nobody Here\nRequested by: jane.doe@nhs.example\n",
    );
    let v = one(&i, &path);
    assert_eq!(v["outcome"], "needs_review", "{v}");
    assert_eq!(v["reason"], "unknown_name", "{v}");
    assert!(
        v["explanation"].as_str().unwrap().contains("nobody here"),
        "{v}"
    );
}

#[test]
fn the_same_name_in_another_organisation_never_matches() {
    // Raj Patel is an account of Oakview GP, not of Rosehill Care.
    let i = Instance::with_directory("");
    let path = message(
        &i,
        "other-org",
        "Password reset",
        "",
        "Please reset the password.\n\nAccount: Raj Patel\nRequested by: jane.doe@nhs.example\n",
    );
    let v = one(&i, &path);
    assert_eq!(v["outcome"], "needs_review", "{v}");
    assert_eq!(v["reason"], "unknown_name", "{v}");
    assert!(v["understood"]["targets"][0]["account"].is_null(), "{v}");
}

#[test]
fn the_requester_by_name_resolves_among_the_mailbox_members() {
    let i = Instance::with_directory("");
    let path = message(
        &i,
        "requester-name",
        "Unlock account",
        "",
        "Please unlock kim.lee@nhs.example.\n\nRequested by: Jane Doe\n",
    );
    let v = one(&i, &path);
    assert_eq!(v["outcome"], "applied", "{v}");
    let requester = &v["understood"]["requester"];
    assert_eq!(requester["account"], "jane.doe@nhs.example", "{v}");
    assert!(
        requester["how"]
            .as_str()
            .unwrap()
            .starts_with("named on the Requested by line"),
        "{v}"
    );
}

#[test]
fn a_signature_names_the_requester_only_when_the_policy_allows() {
    let body = "Please unlock kim.lee@nhs.example, she is locked out.\n\nKind regards\nJane Doe\n";
    // Off by default: no Sender, no Requested by line → the requester is missing.
    let i = Instance::with_directory("");
    let path = message(&i, "signed-off", "Unlock account", "", body);
    let v = one(&i, &path);
    assert_eq!(v["outcome"], "rejected", "{v}");
    assert_eq!(v["reason"], "requester_missing", "{v}");
    // Switched on: the signature's one name is the requester.
    let i = Instance::with_directory("\n[policy]\nrequester_from_signature = true\n");
    let path = message(&i, "signed-on", "Unlock account", "", body);
    let v = one(&i, &path);
    assert_eq!(v["outcome"], "applied", "{v}");
    assert_eq!(
        v["understood"]["requester"]["account"], "jane.doe@nhs.example",
        "{v}"
    );
    assert!(
        v["understood"]["requester"]["how"]
            .as_str()
            .unwrap()
            .starts_with("signed the email"),
        "{v}"
    );
}

#[test]
fn a_reply_in_an_unknown_thread_is_not_read_as_a_new_request() {
    let i = Instance::with_directory("");
    let path = message(
        &i,
        "unknown-thread",
        "Re: [HD-099999] Done: Password reset",
        "",
        "Thanks! Please reset the password for tom.smith@nhs.example as well.\n\nRequested by: jane.doe@nhs.example\n",
    );
    let v = one(&i, &path);
    assert_eq!(v["outcome"], "needs_review", "{v}");
    assert_eq!(v["reason"], "unknown_thread", "{v}");
}

#[test]
fn a_bad_policy_switch_names_the_key() {
    let i = Instance::new("\n[policy]\nrequester_from_signature = \"maybe\"\n");
    let out = i.cmd().args(["migrate"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("policy.requester_from_signature"), "{err}");
}

#[test]
fn more_asks_than_the_cap_go_to_a_person_whole() {
    let i = Instance::with_directory("");
    let many: Vec<String> = (1..=25).map(|n| format!("user{n}@nhs.example")).collect();
    let path = message(
        &i,
        "too-many",
        "Password resets",
        "",
        &format!(
            "Please reset the passwords for these accounts:\n{}\n\nRequested by: jane.doe@nhs.example\n",
            many.join("\n")
        ),
    );
    let v = one(&i, &path);
    assert_eq!(v["outcome"], "needs_review", "{v}");
    assert_eq!(v["reason"], "too_many_asks", "{v}");
}
