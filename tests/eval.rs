//! `postroom eval DIR` through the real binary: the labelled corpus of tests/understanding
//! holds the line, each class is counted as defined, and a bad manifest is named.

use assert_cmd::Command;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Issue 12's target is 0. The understanding on this branch (today's grammar, names not yet
/// resolved to accounts) still refuses starters it could not name (`name_missing`) and acts
/// on a starter whose name already has an account; the lead sets this to 0 once the grammar
/// (h12grammar) and resolution (h12resolve) are merged, and from then on one wrong decision
/// fails the build.
const WRONG_AT_MOST: u64 = 17;
/// What today's code understands of the corpus (77 of 171): raised as the understanding grows,
/// never lowered.
const UNDERSTOOD_AT_LEAST: u64 = 77;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/understanding")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn eval(dir: &Path, config: &Path, json: bool) -> std::process::Output {
    let mut cmd = Command::cargo_bin("postroom").unwrap();
    cmd.arg("--config").arg(config).arg("eval").arg(dir);
    if json {
        cmd.arg("--json");
    }
    cmd.env_remove("POSTROOM_CONFIG")
        .env_remove("POSTROOM_DATABASE_URL")
        .output()
        .unwrap()
}

fn report(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}); stdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn the_corpus_is_understood_without_a_wrong_decision() {
    // The corpus brings its own postroom.toml: the --config given is never read.
    let out = eval(&corpus(), Path::new("/nonexistent/postroom.toml"), true);
    let r = report(&out);
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("no `{k}` in {r}"));
    assert!(n("messages") >= 160, "{r}");
    assert_eq!(
        n("understood") + n("sent_to_review") + n("wrong"),
        n("messages")
    );
    let wrong: Vec<&Value> = r["misses"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["class"] == "wrong")
        .collect();
    assert!(
        n("wrong") <= WRONG_AT_MOST,
        "precision regressed: {} wrong (at most {WRONG_AT_MOST}): {wrong:#?}",
        n("wrong")
    );
    assert!(
        n("understood") >= UNDERSTOOD_AT_LEAST,
        "understood {} of {} (at least {UNDERSTOOD_AT_LEAST})",
        n("understood"),
        n("messages")
    );
    // CI holds the line through the exit status.
    assert_eq!(out.status.success(), n("wrong") == 0, "{r}");
}

/// Three messages of the request fixtures, labelled so that one is understood, one is sent
/// to review and one is wrong; judged under the --config given (the directory has none).
#[test]
fn each_class_is_counted_and_a_wrong_decision_fails_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(fixture("directory.csv"), d.join("directory.csv")).unwrap();
    std::fs::copy(
        fixture("requests/password_reset_fields.eml"),
        d.join("reset.eml"),
    )
    .unwrap();
    std::fs::copy(fixture("requests/unknown_kind.eml"), d.join("help.eml")).unwrap();
    // The same clear request, labelled as mail that asks for nothing: acting on it is wrong.
    let mut raw = std::fs::read(fixture("requests/password_reset_fields.eml")).unwrap();
    let text = String::from_utf8(raw.clone()).unwrap();
    raw = text
        .replacen("Message-ID: <", "Message-ID: <relabelled.", 1)
        .into_bytes();
    std::fs::write(d.join("mislabelled.eml"), raw).unwrap();
    std::fs::write(
        d.join("manifest.toml"),
        r#"
[[message]]
file = "reset.eml"
expect = "act"
asks = [{ kind = "password_reset", target = "tom.smith@nhs.example" }]

[[message]]
file = "help.eml"
expect = "act"
asks = [{ kind = "password_reset", target = "tom.smith@nhs.example" }]
note = "labelled as a request postroom cannot read: a safe miss"

[[message]]
file = "mislabelled.eml"
expect = ["review", "ignore"]
"#,
    )
    .unwrap();
    let config = d.join("given.toml");
    std::fs::write(
        &config,
        "[database]\nurl = \"sqlite:///nonexistent/never-opened.db\"\n\n[helpdesk]\naddress = \"helpdesk@nhs.example\"\n\n[trust]\nauthserv_id = \"mail.nhs.example\"\n",
    )
    .unwrap();

    let out = eval(d, &config, true);
    assert!(!out.status.success(), "a wrong decision fails the run");
    let r = report(&out);
    assert_eq!(
        (
            &r["messages"],
            &r["understood"],
            &r["sent_to_review"],
            &r["wrong"]
        ),
        (&3.into(), &1.into(), &1.into(), &1.into()),
        "{r:#}"
    );
    assert_eq!(r["understood_pct"], 33.3);
    let misses = r["misses"].as_array().unwrap();
    let class_of = |file: &str| {
        misses
            .iter()
            .find(|m| m["file"] == file)
            .map(|m| m["class"].as_str().unwrap().to_owned())
    };
    assert_eq!(class_of("reset.eml"), None);
    assert_eq!(class_of("help.eml").as_deref(), Some("sent_to_review"));
    assert_eq!(class_of("mislabelled.eml").as_deref(), Some("wrong"));

    // For a person: the figures, then each miss with what was expected and what was decided.
    let out = eval(d, &config, false);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("understood         1   33.3%"), "{text}");
    assert!(text.contains("sent to review     1   33.3%"), "{text}");
    assert!(text.contains("wrong              1   33.3%"), "{text}");
    let wrong_at = text.find("mislabelled.eml").unwrap();
    assert!(
        text[wrong_at..].contains("expected review/ignore"),
        "{text}"
    );
    assert!(
        text[wrong_at..].contains("got      applied password_reset tom.smith@nhs.example"),
        "{text}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 of 3 messages decided wrongly"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Relabelled right, nothing is wrong: exit status 0.
    std::fs::write(
        d.join("manifest.toml"),
        r#"
[[message]]
file = "reset.eml"
expect = "act"
asks = [{ kind = "password_reset", target = "tom.smith@nhs.example" }]

[[message]]
file = "help.eml"
expect = ["review", "ignore"]
"#,
    )
    .unwrap();
    let out = eval(d, &config, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report(&out)["understood"], 2);
}

#[test]
fn a_malformed_manifest_is_refused_naming_the_file_and_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(fixture("directory.csv"), d.join("directory.csv")).unwrap();
    std::fs::copy(fixture("requests/unlock.eml"), d.join("a.eml")).unwrap();
    std::fs::copy(fixture("requests/leaver.eml"), d.join("b.eml")).unwrap();
    let config = d.join("given.toml");
    std::fs::write(&config, "[helpdesk]\naddress = \"helpdesk@nhs.example\"\n").unwrap();
    let manifest = d.join("manifest.toml");
    let good = "[[message]]\nfile = \"a.eml\"\nexpect = \"act\"\nasks = [{ kind = \"unlock\", target = \"kim.lee@nhs.example\" }]\n\n";
    let cases = [
        (
            "[[message]]\nfile = \"b.eml\"\nexpect = \"act\"\n",
            "message 2 (b.eml): `expect = \"act\"` needs the `asks` it expects",
        ),
        (
            "[[message]]\nfile = \"b.eml\"\nexpect = \"act\"\nasks = [{ kind = \"leaving\", target = \"amy.jones@nhs.example\" }]\n",
            "message 2 (b.eml): asks[0]: unknown request kind `leaving`",
        ),
        (
            "[[message]]\nfile = \"b.eml\"\nexpect = \"act\"\nasks = [{ kind = \"leaver\", target = \"Amy Jones\" }]\n",
            "message 2 (b.eml): asks[0]: the target of leaver must be an account address",
        ),
        (
            "[[message]]\nfile = \"c.eml\"\nexpect = \"review\"\n",
            "message 2 (c.eml): no such file",
        ),
        (
            "[[message]]\nfile = \"b.eml\"\nexpect = \"refuse\"\n",
            "message 2 (b.eml): `expect = \"refuse\"` needs the `reason` code",
        ),
        (
            "[[message]]\nfile = \"b.eml\"\nexpect = [\"act\", \"review\"]\n",
            "message 2 (b.eml): `expect` may list several classes only as",
        ),
        (
            "[[message]]\nfile = \"a.eml\"\nexpect = \"review\"\n",
            "message 2 (a.eml): this file is listed twice",
        ),
        (
            "[[message]]\nfile = \"b.eml\"\nexpected = \"act\"\n",
            "unknown field `expected`",
        ),
        ("[[message]\nfile = \"b.eml\"\n", "manifest.toml"),
    ];
    for (second, wanted) in cases {
        std::fs::write(&manifest, format!("{good}{second}")).unwrap();
        let out = eval(d, &config, false);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{second}");
        assert!(out.stdout.is_empty(), "nothing is measured: {second}");
        assert!(
            err.contains(&manifest.display().to_string()) && err.contains(wanted),
            "for\n{second}\nwanted `{wanted}` naming {}, got: {err}",
            manifest.display()
        );
    }
}
