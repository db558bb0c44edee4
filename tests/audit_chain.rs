//! The tamper-evident audit trail (issue 16), through the real binary: every event chained by
//! SHA-256, `postroom audit verify` naming the first broken link whichever way the database was
//! tampered with (an edited, deleted or reordered event, a truncated or rewritten tail), signed
//! checkpoints kept outside, the triggers that refuse plain UPDATE/DELETE/TRUNCATE, events from
//! before the chain, and concurrent writers making one chain.
//!
//! The tampering is done as an attacker with database access would: raw SQL, dropping the
//! protection triggers first. On SQLite by default; on PostgreSQL with
//! `POSTROOM_TEST_BACKEND=postgres` (`scripts/test --test audit_chain` runs both).

use crate::support::Instance;
use postroom::audit::chain;
use postroom::store::journal::{self, NewAuditEvent};
use postroom::store::{Backend, Store};
use serde_json::{Value, json};
use std::path::PathBuf;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Run raw statements on the instance's database, as an attacker with access would.
fn sql(i: &Instance, statements: &[&str]) -> Result<(), String> {
    runtime().block_on(async {
        let store = Store::open(&i.database()).await.unwrap();
        let mut result = Ok(());
        for s in statements {
            if let Err(e) = sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
                .execute(store.pool())
                .await
            {
                result = Err(format!("{s}: {e}"));
                break;
            }
        }
        store.close().await;
        result
    })
}

fn scalar(i: &Instance, query: &str) -> i64 {
    runtime().block_on(async {
        let store = Store::open(&i.database()).await.unwrap();
        let v: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(query.to_string()))
            .fetch_one(store.pool())
            .await
            .unwrap();
        store.close().await;
        v
    })
}

fn backend(i: &Instance) -> Backend {
    if i.database().url.starts_with("sqlite") {
        Backend::Sqlite
    } else {
        Backend::Postgres
    }
}

/// What an attacker drops before editing the trail by hand.
fn drop_triggers(i: &Instance) {
    let statements: &[&str] = match backend(i) {
        Backend::Sqlite => &[
            "DROP TRIGGER audit_events_no_update",
            "DROP TRIGGER audit_events_no_delete",
            "DROP TRIGGER audit_head_forward_only",
            "DROP TRIGGER audit_checkpoints_no_update",
            "DROP TRIGGER audit_checkpoints_no_delete",
        ],
        Backend::Postgres => &[
            "DROP TRIGGER audit_events_no_change ON audit_events",
            "DROP TRIGGER audit_head_forward_only ON audit_head",
            "DROP TRIGGER audit_checkpoints_no_change ON audit_checkpoints",
        ],
    };
    sql(i, statements).unwrap();
}

/// An instance with a directory and a few processed requests: several chained events.
fn busy_instance(extra: &str) -> Instance {
    let i = Instance::with_directory(extra);
    for f in ["unlock.eml", "add_member.eml", "remove_member.eml"] {
        i.process_fixture(f);
    }
    let n = chained(&i);
    assert!(n >= 5, "want several events to tamper with, have {n}");
    i
}

fn chained(i: &Instance) -> i64 {
    scalar(i, "SELECT COUNT(*) FROM audit_events WHERE seq IS NOT NULL")
}

fn id_of(i: &Instance, seq: i64) -> i64 {
    scalar(i, &format!("SELECT id FROM audit_events WHERE seq = {seq}"))
}

/// `audit verify --json` (plus `args`): exit status and the report.
fn verify(i: &Instance, args: &[&str]) -> (bool, Value) {
    let mut all = vec!["audit", "verify", "--json"];
    all.extend_from_slice(args);
    let out = i.cmd().args(&all).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    if !out.status.success() {
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("does not verify"),
            "a failed verify says so on stderr"
        );
    }
    (out.status.success(), report)
}

/// `audit verify` as a person reads it: exit status and the line printed.
fn verify_text(i: &Instance) -> (bool, String) {
    let out = i.cmd().args(["audit", "verify"]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    )
}

fn assert_broken(report: &Value, kind: &str, event: i64) {
    assert_eq!(report["intact"], json!(false), "{report}");
    assert_eq!(report["broken"], json!(kind), "{report}");
    assert_eq!(report["event"], json!(event), "{report}");
}

#[test]
fn every_event_is_chained_and_an_untouched_trail_verifies() {
    let i = busy_instance("");
    let n = chained(&i);
    assert_eq!(
        scalar(&i, "SELECT COUNT(*) FROM audit_events WHERE seq IS NULL"),
        0,
        "a new database has no event outside the chain"
    );
    assert_eq!(scalar(&i, "SELECT MAX(seq) FROM audit_events"), n);
    // Each event's prev_hash is the hash of the one before it, in id order.
    assert_eq!(
        scalar(
            &i,
            "SELECT COUNT(*) FROM audit_events a JOIN audit_events b ON b.seq = a.seq + 1 \
             WHERE b.prev_hash = a.hash AND b.id > a.id"
        ),
        n - 1
    );
    assert_eq!(scalar(&i, "SELECT event_count FROM audit_head"), n);

    let (ok, report) = verify(&i, &[]);
    assert!(ok, "{report}");
    assert_eq!(report["intact"], json!(true));
    assert_eq!(report["events"], json!(n));
    let (ok, line) = verify_text(&i);
    assert!(ok);
    assert!(
        line.starts_with(&format!("audit chain intact: {n} chained event(s)")),
        "{line}"
    );

    // `postroom audit [--since] [--limit]` prints the trail as before.
    let all = i.audit();
    assert_eq!(all.len() as i64, n);
    let out = i.ok(&["audit", "--since", "24h", "--limit", "2"]);
    assert_eq!(out.lines().count(), 2);
}

#[test]
fn an_edited_event_is_named() {
    let i = busy_instance("");
    drop_triggers(&i);
    sql(
        &i,
        &["UPDATE audit_events SET actor = 'someone.else@nhs.example' WHERE seq = 3"],
    )
    .unwrap();
    let (ok, report) = verify(&i, &[]);
    assert!(!ok);
    assert_broken(&report, "edited", 3);
    let (_, line) = verify_text(&i);
    assert!(
        line.contains(&format!("event #3 (id {}", id_of(&i, 3))) && line.contains("was edited"),
        "{line}"
    );
}

#[test]
fn an_edited_event_with_its_hash_recomputed_breaks_the_next_link() {
    let i = busy_instance("");
    drop_triggers(&i);
    // The attacker recomputes event #2's hash after editing it, but not the rest of the chain.
    runtime().block_on(async {
        let store = Store::open(&i.database()).await.unwrap();
        let mut conn = store.read().await.unwrap();
        let events = chain::events_after(&mut conn, i64::MIN, 1000)
            .await
            .unwrap();
        let mut e = events.into_iter().find(|e| e.seq == Some(2)).unwrap();
        e.subject = Some("victim@nhs.example".into());
        let prev = chain::from_hex(e.prev_hash.as_deref().unwrap()).unwrap();
        let h = chain::to_hex(&chain::event_hash(2, &prev, &e.fields()));
        sqlx::query("UPDATE audit_events SET subject = $1, hash = $2 WHERE seq = 2")
            .bind(e.subject.as_deref())
            .bind(h)
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        store.close().await;
    });
    let (ok, report) = verify(&i, &[]);
    assert!(!ok);
    assert_broken(&report, "link", 3);
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("does not link to event #2"),
        "{report}"
    );
}

#[test]
fn a_deleted_event_is_named() {
    let i = busy_instance("");
    drop_triggers(&i);
    sql(&i, &["DELETE FROM audit_events WHERE seq = 3"]).unwrap();
    let (ok, report) = verify(&i, &[]);
    assert!(!ok);
    assert_broken(&report, "deleted", 3);
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("event #3 was deleted"),
        "{report}"
    );
}

#[test]
fn reordered_rows_are_named() {
    let i = busy_instance("");
    drop_triggers(&i);
    // Swap the rows of events #2 and #3: the trail now shows #3 first.
    let (a, b) = (id_of(&i, 2), id_of(&i, 3));
    sql(
        &i,
        &[
            &format!("UPDATE audit_events SET id = -1 WHERE id = {a}"),
            &format!("UPDATE audit_events SET id = {a} WHERE id = {b}"),
            &format!("UPDATE audit_events SET id = {b} WHERE id = -1"),
        ],
    )
    .unwrap();
    let (ok, report) = verify(&i, &[]);
    assert!(!ok);
    assert_broken(&report, "reordered", 2);
    let msg = report["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("event #2 (id {b}")) && msg.contains(&format!("event #3 (id {a}")),
        "{msg}"
    );
}

#[test]
fn an_event_inserted_behind_postroms_back_is_named() {
    let i = busy_instance("");
    sql(
        &i,
        &["INSERT INTO audit_events (at, actor, action, detail) VALUES (1, 'eve', 'account.unlocked', '{}')"],
    )
    .unwrap();
    let (ok, report) = verify(&i, &[]);
    assert!(!ok);
    assert_eq!(report["broken"], json!("unchained"), "{report}");
}

/// `[audit]` with a fresh key in the instance's directory; the key file and its public key.
fn with_key() -> (Instance, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("audit.key");
    let out = assert_cmd::Command::cargo_bin("postroom")
        .unwrap()
        .args(["audit", "keygen", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(public.len(), 64, "{public}");
    let i = busy_instance(&format!(
        "[audit]\nsigning_key_file = \"{}\"\ncheckpoint_to = \"audit-archive@elsewhere.example\"\n",
        key.display()
    ));
    // The key's directory lives as long as the instance's.
    let kept = i.dir.path().join("audit.key");
    std::fs::rename(&key, &kept).unwrap();
    std::fs::write(
        &i.config,
        std::fs::read_to_string(&i.config)
            .unwrap()
            .replace(&key.display().to_string(), &kept.display().to_string()),
    )
    .unwrap();
    (i, kept, public)
}

/// `audit checkpoint`, saved to a file as the person who receives it would.
fn checkpoint_to_file(i: &Instance, name: &str) -> PathBuf {
    let text = i.ok(&["audit", "checkpoint"]);
    assert!(text.starts_with("postroom audit checkpoint v1\n"), "{text}");
    let file = i.dir.path().join(name);
    std::fs::write(&file, &text).unwrap();
    file
}

fn rewind_head(i: &Instance, to: i64) {
    // The attacker also rewinds the head row (its trigger dropped) so that it matches.
    sql(
        i,
        &[&format!(
            "UPDATE audit_head SET event_count = {to}, head_hash = (SELECT hash FROM audit_events WHERE seq = {to})"
        )],
    )
    .unwrap();
}

#[test]
fn a_truncated_tail_is_found_against_the_last_checkpoint() {
    let (i, _key, public) = with_key();
    let n = chained(&i);
    let kept = checkpoint_to_file(&i, "kept.txt");
    // Checkpoints are stored and queued by email for the address outside postroom.
    assert_eq!(scalar(&i, "SELECT COUNT(*) FROM audit_checkpoints"), 1);
    assert_eq!(
        scalar(
            &i,
            "SELECT COUNT(*) FROM outbox WHERE to_address = 'audit-archive@elsewhere.example' \
             AND body LIKE '%postroom audit checkpoint v1%'"
        ),
        1
    );
    let (ok, report) = verify(
        &i,
        &[
            "--checkpoint",
            kept.to_str().unwrap(),
            "--public-key",
            &public,
        ],
    );
    assert!(ok, "{report}");
    assert_eq!(report["checkpoints"], json!(2));

    // The last two events removed, and the head rewound to hide it.
    drop_triggers(&i);
    sql(
        &i,
        &[&format!("DELETE FROM audit_events WHERE seq > {}", n - 2)],
    )
    .unwrap();
    rewind_head(&i, n - 2);
    let (ok, report) = verify(&i, &[]);
    assert!(!ok);
    assert_broken(&report, "truncated", n - 1);
    assert!(
        report["message"]
            .as_str()
            .unwrap()
            .contains("stored checkpoint of"),
        "{report}"
    );

    // The stored checkpoints removed too: the database alone now looks whole…
    sql(&i, &["DELETE FROM audit_checkpoints"]).unwrap();
    let (ok, report) = verify(&i, &[]);
    assert!(
        ok,
        "without a checkpoint kept elsewhere nothing can tell: {report}"
    );
    // …but the checkpoint kept outside postroom still tells.
    let (ok, report) = verify(
        &i,
        &[
            "--checkpoint",
            kept.to_str().unwrap(),
            "--public-key",
            &public,
        ],
    );
    assert!(!ok);
    assert_broken(&report, "truncated", n - 1);
    assert!(
        report["message"].as_str().unwrap().contains("kept.txt"),
        "{report}"
    );
}

#[test]
fn a_rewritten_tail_is_found_against_a_kept_checkpoint() {
    let (i, _key, public) = with_key();
    let n = chained(&i);
    let kept = checkpoint_to_file(&i, "kept.txt");
    drop_triggers(&i);
    // The thorough attacker: edit event #2, recompute every hash after it, move the head,
    // remove the stored checkpoints.
    runtime().block_on(async {
        let store = Store::open(&i.database()).await.unwrap();
        let mut conn = store.read().await.unwrap();
        let events = chain::events_after(&mut conn, i64::MIN, 1000)
            .await
            .unwrap();
        let mut prev = None;
        for mut e in events.into_iter().filter(|e| e.seq.is_some()) {
            let seq = e.seq.unwrap();
            if seq == 2 {
                e.actor = "someone.else@nhs.example".into();
            }
            let p =
                prev.unwrap_or_else(|| chain::from_hex(e.prev_hash.as_deref().unwrap()).unwrap());
            let h = chain::event_hash(seq as u64, &p, &e.fields());
            sqlx::query(
                "UPDATE audit_events SET actor = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
            )
            .bind(&e.actor)
            .bind(chain::to_hex(&p))
            .bind(chain::to_hex(&h))
            .bind(seq)
            .execute(&mut *conn)
            .await
            .unwrap();
            prev = Some(h);
        }
        sqlx::query("UPDATE audit_head SET head_hash = $1")
            .bind(chain::to_hex(&prev.unwrap()))
            .execute(&mut *conn)
            .await
            .unwrap();
        sqlx::query("DELETE FROM audit_checkpoints")
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        store.close().await;
    });
    let (ok, report) = verify(&i, &[]);
    assert!(
        ok,
        "a consistent rewrite passes on the database alone: {report}"
    );
    let (ok, report) = verify(
        &i,
        &[
            "--checkpoint",
            kept.to_str().unwrap(),
            "--public-key",
            &public,
        ],
    );
    assert!(!ok);
    assert_broken(&report, "rewritten", n);
}

#[test]
fn a_forged_or_foreign_checkpoint_is_refused() {
    let (i, _key, public) = with_key();
    let kept = checkpoint_to_file(&i, "kept.txt");
    let text = std::fs::read_to_string(&kept).unwrap();
    let forged = i.dir.path().join("forged.txt");
    let n = chained(&i);
    std::fs::write(
        &forged,
        text.replace(&format!("events: {n}\n"), &format!("events: {}\n", n - 1)),
    )
    .unwrap();
    let (ok, report) = verify(
        &i,
        &[
            "--checkpoint",
            forged.to_str().unwrap(),
            "--public-key",
            &public,
        ],
    );
    assert!(!ok);
    assert_eq!(report["broken"], json!("signature"), "{report}");

    let other = i.dir.path().join("other.key");
    let out = i
        .cmd()
        .args(["audit", "keygen", other.to_str().unwrap()])
        .output()
        .unwrap();
    let other_public = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let (ok, report) = verify(
        &i,
        &[
            "--checkpoint",
            kept.to_str().unwrap(),
            "--public-key",
            &other_public,
        ],
    );
    assert!(!ok);
    assert_eq!(report["broken"], json!("signature"), "{report}");
    // A checkpoint is only ever checked with a key.
    let out = i
        .cmd()
        .args(["audit", "verify", "--checkpoint", kept.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--public-key"));
}

#[test]
fn checkpoint_and_keygen_refuse_what_they_cannot_do() {
    let i = Instance::new("");
    let out = i.cmd().args(["audit", "checkpoint"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("signing_key_file"));
    let key = i.dir.path().join("k");
    i.ok(&["audit", "keygen", key.to_str().unwrap()]);
    let out = i
        .cmd()
        .args(["audit", "keygen", key.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "an existing key is never replaced");
    // An address postroom reads is refused as the checkpoint's destination.
    let bad = Instance::new(&format!(
        "[audit]\nsigning_key_file = \"{}\"\ncheckpoint_to = \"{}\"\n",
        key.display(),
        crate::support::HELPDESK
    ));
    let out = bad.cmd().args(["audit", "verify"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("audit.checkpoint_to"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn plain_update_delete_and_truncate_are_refused() {
    let i = busy_instance("");
    for s in [
        "UPDATE audit_events SET actor = 'x' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
        "UPDATE audit_head SET event_count = 0",
        "DELETE FROM audit_head",
    ] {
        let e = sql(&i, &[s]).unwrap_err();
        assert!(
            e.contains("append-only")
                || e.contains("only moves forward")
                || e.contains("cannot be deleted"),
            "{e}"
        );
    }
    if backend(&i) == Backend::Postgres {
        for s in [
            "TRUNCATE audit_events",
            "TRUNCATE audit_head",
            "TRUNCATE audit_checkpoints",
        ] {
            let e = sql(&i, &[s]).unwrap_err();
            assert!(
                e.contains("append-only") || e.contains("only moves forward"),
                "{e}"
            );
        }
    }
    let (ok, report) = verify(&i, &[]);
    assert!(ok, "{report}");
}

#[test]
fn retention_works_under_the_triggers_and_leaves_a_chained_record() {
    let i = Instance::with_directory(
        "[retention]\nraw_messages = \"1ms\"\ndisabled_accounts = \"1ms\"\n",
    );
    assert_eq!(i.process_fixture("leaver.eml")["outcome"], "applied");
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = chained(&i);
    let done: Value = serde_json::from_str(i.ok(&["retention"]).trim()).unwrap();
    assert_eq!(done["accounts_deleted"], json!(["amy.jones@nhs.example"]));
    // Nothing of the trail went; retention's own acts were added to the chain.
    assert_eq!(chained(&i), before + 2);
    assert_eq!(
        scalar(
            &i,
            "SELECT COUNT(*) FROM audit_events WHERE seq IS NOT NULL AND \
             ((action = 'account.deleted' AND subject = 'amy.jones@nhs.example') OR action = 'messages.raw_dropped')"
        ),
        2
    );
    let dropped = i
        .audit()
        .into_iter()
        .find(|e| e["action"] == "messages.raw_dropped")
        .unwrap();
    assert!(dropped["detail"]["message_ids"][0].is_i64(), "{dropped}");
    let (ok, report) = verify(&i, &[]);
    assert!(ok, "{report}");
}

#[test]
fn events_from_before_the_chain_are_covered_by_its_genesis() {
    // A database as migration 0050 finds it: events with no place in the chain.
    let i = Instance::new("");
    sql(
        &i,
        &[
            "INSERT INTO audit_events (at, actor, action, subject, detail) VALUES (1000, 'import', 'directory.import', NULL, '{}')",
            "INSERT INTO audit_events (at, actor, action, subject, detail) VALUES (2000, 'ann@nhs.example', 'account.unlocked', 'bob@nhs.example', '{\"why\":\"old\"}')",
        ],
    )
    .unwrap();
    let i = Instance::import_fixture_directory(i);
    assert_eq!(
        scalar(&i, "SELECT COUNT(*) FROM audit_events WHERE seq IS NULL"),
        2
    );
    let (ok, report) = verify(&i, &[]);
    assert!(ok, "{report}");
    assert_eq!(report["before_chain"], json!(2));
    assert_eq!(report["events"], json!(1));

    drop_triggers(&i);
    sql(
        &i,
        &["UPDATE audit_events SET subject = 'carol@nhs.example' WHERE seq IS NULL AND subject = 'bob@nhs.example'"],
    )
    .unwrap();
    let (ok, report) = verify(&i, &[]);
    assert!(!ok);
    assert_broken(&report, "genesis", 1);
}

/// Many transactions writing events at once, from two Store instances (two pools, as two
/// postroom processes): one unbroken chain, every event in it once. On PostgreSQL the head
/// row's lock makes writers take turns; SERIALIZABLE transactions that lose the race fail
/// with a serialisation error and are retried as the pipeline does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_make_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::common::testdb::TestDb::new(dir.path());
    let cfg = postroom::config::DatabaseConfig {
        url: db.url.clone(),
        max_connections: 6,
        acquire_timeout: std::time::Duration::from_secs(30),
    };
    let stores = [
        Store::open(&cfg).await.unwrap(),
        Store::open(&cfg).await.unwrap(),
    ];
    const WRITERS: usize = 8;
    const EACH: usize = 12;
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(WRITERS));
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let store = stores[w % 2].clone();
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let mut retries = 0u32;
            for n in 0..EACH {
                let subject = format!("w{w}-n{n}@nhs.example");
                let events = [
                    NewAuditEvent {
                        actor: "postroom",
                        on_behalf_of: None,
                        action: "test.request",
                        subject: Some(&subject),
                        detail: json!({ "w": w, "n": n }),
                        request_id: None,
                        message_id: None,
                    },
                    NewAuditEvent {
                        actor: "postroom",
                        on_behalf_of: None,
                        action: "test.part",
                        subject: Some(&subject),
                        detail: json!({}),
                        request_id: None,
                        message_id: None,
                    },
                ];
                if n % 3 == 2 {
                    // Outside a transaction: insert_audits takes one of its own.
                    let mut conn = store.read().await.unwrap();
                    journal::insert_audits(&mut conn, &events).await.unwrap();
                    continue;
                }
                loop {
                    let attempt = async {
                        let mut tx = store.begin().await?;
                        journal::insert_audits(&mut tx, &events).await?;
                        tx.commit().await?;
                        Ok::<_, postroom::store::StoreError>(())
                    };
                    match attempt.await {
                        Ok(()) => break,
                        Err(e) if e.is_retryable() && retries < 1000 => {
                            retries += 1;
                            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                        }
                        Err(e) => panic!("writer {w}: {e}"),
                    }
                }
            }
            retries
        }));
    }
    // Verifying while they write never sees a false break (a head ahead of the events walked).
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checker = {
        let (store, done) = (stores[1].clone(), done.clone());
        tokio::spawn(async move {
            let mut checks = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || checks == 0 {
                let mut conn = store.read().await.unwrap();
                let verdict = chain::verify(&mut conn, &[]).await.unwrap();
                assert!(verdict.is_intact(), "verify during writes: {verdict:?}");
                checks += 1;
            }
            checks
        })
    };
    let mut retries = 0;
    for t in tasks {
        retries += t.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let checks = checker.await.unwrap();
    let mut conn = stores[0].read().await.unwrap();
    let verdict = chain::verify(&mut conn, &[]).await.unwrap();
    let expected = (WRITERS * EACH * 2) as i64;
    match verdict {
        chain::Verdict::Intact { events, .. } => assert_eq!(events, expected),
        other => panic!("{other:?}"),
    }
    let distinct: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT subject) FROM audit_events")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(distinct, (WRITERS * EACH) as i64);
    // The two events of one transaction are neighbours in the chain.
    let split: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events a JOIN audit_events b ON b.seq = a.seq + 1 \
         WHERE a.action = 'test.request' AND (b.action <> 'test.part' OR b.subject <> a.subject)",
    )
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    assert_eq!(split, 0);
    eprintln!("{retries} serialisation retries, {checks} verifications during the writes");
    drop(conn);
    for s in &stores {
        s.close().await;
    }
}

/// The daemon's schedule signs when the chain grew and the last checkpoint is not recent, so
/// several instances running it on one database do not each sign (and email) one.
#[tokio::test]
async fn the_schedule_signs_once_per_period_and_only_for_a_grown_chain() {
    let dir = tempfile::tempdir().unwrap();
    let db = crate::common::testdb::TestDb::new(dir.path());
    let key = dir.path().join("audit.key");
    postroom::audit::checkpoint::keygen(&key).unwrap();
    let cfg = postroom::config::Config::from_toml_with_env(
        &format!(
            "[database]\nurl = \"{}\"\n[helpdesk]\naddress = \"helpdesk@nhs.example\"\n\
             [audit]\nsigning_key_file = \"{}\"\ncheckpoint_every = \"1h\"\n",
            db.url,
            key.display()
        ),
        &[],
    )
    .unwrap();
    let store = Store::open(&cfg.database).await.unwrap();
    let event = NewAuditEvent {
        actor: "postroom",
        on_behalf_of: None,
        action: "test.event",
        subject: None,
        detail: json!({}),
        request_id: None,
        message_id: None,
    };
    let mut conn = store.read().await.unwrap();
    journal::insert_audit(&mut conn, &event).await.unwrap();
    drop(conn);
    let first = postroom::audit::checkpoint::scheduled(&store, &cfg)
        .await
        .unwrap();
    assert_eq!(first.map(|c| c.events), Some(1));
    // Unchanged chain: nothing to sign.
    assert!(
        postroom::audit::checkpoint::scheduled(&store, &cfg)
            .await
            .unwrap()
            .is_none()
    );
    // Grown, but another instance signed moments ago: not due yet.
    let mut conn = store.read().await.unwrap();
    journal::insert_audit(&mut conn, &event).await.unwrap();
    drop(conn);
    assert!(
        postroom::audit::checkpoint::scheduled(&store, &cfg)
            .await
            .unwrap()
            .is_none()
    );
    let mut conn = store.read().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_checkpoints")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
    drop(conn);
    store.close().await;
}
