//! Continuity (issue 16) through the real mail stack: a shared mailbox left with one active
//! member is listed as at risk; a reminder pass emails it (through the outbox that `postroom
//! run` sends, via the real Postfix, into the site's real inbox) once per period; once a
//! colleague is back the episode closes and the reminders stop; everything is in the audit.

use crate::common::mailstack::MailStack;
use crate::daemon_support::{Site, header};
use serde_json::Value;
use std::time::Duration;

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Sets the site's member's status by a directory import (staff's own path).
fn member_status(site: &Site, status: &str) {
    let csv = site.dir.path().join(format!("member-{status}.csv"));
    std::fs::write(
        &csv,
        format!(
            "organisation,mailbox,account,name,role,status\n{},{},{},Mel Member,member,{status}\n",
            site.organisation(),
            site.mailbox,
            site.member
        ),
    )
    .unwrap();
    let out = site.cli(&["directory", "import", csv.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn an_at_risk_mailbox_is_reminded_once_per_period_and_no_more_once_fixed() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[]);
    // The site's mailbox: an owner, a member and a locked member. Healthy: 2 active members.
    assert!(json_lines(&site.cli(&["continuity"])).is_empty());

    // The member's account is disabled: one active member left.
    member_status(&site, "disabled");
    let listed = json_lines(&site.cli(&["continuity"]));
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["mailbox"], site.mailbox.as_str());
    assert_eq!(listed[0]["active_members"], 1);
    assert_eq!(listed[0]["risks"][0]["code"], "few_members", "{listed:?}");
    assert_eq!(listed[0]["reminders_sent"], 0);

    let daemon = site.start();
    let pass = json_lines(&site.cli(&["continuity", "remind"]));
    assert_eq!(
        pass[0]["reminded"],
        serde_json::json!([site.mailbox]),
        "{pass:?}"
    );

    // Sent by the daemon's outbox through Postfix into the site's inbox.
    let got = stack
        .wait_for(&site.mailbox, "INBOX", 1, Duration::from_secs(30))
        .await;
    let reminder = &got[0];
    assert_eq!(
        header(reminder, "Subject").as_deref(),
        Some(format!("Your shared mailbox {} needs attention", site.mailbox).as_str())
    );
    // Marked as automatic (RFC 3834) like every reply: no auto-responder answers it.
    assert!(
        header(reminder, "Auto-Submitted").is_some_and(|v| v != "no"),
        "loop-safe like every reply"
    );
    let text = postroom::message::parse(reminder).text;
    assert!(
        text.contains("it has 1 active member (we advise at least 2)"),
        "{text}"
    );
    assert!(
        text.contains("Subject: Add member") && text.contains("Account:"),
        "{text}"
    );
    assert!(text.contains("this is reminder 1"), "{text}");

    // Once per period: a second pass at once sends nothing.
    let pass = json_lines(&site.cli(&["continuity", "remind"]));
    assert_eq!(pass[0]["reminded"], serde_json::json!([]), "{pass:?}");
    assert_eq!(pass[0]["waiting"], 1, "{pass:?}");
    let listed = json_lines(&site.cli(&["continuity"]));
    assert_eq!(listed[0]["reminders_sent"], 1, "{listed:?}");
    assert!(listed[0]["last_reminded"].is_string(), "{listed:?}");

    // Fixed: the member is back. The episode closes; no more reminders.
    member_status(&site, "active");
    let pass = json_lines(&site.cli(&["continuity", "remind"]));
    assert_eq!(
        pass[0]["fixed"],
        serde_json::json!([site.mailbox]),
        "{pass:?}"
    );
    assert_eq!(pass[0]["reminded"], serde_json::json!([]), "{pass:?}");
    assert!(json_lines(&site.cli(&["continuity"])).is_empty());
    let pass = json_lines(&site.cli(&["continuity", "remind"]));
    assert_eq!(pass[0]["fixed"], serde_json::json!([]), "{pass:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.folder_count(&site.mailbox, "INBOX").await, 1);

    let audit = site.audit();
    let actions: Vec<&str> = audit
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("continuity."))
        .collect();
    assert_eq!(actions, ["continuity.reminded", "continuity.fixed"]);

    // At risk again later: a new episode, counted from 1.
    member_status(&site, "locked");
    let pass = json_lines(&site.cli(&["continuity", "remind"]));
    assert_eq!(
        pass[0]["reminded"],
        serde_json::json!([site.mailbox]),
        "{pass:?}"
    );
    let got = stack
        .wait_for(&site.mailbox, "INBOX", 2, Duration::from_secs(30))
        .await;
    let text = postroom::message::parse(&got[1]).text;
    assert!(text.contains("this is reminder 1"), "{text}");
    daemon.stop();
}

/// With `[continuity] reminders = false` the list is kept but nobody is emailed.
#[tokio::test]
async fn reminders_can_be_switched_off() {
    let stack = MailStack::require();
    let site = Site::new(&stack, &[("continuity", "reminders", "false")]);
    member_status(&site, "disabled");
    let pass = json_lines(&site.cli(&["continuity", "remind"]));
    assert_eq!(pass[0]["at_risk"], 1, "{pass:?}");
    assert_eq!(pass[0]["reminded"], serde_json::json!([]), "{pass:?}");
    assert_eq!(json_lines(&site.cli(&["continuity"])).len(), 1);
    assert!(
        !site
            .audit()
            .iter()
            .any(|e| e["action"] == "continuity.reminded")
    );
}
