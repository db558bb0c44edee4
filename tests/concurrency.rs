//! Two messages touching the same mailbox at the same moment, on both backends: two owners
//! each asking to remove the other. Run alone, each would be applied (the other owner stays);
//! run together, the database must not let both pass the last-owner guard, or the mailbox is
//! left with no owner at all.
//!
//! - SQLite: `BEGIN IMMEDIATE` makes the second transaction wait for the first; it then
//!   decides on the directory the first left.
//! - PostgreSQL: both run at once under SERIALIZABLE; each reads both owners and deletes the
//!   other's row (write skew), so PostgreSQL aborts one with a serialisation failure (40001)
//!   and the pipeline decides it again from scratch (`pipeline::run`).
//!
//! Shown twice: step by step with two hand-held transactions (the mechanism), and through the
//! real pipeline with both messages released together, many times over (the behaviour).
//! Also: six senders claiming the same 200 due replies at once, as several instances do; each
//! reply goes to exactly one.
//! PostgreSQL needs `POSTROOM_TEST_PG_URL` (scripts/test starts a throw-away server).

use crate::common::testdb::TestDb;
use postroom::config::Config;
use postroom::pipeline::{self, Mode};
use postroom::store::{Backend, Store, directory};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::instrument::WithSubscriber;

const ROUNDS: usize = 25;

fn config(url: &str) -> Config {
    Config::from_toml_with_env(
        &format!(
            "[database]\nurl = \"{url}\"\nmax_connections = 8\n\
             [helpdesk]\naddress = \"helpdesk@nhs.example\"\n\
             [trust]\nauthserv_id = \"mail.nhs.example\"\n\
             [confirmation]\nenabled = false\n\
             [limits]\nmax_replies_per_mailbox_per_day = 1000\n"
        ),
        &[],
    )
    .unwrap()
}

/// Organisation `Race N` with mailbox `race-N@nhs.example`, owners `ann-N@` and `bob-N@`
/// and one member.
fn directory_csv(rounds: usize) -> String {
    let mut csv = String::from("organisation,mailbox,account,name,role,status\n");
    for n in 0..rounds {
        for (who, role) in [("ann", "owner"), ("bob", "owner"), ("cat", "member")] {
            csv.push_str(&format!(
                "Race {n},race-{n}@nhs.example,{who}-{n}@nhs.example,{who} {n},{role},active\n"
            ));
        }
    }
    csv
}

async fn setup(db: &TestDb, rounds: usize) -> (Store, Arc<Config>) {
    let cfg = Arc::new(config(&db.url));
    let store = Store::open(&cfg.database).await.unwrap();
    postroom::directory_csv::import(&store, directory_csv(rounds).as_bytes(), "race.csv")
        .await
        .unwrap();
    (store, cfg)
}

/// `requester` (an owner of race-N) asks to remove `target` (the other owner).
fn removal(n: usize, requester: &str, target: &str) -> Vec<u8> {
    format!(
        "Authentication-Results: mail.nhs.example; dkim=pass header.d=nhs.example; dmarc=pass header.from=nhs.example\r\n\
         From: Race {n} <race-{n}@nhs.example>\r\n\
         To: helpdesk@nhs.example\r\n\
         Subject: Remove member\r\n\
         Message-ID: <race-{n}-{requester}@nhs.example>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         Please remove {target}-{n} from the mailbox.\r\n\
         \r\n\
         Account: {target}-{n}@nhs.example\r\n\
         Requested by: {requester}-{n}@nhs.example\r\n"
    )
    .into_bytes()
}

async fn owners(store: &Store, mailbox: &str) -> Vec<String> {
    let mut c = store.read().await.unwrap();
    let m = directory::find_mailbox(&mut c, mailbox)
        .await
        .unwrap()
        .unwrap();
    directory::mailbox_members(&mut c, m.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|m| m.role == postroom::Role::Owner)
        .map(|m| m.account)
        .collect()
}

/// Captures the pipeline's debug lines, to see that PostgreSQL's retries really happened.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The lines, and the subscriber that writes them for the futures given it (`with_subscriber`):
/// one test's messages only, not a global subscriber that every test in the process (one
/// integration test binary) would log into.
fn capture_logs() -> (Captured, tracing::Dispatch) {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("postroom::pipeline=debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::Dispatch::new(subscriber))
}

async fn the_race_through_the_pipeline(db: TestDb) {
    let (logs, dispatch) = capture_logs();
    let (store, cfg) = setup(&db, ROUNDS).await;
    let mut both_applied = 0;
    let mut one_applied = 0;
    for n in 0..ROUNDS {
        let start = Arc::new(tokio::sync::Barrier::new(2));
        let run = |requester: &'static str, target: &'static str| {
            let (store, cfg, start) = (store.clone(), cfg.clone(), start.clone());
            tokio::spawn(
                async move {
                    let raw = removal(n, requester, target);
                    // Both messages are parsed and ready; released together.
                    start.wait().await;
                    pipeline::process(&store, &cfg, &raw, "test:race", Mode::Apply)
                        .await
                        .unwrap()
                }
                .with_subscriber(dispatch.clone()),
            )
        };
        let (a, b) = (run("ann", "bob"), run("bob", "ann"));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        let applied = [&a, &b]
            .iter()
            .filter(|p| p.outcome == postroom::Outcome::Applied)
            .count();
        let left = owners(&store, &format!("race-{n}@nhs.example")).await;
        assert!(
            !left.is_empty(),
            "round {n}: the mailbox lost every owner ({:?} / {:?})",
            a.reason,
            b.reason
        );
        if applied == 2 {
            both_applied += 1;
        }
        if applied == 1 {
            one_applied += 1;
            // The loser was decided on the winner's directory: its requester is gone.
            let loser = if a.outcome == postroom::Outcome::Applied {
                &b
            } else {
                &a
            };
            assert_eq!(loser.outcome, postroom::Outcome::Rejected, "{loser:?}");
        }
        assert_eq!(left.len(), 2 - applied, "round {n}: {left:?}");
    }
    assert_eq!(both_applied, 0, "both removals passed the guard");
    assert_eq!(one_applied, ROUNDS, "exactly one of each pair applies");
    let conflicts = String::from_utf8_lossy(&logs.0.lock().unwrap())
        .matches("transaction conflict, trying again")
        .count();
    eprintln!(
        "{:?}: {ROUNDS} races, one removal applied in each, {conflicts} transaction conflicts retried",
        store.backend()
    );
    if store.backend() == Backend::Postgres {
        // The messages really ran at the same time: PostgreSQL refused some and the pipeline
        // decided them again.
        assert!(conflicts > 0, "no serialisation conflict in {ROUNDS} races");
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owners_removing_each_other_at_once_on_sqlite_leave_an_owner() {
    let dir = tempfile::tempdir().unwrap();
    the_race_through_the_pipeline(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn owners_removing_each_other_at_once_on_postgres_leave_an_owner() {
    the_race_through_the_pipeline(TestDb::postgres()).await;
}

/// (mailbox id, members, ann's account id, bob's account id) of race-0, as a transaction sees them.
async fn members_of_race_0(
    c: &mut postroom::store::Conn,
) -> (i64, usize, Option<i64>, Option<i64>) {
    let m = directory::find_mailbox(c, "race-0@nhs.example")
        .await
        .unwrap()
        .unwrap();
    let members = directory::mailbox_members(c, m.id).await.unwrap();
    let id = |who: &str| {
        members
            .iter()
            .find(|x| x.account.starts_with(who))
            .map(|x| x.account_id)
    };
    (m.id, members.len(), id("ann"), id("bob"))
}

/// The mechanism, step by step, with the pipeline's own `Store::begin`.
async fn interleaved(db: TestDb) {
    let (store, _cfg) = setup(&db, 1).await;
    let mailbox = "race-0@nhs.example";
    let mut t1 = store.begin().await.unwrap();
    let (mailbox_id, seen1, _, bob) = members_of_race_0(&mut t1).await;
    assert_eq!(seen1, 3);
    match store.backend() {
        Backend::Postgres => {
            // T2 starts while T1 is open and sees the same two owners.
            let mut t2 = store.begin().await.unwrap();
            let (_, seen2, ann, _) = members_of_race_0(&mut t2).await;
            assert_eq!(seen2, 3);
            directory::remove_membership(&mut t1, mailbox_id, bob.unwrap())
                .await
                .unwrap();
            t1.commit().await.unwrap();
            // T2 removes the other owner: PostgreSQL refuses the write skew, at the write
            // or at the commit, as a retryable conflict.
            let result = async {
                directory::remove_membership(&mut t2, mailbox_id, ann.unwrap()).await?;
                t2.commit().await?;
                Ok::<(), postroom::store::StoreError>(())
            }
            .await;
            let err = result.expect_err("both removals committed");
            assert!(err.is_retryable(), "not a serialisation failure: {err}");
        }
        Backend::Sqlite => {
            // T2 cannot even begin while T1 holds the write lock; it waits, then sees T1's
            // result.
            let second = {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut t2 = store.begin().await.unwrap();
                    let seen = members_of_race_0(&mut t2).await;
                    t2.rollback().await.unwrap();
                    seen
                })
            };
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert!(
                !second.is_finished(),
                "a second writer began beside the first"
            );
            directory::remove_membership(&mut t1, mailbox_id, bob.unwrap())
                .await
                .unwrap();
            t1.commit().await.unwrap();
            let (_, seen2, ann, bob_after) = second.await.unwrap();
            assert_eq!((seen2, bob_after), (2, None), "T2 sees T1's removal");
            assert!(ann.is_some());
        }
    }
    assert_eq!(owners(&store, mailbox).await.len(), 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite_a_second_writer_waits_for_the_first() {
    let dir = tempfile::tempdir().unwrap();
    interleaved(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_write_skew_between_two_transactions_is_refused() {
    interleaved(TestDb::postgres()).await;
}

/// Several senders (as in several instances) claim the same due replies at the same moment:
/// every reply goes to exactly one of them (`store::outbox::claim_many`).
async fn concurrent_claims(db: TestDb) {
    use postroom::store::journal::{NewOutboxItem, enqueue_reply};
    use postroom::store::outbox;
    const REPLIES: usize = 200;
    const SENDERS: usize = 6;
    let cfg = config(&db.url);
    let store = Store::open(&cfg.database).await.unwrap();
    let mut tx = store.begin().await.unwrap();
    for i in 0..REPLIES {
        enqueue_reply(
            &mut tx,
            &NewOutboxItem {
                request_id: None,
                to: "site@nhs.example",
                subject: "s",
                body: "b",
                message_id: &format!("claim-{i}@nhs.example"),
                in_reply_to: None,
                references: None,
                secret: None,
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();

    let start = Arc::new(tokio::sync::Barrier::new(SENDERS));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (store, start) = (store.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut mine = Vec::new();
                loop {
                    let now = postroom::store::now_ms();
                    let due = outbox::due(&mut store.read().await.unwrap(), now, 50)
                        .await
                        .unwrap();
                    if due.is_empty() {
                        return mine;
                    }
                    for row in due {
                        let mut c = store.read().await.unwrap();
                        let claimed =
                            outbox::claim_many(&mut c, &[row.id], now, Duration::from_secs(60))
                                .await
                                .unwrap();
                        mine.extend(claimed);
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut busy = 0;
    for s in senders {
        let mine = s.await.unwrap();
        busy += usize::from(!mine.is_empty());
        all.extend(mine);
    }
    let distinct: std::collections::HashSet<i64> = all.iter().copied().collect();
    assert_eq!(
        all.len(),
        REPLIES,
        "claimed {} times for {REPLIES} replies",
        all.len()
    );
    assert_eq!(distinct.len(), REPLIES);
    eprintln!(
        "{:?}: {REPLIES} replies claimed once each by {busy} of {SENDERS} senders",
        store.backend()
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_sqlite_concurrent_claims_give_each_reply_to_one_sender() {
    let dir = tempfile::tempdir().unwrap();
    concurrent_claims(TestDb::sqlite(dir.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_postgres_concurrent_claims_give_each_reply_to_one_sender() {
    concurrent_claims(TestDb::postgres()).await;
}

/// Group commit (the IMAP watcher on SQLite): in one group, the second of two owners asking
/// to remove each other sees the first's removal (one transaction), a repeated message is a
/// duplicate, and nothing is visible to others before the commit — nor ever, when the group
/// is dropped uncommitted (a crash before the commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_commits_together_and_each_message_sees_the_ones_before() {
    use postroom::Outcome;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite(dir.path());
    let (store, cfg) = setup(&db, 2).await;
    let (a0, b0, a1) = (
        removal(0, "ann", "bob"),
        removal(0, "bob", "ann"),
        removal(1, "ann", "bob"),
    );

    // Dropped without a commit: nothing of it stays.
    let lost = pipeline::Group::begin(&store).await.unwrap();
    let p = pipeline::prepare(&cfg, &a1).await;
    let (lost, processed) = lost.process(&cfg, &p, "test:lost").await.unwrap();
    assert_eq!(processed.outcome, Outcome::Applied);
    drop(lost);
    assert_eq!(owners(&store, "race-1@nhs.example").await.len(), 2);

    let mut group = pipeline::Group::begin(&store).await.unwrap();
    let mut outcomes = Vec::new();
    for (raw, source) in [
        (&a0, "test:1"),
        (&b0, "test:2"),
        (&a0, "test:3"),
        (&a1, "test:4"),
    ] {
        let p = pipeline::prepare(&cfg, raw).await;
        let (g, processed) = group.process(&cfg, &p, source).await.unwrap();
        group = g;
        outcomes.push(processed.outcome);
    }
    assert_eq!(group.len(), 4);
    // Not visible outside the group before the commit (a reader sees the old directory).
    assert_eq!(owners(&store, "race-0@nhs.example").await.len(), 2);
    group.commit().await.unwrap();

    assert_eq!(outcomes[0], Outcome::Applied, "{outcomes:?}");
    // Bob was removed by the first message: his own request is refused, not applied.
    assert_ne!(outcomes[1], Outcome::Applied, "{outcomes:?}");
    assert_eq!(outcomes[2], Outcome::Duplicate, "{outcomes:?}");
    assert_eq!(outcomes[3], Outcome::Applied, "{outcomes:?}");
    assert_eq!(
        owners(&store, "race-0@nhs.example").await,
        vec!["ann-0@nhs.example".to_owned()]
    );
    assert_eq!(
        owners(&store, "race-1@nhs.example").await,
        vec!["ann-1@nhs.example".to_owned()]
    );
    store.close().await;
}

/// A message that fails inside a group takes the group with it (there is no savepoint per
/// message): what the messages before it changed is rolled back too, and the writer's turn is
/// free again at once, so the same messages can be processed on their own afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_fails_rolls_its_whole_group_back() {
    use postroom::Outcome;
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite(dir.path());
    let (store, cfg) = setup(&db, 2).await;
    // The database refuses exactly one message.
    sqlx::query(
        "CREATE TRIGGER test_poison BEFORE INSERT ON messages WHEN NEW.message_id = 'race-1-bob@nhs.example' \
         BEGIN SELECT RAISE(ABORT, 'test: this message is refused'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let (good, poison) = (removal(0, "ann", "bob"), removal(1, "bob", "ann"));

    let group = pipeline::Group::begin(&store).await.unwrap();
    let p = pipeline::prepare(&cfg, &good).await;
    let (group, processed) = group.process(&cfg, &p, "test:good").await.unwrap();
    assert_eq!(processed.outcome, Outcome::Applied);
    let p = pipeline::prepare(&cfg, &poison).await;
    let err = group
        .process(&cfg, &p, "test:poison")
        .await
        .err()
        .expect("the refused message fails");
    assert!(err.to_string().contains("refused"), "{err}");
    // Nothing of the group stays: the first removal is undone with it.
    assert_eq!(owners(&store, "race-0@nhs.example").await.len(), 2);

    // On its own (as the watcher's next pass does it), the good message is applied.
    let alone = tokio::time::timeout(
        Duration::from_secs(10),
        pipeline::process(&store, &cfg, &good, "test:alone", Mode::Apply),
    )
    .await
    .expect("the write turn is free")
    .unwrap();
    assert_eq!(alone.outcome, Outcome::Applied);
    assert_eq!(
        owners(&store, "race-0@nhs.example").await,
        vec!["ann-0@nhs.example".to_owned()]
    );
    store.close().await;
}
