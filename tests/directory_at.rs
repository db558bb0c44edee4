//! "Who could read this mailbox on 3 March?" (issue 16): `postroom directory at WHEN
//! [--mailbox M]`, membership rebuilt from the audit trail across a sequence of changes made
//! through the real binary, asked at instants between them and for the whole day.

use crate::support::Instance;
use serde_json::{Value, json};

const MAILBOX: &str = "rosehill.care@nhs.example";

fn now() -> String {
    let t = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    std::thread::sleep(std::time::Duration::from_millis(15));
    t
}

/// `directory at WHEN --mailbox rosehill`: (account, role, from?, until?) per line, and stderr.
fn at(i: &Instance, when: &str, mailbox: &str) -> (Vec<Value>, String) {
    let out = i
        .cmd()
        .args(["directory", "at", when, "--mailbox", mailbox])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (lines, String::from_utf8_lossy(&out.stderr).into_owned())
}

fn members(lines: &[Value]) -> Vec<(String, Value)> {
    lines
        .iter()
        .map(|l| (l["account"].as_str().unwrap().to_owned(), l["role"].clone()))
        .collect()
}

fn one<'a>(lines: &'a [Value], account: &str) -> &'a Value {
    let found: Vec<&Value> = lines.iter().filter(|l| l["account"] == account).collect();
    assert_eq!(found.len(), 1, "{account} in {lines:?}");
    found[0]
}

#[test]
fn membership_as_of_any_time_is_rebuilt_from_the_trail() {
    let i = Instance::with_directory("[confirmation]\nenabled = false\n");
    let t1 = now();
    let added = i.process_fixture("add_member.eml");
    assert_eq!(added["outcome"], "applied", "{added}");
    let t2 = now();
    let promoted = i.process_fixture("change_role_to_owner.eml");
    assert_eq!(promoted["outcome"], "applied", "{promoted}");
    let t3 = now();
    let removed = i.process_fixture("remove_member.eml");
    assert_eq!(removed["outcome"], "applied", "{removed}");
    let t4 = now();

    // Before any change: the imported directory, with no start (older than the trail).
    let (lines, stderr) = at(&i, &t1, MAILBOX);
    assert_eq!(
        members(&lines),
        vec![
            ("amy.jones@nhs.example".into(), json!("member")),
            ("jane.doe@nhs.example".into(), json!("owner")),
            ("kim.lee@nhs.example".into(), json!("member")),
            ("tom.smith@nhs.example".into(), json!("member")),
        ]
    );
    assert!(lines.iter().all(|l| l["from"].is_null()), "{lines:?}");
    assert!(stderr.contains("audit chain intact"), "{stderr}");

    // After the addition: Sam, from the request that added him.
    let (lines, _) = at(&i, &t2, MAILBOX);
    let sam = one(&lines, "sam.green@nhs.example");
    assert_eq!(sam["role"], "member");
    assert_eq!(sam["added_by"], added["reference"]);
    assert!(sam["from"].as_str().unwrap() > t1.as_str());
    assert!(sam["until"].is_null());
    assert_eq!(one(&lines, "tom.smith@nhs.example")["role"], "member");

    // After the promotion: Tom is an owner since that request; Amy still a member.
    let (lines, _) = at(&i, &t3, MAILBOX);
    let tom = one(&lines, "tom.smith@nhs.example");
    assert_eq!(tom["role"], "owner");
    assert_eq!(tom["added_by"], promoted["reference"]);
    assert!(
        lines
            .iter()
            .any(|l| l["account"] == "amy.jones@nhs.example")
    );

    // After the removal: Amy is gone.
    let (lines, _) = at(&i, &t4, MAILBOX);
    assert!(
        !lines
            .iter()
            .any(|l| l["account"] == "amy.jones@nhs.example"),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 4, "{lines:?}");

    // The whole day: everyone who had access at any moment of it, each stretch once.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let (lines, _) = at(&i, &today, MAILBOX);
    let amy = one(&lines, "amy.jones@nhs.example");
    assert!(amy["from"].is_null());
    assert_eq!(amy["removed_by"], removed["reference"]);
    assert!(amy["until"].as_str().unwrap() > t3.as_str());
    let toms: Vec<&Value> = lines
        .iter()
        .filter(|l| l["account"] == "tom.smith@nhs.example")
        .collect();
    assert_eq!(toms.len(), 2, "member, then owner: {toms:?}");
    assert_eq!(toms[0]["role"], "member");
    assert_eq!(toms[0]["removed_by"], promoted["reference"]);
    assert_eq!(toms[1]["role"], "owner");
    assert_eq!(lines.len(), 6, "{lines:?}");

    // Another mailbox is untouched by all this; a day before the trail began shows today's
    // imported members (nothing older is known), and a bad time is refused with the forms.
    let (lines, _) = at(&i, &t4, "oakview.gp@nhs.example");
    assert_eq!(lines.len(), 2);
    let out = i
        .cmd()
        .args(["directory", "at", "3 March"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("RFC 3339"));
}

#[test]
fn an_import_after_the_time_asked_is_said() {
    let i = Instance::with_directory("");
    let t = now();
    i.ok(&[
        "directory",
        "import",
        crate::support::fixtures()
            .join("directory.csv")
            .to_str()
            .unwrap(),
    ]);
    let (_, stderr) = at(&i, &t, MAILBOX);
    assert!(
        stderr.contains("1 directory import(s) since then"),
        "{stderr}"
    );
}
