//! The per-mailbox counts that migration 0160's triggers keep (`members_active`,
//! `owners_active`, `members_inactive`, `owners_inactive`) against a full recount, after every
//! step of a seeded random run of directory changes through each path that writes them:
//! `postroom directory import` (new members, new roles, new statuses in the file), the store
//! functions the pipeline and retention use, and raw multi-row SQL on `memberships` and
//! `accounts` (moved mailboxes and accounts, flipped roles, deletes, upserts). Then the
//! directory page's at-risk view, page by page, against `MailboxSummary::at_risk` over the
//! recount; and the migration's backfill of a directory that was there before it. On SQLite
//! by default; on PostgreSQL with `POSTROOM_TEST_BACKEND=postgres`
//! (`scripts/test` runs both).

use crate::support::Instance;
use postroom::Role;
use postroom::accounts::AccountStatus;
use postroom::store::views::{self, MailboxSummary};
use postroom::store::{Backend, Store, directory, retention};
use std::fmt::Write as _;

/// A mailbox's four counts: members active, owners active, members inactive, owners inactive.
type Counts = (i64, i64, i64, i64);

/// The recount: every mailbox, its memberships counted by role and by status, with a plain
/// GROUP BY over the rows the triggers count.
const RECOUNT_SQL: &str = "SELECT m.id, \
    CAST(COALESCE(SUM(CASE WHEN ms.role = 'member' AND a.status = 'active' THEN 1 ELSE 0 END), 0) AS BIGINT) AS ma, \
    CAST(COALESCE(SUM(CASE WHEN ms.role = 'owner' AND a.status = 'active' THEN 1 ELSE 0 END), 0) AS BIGINT) AS oa, \
    CAST(COALESCE(SUM(CASE WHEN ms.role = 'member' AND a.status <> 'active' THEN 1 ELSE 0 END), 0) AS BIGINT) AS mi, \
    CAST(COALESCE(SUM(CASE WHEN ms.role = 'owner' AND a.status <> 'active' THEN 1 ELSE 0 END), 0) AS BIGINT) AS oi \
  FROM mailboxes m LEFT JOIN memberships ms ON ms.mailbox_id = m.id \
    LEFT JOIN accounts a ON a.id = ms.account_id \
  GROUP BY m.id ORDER BY m.id";

const STORED_SQL: &str = "SELECT id, members_active, owners_active, members_inactive, owners_inactive \
  FROM mailboxes ORDER BY id";

async fn rows(store: &Store, sql: &'static str) -> Vec<(i64, Counts)> {
    let rows: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(sql)
        .fetch_all(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter()
        .map(|(id, a, b, c, d)| (id, (a, b, c, d)))
        .collect()
}

/// The stored counts equal the recount for every mailbox; otherwise a panic naming each
/// mailbox that differs, the step that made it differ and the steps before it.
async fn assert_counts(store: &Store, log: &[String]) {
    assert_organisation_counts(store, log).await;
    assert_status_changes(store, log).await;
    let stored = rows(store, STORED_SQL).await;
    let recount = rows(store, RECOUNT_SQL).await;
    assert_eq!(stored.len(), recount.len());
    let wrong: Vec<String> = stored
        .iter()
        .zip(&recount)
        .filter(|(s, r)| s != r)
        .map(|(s, r)| {
            format!(
                "mailbox {}: stored {:?}, recounted {:?} (members active, owners active, members inactive, owners inactive)",
                s.0, s.1, r.1
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "counts wrong after step {}: {}\n{}\nsteps:\n{}",
        log.len(),
        log.last().map_or("(start)", String::as_str),
        wrong.join("\n"),
        log.join("\n")
    );
}

/// Each organisation's counts (mailboxes, accounts, active accounts: migration 0161; disabled
/// accounts: 0190), recounted.
const ORGANISATION_RECOUNT_SQL: &str = "SELECT o.id, \
    (SELECT COUNT(*) FROM mailboxes m WHERE m.organisation_id = o.id), \
    (SELECT COUNT(*) FROM accounts a WHERE a.organisation_id = o.id), \
    (SELECT COUNT(*) FROM accounts a WHERE a.organisation_id = o.id AND a.status = 'active'), \
    (SELECT COUNT(*) FROM accounts a WHERE a.organisation_id = o.id AND a.status = 'disabled') \
  FROM organisations o ORDER BY o.id";

const ORGANISATION_STORED_SQL: &str = "SELECT id, mailbox_count, account_count, \
    active_account_count, disabled_account_count FROM organisations ORDER BY id";

/// Every account whose status changed after it was created, as the directory page listed them
/// before migration 0190 (from the accounts themselves), by address.
const STATUS_CHANGES_RECOUNT_SQL: &str = "SELECT a.address, a.status, a.status_changed_at \
    FROM accounts a WHERE a.status_changed_at > a.created_at ORDER BY a.address";

/// The directory page's recent status changes, read from 0190's log, equal the accounts' own
/// record of them; otherwise a panic naming the step.
async fn assert_status_changes(store: &Store, log: &[String]) {
    let recount: Vec<(String, String, i64)> = sqlx::query_as(STATUS_CHANGES_RECOUNT_SQL)
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(recount.len() < 500, "more than one page of changes");
    let mut conn = store.read().await.unwrap();
    let mut listed: Vec<(String, String, i64)> = views::recent_status_changes(&mut conn, 0, 500)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.address, c.status.as_str().to_owned(), c.changed_at))
        .collect();
    drop(conn);
    listed.sort();
    assert_eq!(
        listed,
        recount,
        "recent status changes wrong after step {}: {}\nsteps:\n{}",
        log.len(),
        log.last().map_or("(start)", String::as_str),
        log.join("\n")
    );
}

/// Migration 0161's organisation counts equal a recount, or a panic naming the step.
async fn assert_organisation_counts(store: &Store, log: &[String]) {
    let read = |sql: &'static str| async move {
        let rows: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(sql)
            .fetch_all(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows
    };
    let stored = read(ORGANISATION_STORED_SQL).await;
    let recount = read(ORGANISATION_RECOUNT_SQL).await;
    assert_eq!(
        stored,
        recount,
        "organisation counts (id, mailboxes, accounts, active accounts, disabled accounts) wrong after step {}: {}\nsteps:\n{}",
        log.len(),
        log.last().map_or("(start)", String::as_str),
        log.join("\n")
    );
    // The new-account limit reads the accounts not disabled from these counts.
    let mut conn = store.read().await.unwrap();
    for (id, _, accounts, _, disabled) in &recount {
        assert_eq!(
            directory::count_accounts_in_organisation(&mut conn, *id)
                .await
                .unwrap(),
            accounts - disabled,
            "organisation {id}'s accounts not disabled, after step {}",
            log.len()
        );
    }
}

/// splitmix64: a fixed seed gives the same run on every machine and backend.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap()
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            Some(&items[self.below(items.len())])
        }
    }

    fn role(&mut self) -> Role {
        if self.chance(40) {
            Role::Owner
        } else {
            Role::Member
        }
    }

    /// Mostly active, so mailboxes move in and out of risk.
    fn status(&mut self) -> AccountStatus {
        match self.below(10) {
            0 | 1 => AccountStatus::Locked,
            2 => AccountStatus::Disabled,
            _ => AccountStatus::Active,
        }
    }
}

/// The directory as it stands, read before each step to choose what the step changes.
struct Snapshot {
    /// (id, name)
    organisations: Vec<(i64, String)>,
    /// (id, organisation id, address)
    mailboxes: Vec<(i64, i64, String)>,
    /// (id, organisation id, address)
    accounts: Vec<(i64, i64, String)>,
    /// (mailbox id, account id, role)
    memberships: Vec<(i64, i64, String)>,
}

impl Snapshot {
    async fn read(store: &Store) -> Snapshot {
        let pool = store.pool();
        Snapshot {
            organisations: sqlx::query_as("SELECT id, name FROM organisations ORDER BY id")
                .fetch_all(pool)
                .await
                .unwrap(),
            mailboxes: sqlx::query_as(
                "SELECT id, organisation_id, address FROM mailboxes ORDER BY id",
            )
            .fetch_all(pool)
            .await
            .unwrap(),
            accounts: sqlx::query_as("SELECT id, organisation_id, address FROM accounts ORDER BY id")
                .fetch_all(pool)
                .await
                .unwrap(),
            memberships: sqlx::query_as(
                "SELECT mailbox_id, account_id, role FROM memberships ORDER BY mailbox_id, account_id",
            )
            .fetch_all(pool)
            .await
            .unwrap(),
        }
    }

    fn organisation(&self, id: i64) -> &str {
        &self.organisations.iter().find(|o| o.0 == id).unwrap().1
    }

    fn has_membership(&self, mailbox: i64, account: i64) -> bool {
        self.memberships
            .iter()
            .any(|m| m.0 == mailbox && m.1 == account)
    }

    /// A mailbox and an account with no membership between them.
    fn unpaired(&self, rng: &mut Rng) -> Option<(i64, i64)> {
        for _ in 0..20 {
            let m = rng.pick(&self.mailboxes)?.0;
            let a = rng.pick(&self.accounts)?.0;
            if !self.has_membership(m, a) {
                return Some((m, a));
            }
        }
        None
    }
}

const ORGANISATIONS: [&str; 3] = ["North Trust", "South Trust", "East Trust"];
const NAMES: [&str; 8] = [
    "Alex Moss",
    "Bea Hart",
    "Cal Reed",
    "Dee Lamb",
    "Eli Ward",
    "Fay Cole",
    "Gus Penn",
    "Hal Dunn",
];

/// A CSV of new people in new and existing mailboxes, new roles and new statuses, imported
/// by the real binary. Returns what the step did, for the log.
fn import_step(
    i: &Instance,
    snap: &Snapshot,
    rng: &mut Rng,
    fresh: &mut u32,
    step: usize,
) -> String {
    let mut csv = String::from("organisation,mailbox,account,name,role,status\n");
    for _ in 0..1 + rng.below(8) {
        match rng.below(6) {
            // A new person in a new or an existing mailbox of one organisation.
            0 | 1 => {
                *fresh += 1;
                let existing = rng
                    .pick(&snap.mailboxes)
                    .map(|m| (snap.organisation(m.1).to_owned(), m.2.clone()));
                let (org, mailbox) = match existing {
                    Some(m) if rng.chance(55) => m,
                    _ => (
                        ORGANISATIONS[rng.below(ORGANISATIONS.len())].to_owned(),
                        format!("box{fresh:04}@nhs.example"),
                    ),
                };
                let name = NAMES[rng.below(NAMES.len())];
                writeln!(
                    csv,
                    "{org},{mailbox},person{fresh:04}@nhs.example,{name},{},{}",
                    rng.role(),
                    rng.status()
                )
                .unwrap();
            }
            // An existing membership with a new role (and the status the row gives).
            2 => {
                let same_org: Vec<_> = snap
                    .memberships
                    .iter()
                    .filter_map(|ms| {
                        let m = snap.mailboxes.iter().find(|m| m.0 == ms.0)?;
                        let a = snap.accounts.iter().find(|a| a.0 == ms.1)?;
                        (m.1 == a.1).then(|| (snap.organisation(m.1), &m.2, &a.2))
                    })
                    .collect();
                if let Some((org, mailbox, account)) = rng.pick(&same_org) {
                    writeln!(
                        csv,
                        "{org},{mailbox},{account},,{},{}",
                        rng.role(),
                        rng.status()
                    )
                    .unwrap();
                }
            }
            // An existing account with a new status (an account-only row).
            3 | 4 => {
                if let Some(a) = rng.pick(&snap.accounts) {
                    writeln!(
                        csv,
                        "{},,{},,,{}",
                        snap.organisation(a.1),
                        a.2,
                        rng.status()
                    )
                    .unwrap();
                }
            }
            // An existing account in another mailbox of its organisation.
            _ => {
                if let Some(a) = rng.pick(&snap.accounts) {
                    let theirs: Vec<_> = snap.mailboxes.iter().filter(|m| m.1 == a.1).collect();
                    if let Some(m) = rng.pick(&theirs) {
                        writeln!(
                            csv,
                            "{},{},{},,{},{}",
                            snap.organisation(a.1),
                            m.2,
                            a.2,
                            rng.role(),
                            rng.status()
                        )
                        .unwrap();
                    }
                }
            }
        }
    }
    let file = i.dir.path().join(format!("step{step}.csv"));
    std::fs::write(&file, &csv).unwrap();
    let out = i
        .cmd()
        .args(["directory", "import", file.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The one refusal these files can meet: a mailbox's last owner made a member. The whole
    // file is rolled back, and the counts with it.
    assert!(
        out.status.success() || stderr.contains("no owner left"),
        "import failed: {stderr}\n{csv}"
    );
    format!(
        "import ({}):\n{}",
        if out.status.success() {
            "applied"
        } else {
            "refused"
        },
        csv.trim_end()
    )
}

/// The store functions the pipeline, the staff page and retention write the directory with,
/// a few in one transaction (sometimes rolled back).
async fn store_step(store: &Store, snap: &Snapshot, rng: &mut Rng) -> String {
    let mut tx = store.begin().await.unwrap();
    let mut did = Vec::new();
    let mut deleted = Vec::new();
    for _ in 0..1 + rng.below(4) {
        let accounts: Vec<_> = snap
            .accounts
            .iter()
            .filter(|a| !deleted.contains(&a.0))
            .collect();
        match rng.below(7) {
            0 | 1 => {
                if let (Some(m), Some(a)) = (rng.pick(&snap.mailboxes), rng.pick(&accounts)) {
                    let role = rng.role();
                    let was = directory::upsert_membership(&mut tx, m.0, a.0, role)
                        .await
                        .unwrap();
                    did.push(format!(
                        "upsert_membership({}, {}, {role}) was {was:?}",
                        m.0, a.0
                    ));
                }
            }
            2 => {
                let live: Vec<_> = snap
                    .memberships
                    .iter()
                    .filter(|ms| !deleted.contains(&ms.1))
                    .collect();
                if let Some(ms) = rng.pick(&live) {
                    let gone = directory::remove_membership(&mut tx, ms.0, ms.1)
                        .await
                        .unwrap();
                    did.push(format!("remove_membership({}, {}) = {gone}", ms.0, ms.1));
                }
            }
            3 | 4 => {
                if let Some(a) = rng.pick(&accounts) {
                    let status = rng.status();
                    directory::set_status(&mut tx, a.0, status).await.unwrap();
                    did.push(format!("set_status({}, {status})", a.0));
                }
            }
            5 => {
                if let Some(a) = rng.pick(&accounts) {
                    directory::set_temporary_password(&mut tx, a.0, "not-a-real-hash")
                        .await
                        .unwrap();
                    did.push(format!("set_temporary_password({})", a.0));
                }
            }
            _ => {
                if let Some(a) = rng.pick(&accounts) {
                    retention::delete_account(&mut tx, a.0).await.unwrap();
                    deleted.push(a.0);
                    did.push(format!("retention::delete_account({})", a.0));
                }
            }
        }
    }
    let commit = rng.chance(85);
    if commit {
        tx.commit().await.unwrap();
    } else {
        tx.rollback().await.unwrap();
    }
    format!(
        "store ({}): {}",
        if commit { "committed" } else { "rolled back" },
        did.join("; ")
    )
}

/// Raw statements on many rows at once: what a migration, a repair by hand or a future code
/// path might write, which the row-level triggers must count row by row.
async fn raw_step(store: &Store, snap: &Snapshot, rng: &mut Rng) -> String {
    let role = |rng: &mut Rng| rng.role().to_string();
    let sql = match rng.below(10) {
        // Several new memberships in one INSERT.
        0 => {
            let mut values = Vec::new();
            let mut pairs = Vec::new();
            for _ in 0..2 + rng.below(4) {
                if let Some(p) = snap.unpaired(rng)
                    && !pairs.contains(&p)
                {
                    pairs.push(p);
                    values.push(format!("({}, {}, '{}', 0)", p.0, p.1, role(rng)));
                }
            }
            if values.is_empty() {
                return "raw: nothing to insert".into();
            }
            format!(
                "INSERT INTO memberships (mailbox_id, account_id, role, created_at) VALUES {}",
                values.join(", ")
            )
        }
        // An upsert of new and existing memberships in one statement.
        1 => {
            let mut values = Vec::new();
            let mut pairs = Vec::new();
            for _ in 0..2 + rng.below(4) {
                let p = if rng.chance(50) {
                    rng.pick(&snap.memberships).map(|m| (m.0, m.1))
                } else {
                    snap.unpaired(rng)
                };
                if let Some(p) = p
                    && !pairs.contains(&p)
                {
                    pairs.push(p);
                    values.push(format!("({}, {}, '{}', 0)", p.0, p.1, role(rng)));
                }
            }
            if values.is_empty() {
                return "raw: nothing to upsert".into();
            }
            format!(
                "INSERT INTO memberships (mailbox_id, account_id, role, created_at) VALUES {} \
                 ON CONFLICT (mailbox_id, account_id) DO UPDATE SET role = excluded.role",
                values.join(", ")
            )
        }
        // Every membership of one mailbox moved to another (those whose account is not
        // there already), some with a new role too.
        2 => {
            let (Some(from), Some(to)) = (rng.pick(&snap.mailboxes), rng.pick(&snap.mailboxes))
            else {
                return "raw: no mailboxes".into();
            };
            let also_role = if rng.chance(50) {
                format!(", role = '{}'", role(rng))
            } else {
                String::new()
            };
            format!(
                "UPDATE memberships SET mailbox_id = {}{also_role} WHERE mailbox_id = {} \
                 AND account_id NOT IN (SELECT account_id FROM memberships WHERE mailbox_id = {})",
                to.0, from.0, to.0
            )
        }
        // Every membership of one account handed to another.
        3 => {
            let (Some(from), Some(to)) = (rng.pick(&snap.accounts), rng.pick(&snap.accounts))
            else {
                return "raw: no accounts".into();
            };
            format!(
                "UPDATE memberships SET account_id = {} WHERE account_id = {} \
                 AND mailbox_id NOT IN (SELECT mailbox_id FROM memberships WHERE account_id = {})",
                to.0, from.0, to.0
            )
        }
        // Roles flipped in several mailboxes.
        4 => {
            let ids: Vec<String> = (0..1 + rng.below(3))
                .filter_map(|_| rng.pick(&snap.mailboxes).map(|m| m.0.to_string()))
                .collect();
            format!(
                "UPDATE memberships SET role = CASE WHEN role = 'owner' THEN 'member' ELSE 'owner' END \
                 WHERE mailbox_id IN ({})",
                ids.join(", ")
            )
        }
        // Counted columns written with the values they have, and a column that is not
        // counted: nothing moves.
        5 => {
            "UPDATE memberships SET role = role, mailbox_id = mailbox_id, account_id = account_id, \
              created_at = created_at + 1"
                .to_owned()
        }
        // Several memberships deleted: a mailbox's, an account's or one role's.
        6 => match (
            rng.below(3),
            rng.pick(&snap.mailboxes),
            rng.pick(&snap.accounts),
        ) {
            (0, Some(m), _) => format!("DELETE FROM memberships WHERE mailbox_id = {}", m.0),
            (1, _, Some(a)) => format!("DELETE FROM memberships WHERE account_id = {}", a.0),
            (_, Some(m), _) => format!(
                "DELETE FROM memberships WHERE role = '{}' AND mailbox_id <= {}",
                role(rng),
                m.0
            ),
            _ => return "raw: nothing to delete".into(),
        },
        // An organisation's accounts change status at once (locked ↔ disabled among them).
        7 => {
            let Some(o) = rng.pick(&snap.organisations) else {
                return "raw: no organisations".into();
            };
            let (s1, s2) = (rng.status(), rng.status());
            format!(
                "UPDATE accounts SET status = CASE WHEN id % 2 = 0 THEN '{s1}' ELSE '{s2}' END \
                 WHERE organisation_id = {}",
                o.0
            )
        }
        // An account, or a mailbox, moved to another organisation (the organisations'
        // counts, migration 0161).
        8 => match (
            rng.chance(50),
            rng.pick(&snap.accounts),
            rng.pick(&snap.mailboxes),
            rng.pick(&snap.organisations),
        ) {
            (true, Some(a), _, Some(o)) => format!(
                "UPDATE accounts SET organisation_id = {}, status = '{}' WHERE id = {}",
                o.0,
                rng.status(),
                a.0
            ),
            (false, _, Some(m), Some(o)) => format!(
                "UPDATE mailboxes SET organisation_id = {} WHERE id = {}",
                o.0, m.0
            ),
            _ => return "raw: nothing to move".into(),
        },
        // Accounts changed without their status: nothing moves.
        _ => "UPDATE accounts SET name = name, status = status".to_owned(),
    };
    let mut tx = store.begin().await.unwrap();
    let done = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
        .execute(&mut *tx)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    tx.commit().await.unwrap();
    format!("raw ({} rows): {sql}", done.rows_affected())
}

/// A seeded random run of directory changes through every path that writes memberships or
/// statuses; after each step every mailbox's stored counts equal a full recount.
#[tokio::test]
async fn the_counts_match_a_recount_after_every_change() {
    let i = Instance::new("");
    let store = Store::open(&i.database()).await.unwrap();
    let mut rng = Rng(0x18_0160);
    let mut fresh = 0u32;
    let mut log: Vec<String> = Vec::new();
    // How many steps of each path ran (each must have run).
    let mut ran = [0usize; 3];
    for step in 0..90 {
        let snap = Snapshot::read(&store).await;
        // An import first, so the other paths have a directory to change.
        let path = if step < 2 { 0 } else { rng.below(3) };
        ran[path] += 1;
        let did = match path {
            0 => import_step(&i, &snap, &mut rng, &mut fresh, step),
            1 => store_step(&store, &snap, &mut rng).await,
            _ => raw_step(&store, &snap, &mut rng).await,
        };
        log.push(format!("{step}: {did}"));
        assert_counts(&store, &log).await;
    }
    assert!(ran.iter().all(|n| *n >= 15), "{ran:?}");
    let changed: Vec<(String, String, i64)> = sqlx::query_as(STATUS_CHANGES_RECOUNT_SQL)
        .fetch_all(store.pool())
        .await
        .unwrap();
    assert!(changed.len() >= 5, "only {} status changes", changed.len());
    // The run reached the cases that matter: mailboxes with each count non-zero, and some at
    // risk and some not.
    let stored = rows(&store, STORED_SQL).await;
    assert!(stored.len() >= 20, "{} mailboxes", stored.len());
    for (k, what) in [
        "members active",
        "owners active",
        "members inactive",
        "owners inactive",
    ]
    .iter()
    .enumerate()
    {
        let n = stored
            .iter()
            .filter(|(_, c)| [c.0, c.1, c.2, c.3][k] > 0)
            .count();
        assert!(n >= 3, "only {n} mailboxes with {what}");
    }
    store.close().await;
}

/// Every mailbox as the recount has it, in the directory page's order (organisation name,
/// then address).
async fn recounted_summaries(store: &Store) -> Vec<MailboxSummary> {
    let rows: Vec<(i64, String, String, i64, i64, i64)> = sqlx::query_as(
        "SELECT m.id, m.address, o.name, \
         CAST(COALESCE(SUM(CASE WHEN ms.role = 'member' AND a.status = 'active' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN ms.role = 'owner' AND a.status = 'active' THEN 1 ELSE 0 END), 0) AS BIGINT), \
         CAST(COALESCE(SUM(CASE WHEN a.status <> 'active' THEN 1 ELSE 0 END), 0) AS BIGINT) \
         FROM mailboxes m JOIN organisations o ON o.id = m.organisation_id \
         LEFT JOIN memberships ms ON ms.mailbox_id = m.id \
         LEFT JOIN accounts a ON a.id = ms.account_id \
         GROUP BY m.id, m.address, o.name",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let mut all: Vec<MailboxSummary> = rows
        .into_iter()
        .map(
            |(id, address, organisation, members, owners, inactive)| MailboxSummary {
                id,
                address,
                organisation,
                members,
                owners,
                inactive,
            },
        )
        .collect();
    // Names and addresses of one shape each (below), so this order is the database's under
    // any collation.
    all.sort_by(|a, b| (&a.organisation, &a.address).cmp(&(&b.organisation, &b.address)));
    all
}

/// What the directory page shows, page after page of `limit`, until a short page.
async fn walk(store: &Store, at_risk_only: bool, limit: i64) -> (Vec<MailboxSummary>, usize) {
    let mut conn = store.read().await.unwrap();
    let mut all = Vec::new();
    let mut pages = 0;
    loop {
        let page = views::mailboxes(&mut conn, at_risk_only, limit, all.len() as i64)
            .await
            .unwrap();
        pages += 1;
        let n = page.len();
        assert!(n as i64 <= limit, "a page of {n} for a limit of {limit}");
        all.extend(page);
        if (n as i64) < limit {
            return (all, pages);
        }
    }
}

fn key(m: &MailboxSummary) -> (i64, &str, &str, i64, i64, i64) {
    (
        m.id,
        m.address.as_str(),
        m.organisation.as_str(),
        m.members,
        m.owners,
        m.inactive,
    )
}

async fn assert_pages(store: &Store, when: &str) {
    let expected = recounted_summaries(store).await;
    let at_risk: Vec<_> = expected.iter().filter(|m| m.at_risk()).collect();
    let healthy = expected.len() - at_risk.len();
    assert!(
        at_risk.len() > 8 && healthy > 3,
        "{when}: {} at risk, {healthy} not: not a test of the view",
        at_risk.len()
    );
    let (shown, pages) = walk(store, true, 4).await;
    assert!(pages >= 3, "{when}: {pages} pages");
    assert_eq!(
        shown.iter().map(key).collect::<Vec<_>>(),
        at_risk.iter().map(|m| key(m)).collect::<Vec<_>>(),
        "{when}: the at-risk view, page by page"
    );
    // The whole directory, page by page, shows the same counts.
    let (shown, _) = walk(store, false, 7).await;
    assert_eq!(
        shown.iter().map(key).collect::<Vec<_>>(),
        expected.iter().map(key).collect::<Vec<_>>(),
        "{when}: the directory, page by page"
    );
}

/// The at-risk view returns exactly the mailboxes `MailboxSummary::at_risk` picks from a
/// recount, in the page's order, across several pages; and again after the directory changes
/// (accounts disabled and brought back, owners made members, memberships removed).
#[tokio::test]
async fn the_at_risk_view_pages_through_exactly_the_mailboxes_at_risk() {
    let i = Instance::new("");
    // Each mailbox one of eight shapes: (role, status) of its people.
    let shapes: [&[(&str, &str)]; 8] = [
        &[("owner", "active"), ("member", "active")],
        &[("owner", "active")],
        &[("member", "active"), ("member", "active")],
        &[("owner", "active"), ("member", "locked")],
        &[
            ("owner", "disabled"),
            ("member", "active"),
            ("member", "active"),
        ],
        &[("owner", "active"), ("owner", "active")],
        &[],
        &[
            ("owner", "active"),
            ("member", "active"),
            ("member", "disabled"),
        ],
    ];
    let mut csv = String::from("organisation,mailbox,account,name,role,status\n");
    for org in ["Trust A", "Trust B", "Trust C"] {
        let tag = org.to_ascii_lowercase().replace(' ', "-");
        // Written out of order: the page sorts.
        for n in [5, 11, 0, 8, 3, 9, 1, 6, 10, 2, 7, 4] {
            let mailbox = format!("shared-{tag}-{n:02}@nhs.example");
            let people = shapes[n % shapes.len()];
            if people.is_empty() {
                writeln!(csv, "{org},{mailbox},,,,").unwrap();
            }
            for (k, (role, status)) in people.iter().enumerate() {
                writeln!(
                    csv,
                    "{org},{mailbox},person-{tag}-{n:02}-{k}@nhs.example,Pat Doe,{role},{status}"
                )
                .unwrap();
            }
        }
    }
    let file = i.dir.path().join("directory.csv");
    std::fs::write(&file, &csv).unwrap();
    i.ok(&["directory", "import", file.to_str().unwrap()]);

    let store = Store::open(&i.database()).await.unwrap();
    assert_counts(&store, &["import".into()]).await;
    assert_pages(&store, "after the import").await;

    // Trust B's people locked, then half brought back; an owner made a member; a member
    // removed: mailboxes fall into risk and out of it.
    let ids = |sql: &'static str| {
        let pool = store.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_all(&pool)
                .await
                .unwrap()
        }
    };
    let trust_b = ids(
        "SELECT a.id FROM accounts a JOIN organisations o ON o.id = a.organisation_id \
         WHERE o.name = 'Trust B' ORDER BY a.id",
    )
    .await;
    let mut tx = store.begin().await.unwrap();
    for id in &trust_b {
        directory::set_status(&mut tx, *id, AccountStatus::Locked)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    assert_pages(&store, "with Trust B locked").await;

    let mut tx = store.begin().await.unwrap();
    for id in trust_b.iter().step_by(2) {
        directory::set_temporary_password(&mut tx, *id, "not-a-real-hash")
            .await
            .unwrap();
    }
    let owners = ids(
        "SELECT ms.account_id FROM memberships ms JOIN mailboxes m ON m.id = ms.mailbox_id \
         WHERE ms.role = 'owner' AND m.address LIKE 'shared-trust-a-%' ORDER BY ms.account_id",
    )
    .await;
    let mailbox_of = ids(
        "SELECT ms.mailbox_id FROM memberships ms JOIN mailboxes m ON m.id = ms.mailbox_id \
         WHERE ms.role = 'owner' AND m.address LIKE 'shared-trust-a-%' ORDER BY ms.account_id",
    )
    .await;
    for (account, mailbox) in owners.iter().zip(&mailbox_of).step_by(3) {
        directory::upsert_membership(&mut tx, *mailbox, *account, Role::Member)
            .await
            .unwrap();
    }
    let members = ids(
        "SELECT ms.account_id FROM memberships ms JOIN mailboxes m ON m.id = ms.mailbox_id \
         WHERE ms.role = 'member' AND m.address LIKE 'shared-trust-c-%' ORDER BY ms.account_id",
    )
    .await;
    let mailbox_of = ids(
        "SELECT ms.mailbox_id FROM memberships ms JOIN mailboxes m ON m.id = ms.mailbox_id \
         WHERE ms.role = 'member' AND m.address LIKE 'shared-trust-c-%' ORDER BY ms.account_id",
    )
    .await;
    for (account, mailbox) in members.iter().zip(&mailbox_of).step_by(2) {
        assert!(
            directory::remove_membership(&mut tx, *mailbox, *account)
                .await
                .unwrap()
        );
    }
    tx.commit().await.unwrap();
    assert_counts(&store, &["changes".into()]).await;
    assert_pages(&store, "after the changes").await;
    store.close().await;
}

/// An upgrade: a database with a directory, migrated to 0150, then to the end. Migration
/// 0160's backfill counts the memberships already there (mailboxes of every shape, a mailbox
/// without anyone, accounts of each status).
#[tokio::test]
async fn the_migration_counts_the_memberships_already_there() {
    let i = Instance::new("");
    let cfg = i.database();
    let backend = if cfg.url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    let store = Store::connect(&cfg).await.unwrap();
    let before = sqlx::migrate::Migrator::new(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend),
    )
    .await
    .unwrap();
    before.run_to(150, store.pool()).await.unwrap();
    let mut rng = Rng(0x0160_0150);
    let mut sql = vec![
        "INSERT INTO organisations (id, name, created_at) VALUES (1, 'North Trust', 0), (2, 'South Trust', 0)"
            .to_owned(),
    ];
    let mut mailboxes = Vec::new();
    for m in 1..=15 {
        mailboxes.push(format!("({m}, {}, 'box{m:02}@nhs.example', 0)", 1 + m % 2));
    }
    sql.push(format!(
        "INSERT INTO mailboxes (id, organisation_id, address, created_at) VALUES {}",
        mailboxes.join(", ")
    ));
    let mut accounts = Vec::new();
    for a in 1..=30 {
        accounts.push(format!(
            "({a}, {}, 'person{a:02}@nhs.example', 'Pat Doe', '{}', {}, 0)",
            1 + a % 2,
            rng.status(),
            // A third changed status after they were created (migration 0190's log starts
            // with them).
            if a % 3 == 0 { 1_000 + a } else { 0 }
        ));
    }
    sql.push(format!(
        "INSERT INTO accounts (id, organisation_id, address, name, status, status_changed_at, created_at) \
         VALUES {}",
        accounts.join(", ")
    ));
    let mut memberships = Vec::new();
    // Mailbox 15 keeps nobody.
    for m in 1..=14 {
        let mut taken = Vec::new();
        for _ in 0..rng.below(6) {
            let a = 1 + rng.below(30);
            if !taken.contains(&a) {
                taken.push(a);
                memberships.push(format!("({m}, {a}, '{}', 0)", rng.role()));
            }
        }
    }
    sql.push(format!(
        "INSERT INTO memberships (mailbox_id, account_id, role, created_at) VALUES {}",
        memberships.join(", ")
    ));
    for s in sql {
        sqlx::query(sqlx::AssertSqlSafe(s.clone()))
            .execute(store.pool())
            .await
            .unwrap_or_else(|e| panic!("{s}: {e}"));
    }
    store.close().await;

    let store = Store::open(&cfg).await.unwrap();
    assert_counts(
        &store,
        &["migration 0160 over an existing directory".into()],
    )
    .await;
    let stored = rows(&store, STORED_SQL).await;
    for (k, what) in [
        "members active",
        "owners active",
        "members inactive",
        "owners inactive",
    ]
    .iter()
    .enumerate()
    {
        let n = stored
            .iter()
            .filter(|(_, c)| [c.0, c.1, c.2, c.3][k] > 0)
            .count();
        assert!(n >= 2, "only {n} mailboxes with {what}");
    }
    // Migration 0190's log begins with the ten accounts changed before it.
    let mut conn = store.read().await.unwrap();
    let changes = views::recent_status_changes(&mut conn, 0, 500)
        .await
        .unwrap();
    assert_eq!(changes.len(), 10, "{changes:?}");
    drop(conn);
    store.close().await;
}

/// An account's status change that leaves its mailbox as much at risk as it was updates the
/// mailbox's counts without touching its indexes: on PostgreSQL a heap-only (HOT) update,
/// which migration 0180 made possible by naming a generated `at_risk` column in the at-risk
/// index instead of the counts. One that puts a mailbox at risk still enters it in the index
/// (not HOT), and the at-risk view shows it. The account's own update is HOT in both cases: no
/// index names its status or when it changed (migration 0190). PostgreSQL counts each
/// transaction's updates in `pg_stat_xact_user_tables`; SQLite updates in place, so there the
/// test checks the view.
#[tokio::test]
async fn a_status_change_updates_the_counts_without_touching_the_indexes() {
    let i = Instance::new("");
    let csv = "organisation,mailbox,account,name,role,status\n\
        Trust A,shared-big@nhs.example,big-owner@nhs.example,Pat Doe,owner,active\n\
        Trust A,shared-big@nhs.example,big-1@nhs.example,Pat Doe,member,active\n\
        Trust A,shared-big@nhs.example,big-2@nhs.example,Pat Doe,member,active\n\
        Trust A,shared-big@nhs.example,big-3@nhs.example,Pat Doe,member,active\n\
        Trust A,shared-pair@nhs.example,pair-owner@nhs.example,Pat Doe,owner,active\n\
        Trust A,shared-pair@nhs.example,pair-1@nhs.example,Pat Doe,member,active\n";
    let file = i.dir.path().join("directory.csv");
    std::fs::write(&file, csv).unwrap();
    i.ok(&["directory", "import", file.to_str().unwrap()]);
    let store = Store::open(&i.database()).await.unwrap();
    let at_risk = |store: &Store| {
        let pool = store.pool().clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT address FROM mailboxes WHERE at_risk ORDER BY address",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert!(at_risk(&store).await.is_empty());

    // PostgreSQL's updates of mailboxes, all and HOT, as this connection has them: the
    // transaction's, plus those of earlier transactions not yet sent to the statistics (it
    // sends them at most once a second), hence read before and after.
    // SQLite has no such count: None.
    // Mailboxes' (updates, HOT), then accounts'.
    type Updates = ((i64, i64), (i64, i64));
    async fn updates(tx: &mut postroom::store::Tx, backend: Backend) -> Option<Updates> {
        let read = async |tx: &mut postroom::store::Tx, table: &str| -> (i64, i64) {
            sqlx::query_as(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables \
                 WHERE relname = $1",
            )
            .bind(table)
            .fetch_one(&mut **tx)
            .await
            .unwrap()
        };
        match backend {
            Backend::Postgres => Some((read(tx, "mailboxes").await, read(tx, "accounts").await)),
            Backend::Sqlite => None,
        }
    }
    // Locks `address` in a transaction of its own; on PostgreSQL, how many updates of
    // mailboxes that made, and how many of them were HOT.
    let lock = |address: &'static str| {
        let store = &store;
        async move {
            let mut tx = store.begin().await.unwrap();
            let id: i64 = sqlx::query_scalar("SELECT id FROM accounts WHERE address = $1")
                .bind(address)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            let before = updates(&mut tx, store.backend()).await;
            directory::set_status(&mut tx, id, AccountStatus::Locked)
                .await
                .unwrap();
            let after = updates(&mut tx, store.backend()).await;
            tx.commit().await.unwrap();
            before.zip(after).map(|(b, a)| {
                (
                    (a.0.0 - b.0.0, a.0.1 - b.0.1),
                    (a.1.0 - b.1.0, a.1.1 - b.1.1),
                )
            })
        }
    };

    // shared-big keeps an active owner and two active members: not at risk before or after.
    let big = lock("big-1@nhs.example").await;
    assert!(at_risk(&store).await.is_empty());
    // shared-pair is left with its owner alone: at risk.
    let pair = lock("pair-1@nhs.example").await;
    assert_eq!(at_risk(&store).await, ["shared-pair@nhs.example"]);
    if store.backend() == Backend::Postgres {
        assert_eq!(
            big.map(|u| u.0),
            Some((1, 1)),
            "shared-big's counts: (updates, HOT)"
        );
        assert_eq!(
            pair.map(|u| u.0),
            Some((1, 0)),
            "shared-pair's counts: (updates, HOT)"
        );
        // The account itself: no index names its status or when it changed (migration 0190).
        assert_eq!(
            big.map(|u| u.1),
            Some((1, 1)),
            "big-1's account: (updates, HOT)"
        );
        assert_eq!(
            pair.map(|u| u.1),
            Some((1, 1)),
            "pair-1's account: (updates, HOT)"
        );
    }
    assert_counts(&store, &["locks".into()]).await;
    store.close().await;
}
