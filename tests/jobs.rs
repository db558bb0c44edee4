//! The job queue (`jobs/`, `store::jobs`) on a real database, SQLite or PostgreSQL
//! (`POSTROOM_TEST_BACKEND`): a kind of the test's own is retried with backoff, kept when it
//! fails for good, retried by staff, never done twice by two workers at once, taken over
//! when a worker's lease runs out, and a reply that waits for a job goes out only once the
//! job is done.

use crate::common::testdb::TestDb;
use postroom::config::DatabaseConfig;
use postroom::jobs::{self, Failure, JobKind, Schedule, worker};
use postroom::store::jobs::{self as table, JobStatus};
use postroom::store::journal::{self, NewOutboxItem};
use postroom::store::{Store, now_ms, outbox};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

struct Db {
    store: Store,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

async fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::new(dir.path());
    let store = Store::open(&DatabaseConfig {
        url: test_db.url.clone(),
        max_connections: 5,
        acquire_timeout: Duration::from_secs(30),
    })
    .await
    .unwrap();
    Db {
        store,
        _db: test_db,
        _dir: dir,
    }
}

/// What a test job asks: a name, and how many temporary failures before it works (or that it
/// is refused for good).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ask {
    account: String,
    fail_first: u32,
    refuse: bool,
}

/// A target that counts what it is asked, per account.
#[derive(Default, Clone)]
struct Target {
    tries: Arc<Mutex<HashMap<String, u32>>>,
    delay: Duration,
}

impl Target {
    fn tries(&self, account: &str) -> u32 {
        self.tries
            .lock()
            .unwrap()
            .get(account)
            .copied()
            .unwrap_or(0)
    }
}

impl JobKind for Target {
    const NAME: &'static str = "test.target";
    type Payload = Ask;

    fn schedule(&self) -> Schedule {
        Schedule {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(200),
            give_up_after: Duration::from_secs(3600),
        }
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(10)
    }

    async fn attempt(&self, ask: &Ask) -> Result<serde_json::Value, Failure> {
        tokio::time::sleep(self.delay).await;
        let n = {
            let mut tries = self.tries.lock().unwrap();
            let n = tries.entry(ask.account.clone()).or_default();
            *n += 1;
            *n
        };
        if ask.refuse {
            return Err(Failure::Permanent(format!(
                "{} is not allowed",
                ask.account
            )));
        }
        if n <= ask.fail_first {
            return Err(Failure::Temporary("target down".into()));
        }
        Ok(serde_json::json!({ "account": ask.account, "tries": n }))
    }
}

async fn enqueue(store: &Store, ask: &Ask) -> i64 {
    let mut tx = store.begin().await.unwrap();
    let id = jobs::enqueue::<Target>(&mut tx, ask, None).await.unwrap();
    tx.commit().await.unwrap();
    id
}

async fn job(store: &Store, id: i64) -> table::JobRow {
    table::find(&mut store.read().await.unwrap(), id)
        .await
        .unwrap()
        .unwrap()
}

async fn audit_actions(store: &Store) -> Vec<String> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_events WHERE action LIKE 'job.%' ORDER BY id")
            .fetch_all(&mut *store.read().await.unwrap())
            .await
            .unwrap();
    rows
}

fn ask(account: &str, fail_first: u32) -> Ask {
    Ask {
        account: account.into(),
        fail_first,
        refuse: false,
    }
}

#[tokio::test]
async fn temporary_failures_are_retried_with_backoff_until_done() {
    let db = db().await;
    let target = Target::default();
    let id = enqueue(&db.store, &ask("tom.smith@nhs.example", 2)).await;

    let first = worker::pass(&db.store, &target, None).await.unwrap();
    assert_eq!((first.retried, first.done), (1, 0));
    // Not due again before its backoff has passed.
    let early = worker::pass(&db.store, &target, None).await.unwrap();
    assert_eq!(early, worker::JobPass::default());
    let j = job(&db.store, id).await;
    assert_eq!(j.status, JobStatus::Pending);
    assert_eq!(j.attempts, 1);
    assert_eq!(j.last_error.as_deref(), Some("target down"));
    assert!(j.next_attempt_at > now_ms() - 1000);

    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        worker::pass(&db.store, &target, None).await.unwrap();
        if job(&db.store, id).await.status == JobStatus::Done {
            break;
        }
    }
    let j = job(&db.store, id).await;
    assert_eq!(j.status, JobStatus::Done, "{j:?}");
    assert_eq!(j.attempts, 3);
    assert_eq!(target.tries("tom.smith@nhs.example"), 3);
    let result: serde_json::Value = serde_json::from_str(j.result.as_deref().unwrap()).unwrap();
    assert_eq!(result["tries"], 3);
    // Every attempt is in the audit trail.
    assert_eq!(
        audit_actions(&db.store).await,
        ["job.retried", "job.retried", "job.done"]
    );
}

#[tokio::test]
async fn a_refusal_is_kept_for_staff_and_can_be_retried() {
    let db = db().await;
    let target = Target::default();
    let mut refused = ask("amy.jones@nhs.example", 0);
    refused.refuse = true;
    let id = enqueue(&db.store, &refused).await;
    let pass = worker::pass(&db.store, &target, None).await.unwrap();
    assert_eq!(pass.failed, 1);
    let j = job(&db.store, id).await;
    assert_eq!(j.status, JobStatus::Failed);
    assert_eq!(
        j.last_error.as_deref(),
        Some("amy.jones@nhs.example is not allowed")
    );
    // Failed jobs stay failed: no pass tries them again by itself.
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        worker::pass(&db.store, &target, None).await.unwrap(),
        worker::JobPass::default()
    );
    assert_eq!(target.tries("amy.jones@nhs.example"), 1);

    // Staff retry it: due at once, a fresh round of attempts.
    let now = now_ms();
    assert!(
        table::retry_now(&mut db.store.write().await.unwrap(), id, now)
            .await
            .unwrap()
    );
    let j = job(&db.store, id).await;
    assert_eq!(
        (j.status, j.attempts, j.retried_at),
        (JobStatus::Pending, 0, Some(now))
    );
    // Not a failed job any more: a second retry changes nothing.
    assert!(
        !table::retry_now(&mut db.store.write().await.unwrap(), id, now)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn a_payload_that_does_not_read_fails_for_good() {
    let db = db().await;
    let id = {
        let mut tx = db.store.begin().await.unwrap();
        let id = table::enqueue(
            &mut tx,
            &table::NewJob {
                kind: Target::NAME,
                payload: "{\"account\": 42}",
                request_id: None,
                serial: None,
            },
            now_ms(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        id
    };
    let pass = worker::pass(&db.store, &Target::default(), None)
        .await
        .unwrap();
    assert_eq!(pass.failed, 1);
    let j = job(&db.store, id).await;
    assert_eq!(j.status, JobStatus::Failed);
    assert!(
        j.last_error
            .as_deref()
            .unwrap()
            .starts_with("the payload does not read as a test.target job"),
        "{j:?}"
    );
}

/// Two workers (two instances) on one queue: every job is done exactly once.
#[tokio::test]
async fn two_workers_never_do_one_job_twice() {
    let db = db().await;
    let target = Target {
        delay: Duration::from_millis(5),
        ..Target::default()
    };
    let accounts: Vec<String> = (0..30).map(|n| format!("user{n}@nhs.example")).collect();
    for a in &accounts {
        enqueue(&db.store, &ask(a, 0)).await;
    }
    let (a, b) = tokio::join!(
        worker::pass(&db.store, &target, None),
        worker::pass(&db.store, &target, None)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.done + b.done, 30, "{a:?} {b:?}");
    for account in &accounts {
        assert_eq!(target.tries(account), 1, "{account}");
    }
}

/// A worker that dies holding a job strands it only until its lease runs out.
#[tokio::test]
async fn a_dead_workers_job_is_taken_over_when_its_lease_runs_out() {
    let db = db().await;
    let target = Target::default();
    let id = enqueue(&db.store, &ask("kim.lee@nhs.example", 0)).await;
    // The "dead" worker: claimed for 300 ms, never recorded.
    let claimed = table::claim(
        &mut db.store.write().await.unwrap(),
        &[id],
        now_ms(),
        Duration::from_millis(300),
    )
    .await
    .unwrap();
    assert_eq!(claimed, [id]);
    assert_eq!(
        worker::pass(&db.store, &target, None).await.unwrap(),
        worker::JobPass::default(),
        "held by the lease"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let pass = worker::pass(&db.store, &target, None).await.unwrap();
    assert_eq!(pass.done, 1);
    assert_eq!(job(&db.store, id).await.status, JobStatus::Done);
}

/// A reply held for a job is not due until the job is done ("Done" waits for the change).
#[tokio::test]
async fn a_reply_waits_for_the_job_it_reports() {
    let db = db().await;
    let mut tx = db.store.begin().await.unwrap();
    let job_id = jobs::enqueue::<Target>(&mut tx, &ask("li.wong@nhs.example", 1), None)
        .await
        .unwrap();
    let reply = journal::enqueue_reply(
        &mut tx,
        &NewOutboxItem {
            request_id: None,
            to: "oakview.gp@nhs.example",
            subject: "Done: Password reset",
            body: "Done.",
            message_id: &format!("held.{}@nhs.example", now_ms()),
            in_reply_to: None,
            references: None,
            secret: None,
        },
    )
    .await
    .unwrap();
    journal::hold_reply(&mut tx, reply, job_id).await.unwrap();
    tx.commit().await.unwrap();

    let due = |store: &Store| {
        let store = store.clone();
        async move {
            outbox::due(&mut store.read().await.unwrap(), now_ms(), 10)
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert!(
        due(&db.store).await.is_empty(),
        "held while the job is pending"
    );
    let target = Target::default();
    worker::pass(&db.store, &target, None).await.unwrap();
    assert!(
        due(&db.store).await.is_empty(),
        "held while the job is retried"
    );
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(60)).await;
        worker::pass(&db.store, &target, None).await.unwrap();
        if job(&db.store, job_id).await.status == JobStatus::Done {
            break;
        }
    }
    assert_eq!(due(&db.store).await, [reply]);
}

/// Jobs with the same serial (for provisioning: the account) run in the order they were
/// written: while the first waits to be retried, the second waits too; a job of another
/// serial goes on; once the first is done, the second follows.
#[tokio::test]
async fn jobs_of_one_serial_run_in_order_and_others_are_not_held_up() {
    let db = db().await;
    let target = Target::default();
    let put = |ask: Ask, serial: &'static str| {
        let store = db.store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let id = jobs::enqueue_in_order::<Target>(&mut tx, &ask, None, Some(serial))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            id
        }
    };
    // The first change to amy fails once (its retry is scheduled ~100 ms on).
    let first = put(ask("amy.first@nhs.example", 1), "amy@nhs.example").await;
    let second = put(ask("amy.second@nhs.example", 0), "amy@nhs.example").await;
    let other = put(ask("tom@nhs.example", 0), "tom@nhs.example").await;

    let pass = worker::pass(&db.store, &target, None).await.unwrap();
    assert_eq!((pass.retried, pass.done), (1, 1), "{pass:?}");
    assert_eq!(job(&db.store, other).await.status, JobStatus::Done);
    assert_eq!(job(&db.store, second).await.status, JobStatus::Pending);
    assert_eq!(
        target.tries("amy.second@nhs.example"),
        0,
        "held back by the first"
    );

    // Once the first is done, the second runs.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while job(&db.store, second).await.status != JobStatus::Done {
        assert!(std::time::Instant::now() < deadline, "the second never ran");
        tokio::time::sleep(Duration::from_millis(50)).await;
        worker::pass(&db.store, &target, None).await.unwrap();
    }
    let (a, b) = (job(&db.store, first).await, job(&db.store, second).await);
    assert_eq!(a.status, JobStatus::Done);
    assert!(a.finished_at <= b.finished_at, "in order: {a:?} {b:?}");
}
