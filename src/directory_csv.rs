//! `directory import` and `directory export`: the directory as CSV.
//!
//! Import is all or nothing: the rows are read a batch at a time, each batch checked row by
//! row and then written with a few multi-row statements, all in one transaction; a bad row
//! names its line and rolls back every row before it, so a file either lands whole or not at
//! all. Only one batch of rows is held in memory at a time.
//! Importing the same file twice changes nothing the second time.

use crate::action::AuditAction;
use crate::config_value::looks_like_address;
use crate::request::Role;
use crate::store::directory::{self, AccountStatus};
use crate::store::directory_batch;
use crate::store::journal::{self, NewAuditEvent};
use crate::store::{Conn, Store, StoreError};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::io::{Read, Write};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("line {line}: {message}")]
    Row { line: u64, message: String },
    #[error("{0}")]
    File(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an import changed.
#[derive(Debug, Default, Clone, Serialize, PartialEq, Eq)]
pub struct ImportSummary {
    pub rows: usize,
    pub organisations: usize,
    pub mailboxes: usize,
    pub accounts: usize,
    pub accounts_updated: usize,
    pub memberships: usize,
    pub memberships_updated: usize,
}

#[derive(Debug, Clone)]
struct Row {
    line: u64,
    organisation: String,
    mailbox: Option<String>,
    account: Option<String>,
    name: String,
    role: Option<Role>,
    status: AccountStatus,
}

const COLUMNS: [&str; 6] = [
    "organisation",
    "mailbox",
    "account",
    "name",
    "role",
    "status",
];

/// The file's rows, one at a time: an import holds one batch of rows in memory, not the file (a
/// national directory is millions of rows; issue 18).
struct RowReader<R: Read> {
    reader: csv::Reader<R>,
    index: [Option<usize>; 6],
    record: csv::StringRecord,
}

fn read_header<R: Read>(input: R) -> Result<RowReader<R>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(input);
    let headers = reader
        .headers()
        .map_err(|e| ImportError::File(format!("cannot read the header line: {e}")))?
        .clone();
    let mut index = [None; 6];
    for (i, h) in headers.iter().enumerate() {
        let h = h.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
        match COLUMNS.iter().position(|c| *c == h) {
            Some(p) if index[p].is_some() => {
                return Err(ImportError::Row {
                    line: 1,
                    message: format!("column `{h}` appears twice in the header"),
                });
            }
            Some(p) => index[p] = Some(i),
            None => {
                return Err(ImportError::Row {
                    line: 1,
                    message: format!("unknown column `{h}` (expected {})", COLUMNS.join(",")),
                });
            }
        }
    }
    for (p, col) in COLUMNS.iter().enumerate().take(5) {
        if index[p].is_none() {
            return Err(ImportError::Row {
                line: 1,
                message: format!(
                    "missing column `{col}` (header must be organisation,mailbox,account,name,role[,status])"
                ),
            });
        }
    }

    Ok(RowReader {
        reader,
        index,
        record: csv::StringRecord::new(),
    })
}

impl<R: Read> RowReader<R> {
    /// The next row with something in it, checked; `None` at the end of the file.
    fn next_row(&mut self) -> Result<Option<Row>, ImportError> {
        loop {
            let more = self
                .reader
                .read_record(&mut self.record)
                .map_err(|e| ImportError::Row {
                    line: e.position().map_or(0, |p| p.line()),
                    message: e.to_string(),
                })?;
            if !more {
                return Ok(None);
            }
            if let Some(row) = self.check()? {
                return Ok(Some(row));
            }
        }
    }

    /// The current record as a row; `None` when it is empty.
    fn check(&self) -> Result<Option<Row>, ImportError> {
        let record = &self.record;
        let index = &self.index;
        let line = record.position().map_or(0, |p| p.line());
        // Borrowed from the record: only what is kept is copied (issue 18: millions of rows).
        let get = |p: usize| index[p].and_then(|i| record.get(i)).unwrap_or("").trim();
        let bad = |message: String| ImportError::Row { line, message };
        if record.iter().all(|f| f.trim().is_empty()) {
            return Ok(None);
        }
        let organisation = crate::text::clean(get(0));
        if organisation.is_empty() {
            return Err(bad("`organisation` is empty".into()));
        }
        let address = |p: usize, what: &str| -> Result<Option<String>, ImportError> {
            let v = get(p).to_ascii_lowercase();
            if v.is_empty() {
                return Ok(None);
            }
            if !looks_like_address(&v) {
                return Err(bad(format!("{what} `{v}` is not an email address")));
            }
            Ok(Some(v))
        };
        let mailbox = address(1, "mailbox")?;
        let account = address(2, "account")?;
        let role_text = get(4);
        let role = if role_text.is_empty() {
            None
        } else {
            Some(role_text.parse::<Role>().map_err(bad)?)
        };
        if role.is_some() && (mailbox.is_none() || account.is_none()) {
            return Err(bad(
                "`role` is given, but a membership needs both `mailbox` and `account`".into(),
            ));
        }
        if mailbox.is_some() && account.is_some() && role.is_none() {
            return Err(bad("a row with both `mailbox` and `account` is a membership: `role` must be owner or member".into()));
        }
        if mailbox.is_some() && mailbox == account {
            return Err(bad("`mailbox` and `account` are the same address".into()));
        }
        let status = get(5).parse::<AccountStatus>().map_err(bad)?;
        // Names as the pipeline keeps them: no control, bidi or zero-width characters, no
        // formula, bounded (issue 13).
        let name = crate::text::clean(get(3));
        if let Some(why) = crate::text::name_problem(&name) {
            return Err(bad(format!(
                "name `{}` cannot be used: {why}",
                crate::text::clip(&name, 40)
            )));
        }
        if let Some(why) = crate::text::name_problem(&organisation) {
            return Err(bad(format!(
                "organisation `{}` cannot be used: {why}",
                crate::text::clip(&organisation, 40)
            )));
        }
        Ok(Some(Row {
            line,
            organisation,
            mailbox,
            account,
            name,
            role,
            status,
        }))
    }
}

/// Import a CSV file: all rows or none.
pub async fn import(
    store: &Store,
    input: impl Read,
    source: &str,
) -> Result<ImportSummary, ImportError> {
    let mut rows = read_header(input)?;
    let mut tx = store.begin().await?;
    directory_batch::plan_for_indexed_bulk(&mut tx).await?;
    let summary = apply_rows(&mut tx, &mut rows).await;
    match summary {
        Ok(summary) => {
            journal::insert_audit(
                &mut tx,
                &NewAuditEvent {
                    actor: "import",
                    on_behalf_of: None,
                    action: AuditAction::DirectoryImport.as_str(),
                    subject: None,
                    detail: json!({ "source": source, "summary": summary }),
                    request_id: None,
                    message_id: None,
                },
            )
            .await?;
            tx.commit().await.map_err(StoreError::from)?;
            Ok(summary)
        }
        Err(e) => {
            tx.rollback().await.map_err(StoreError::from)?;
            Err(e)
        }
    }
}

/// How many rows are checked and written together: ten statements or so per batch instead of
/// three or four per row (issue 18). Every statement of a batch binds at most three values per
/// row (the look-ups, the memberships) or eight (new accounts), far under the backends' limits.
const BATCH: usize = 1000;

/// The rows are read a batch at a time and each batch is checked and written in the caller's
/// transaction: a bad row stops the import, and the caller rolls back what the rows before it
/// did. A batch is checked row by row, in order, against what the database held before it
/// and what its earlier rows made, so a bad row is found at the same line, with the same
/// message, as when each row was applied alone; and a row the reader refuses is reported only
/// after the rows before it were checked.
async fn apply_rows<R: Read>(
    conn: &mut Conn,
    rows: &mut RowReader<R>,
) -> Result<ImportSummary, ImportError> {
    let mut s = ImportSummary::default();
    let mut progress = crate::ops::progress::Progress::unbounded("import", "rows");
    // Owners made members by this file: (line, mailbox id, mailbox, account).
    let mut demoted: Vec<(u64, i64, String, String)> = Vec::new();
    let mut batch: Vec<Row> = Vec::with_capacity(BATCH);
    loop {
        batch.clear();
        let mut unreadable = None;
        let mut end = false;
        while batch.len() < BATCH {
            match rows.next_row() {
                Ok(Some(row)) => batch.push(row),
                Ok(None) => {
                    end = true;
                    break;
                }
                Err(e) => {
                    unreadable = Some(e);
                    break;
                }
            }
        }
        let known = Known::of(conn, &batch).await?;
        let plan = known.check(&batch, &mut s)?;
        progress.inc(batch.len() as u64);
        if let Some(e) = unreadable {
            return Err(e);
        }
        plan.write(conn, &mut demoted).await?;
        if end {
            break;
        }
    }
    progress.finish();
    // The pipeline's rule, for imports too: a mailbox keeps at least one owner. Checked once
    // every row is in (a file may demote one owner and promote another), naming the line
    // that demoted the last one; nothing is applied.
    for (line, mailbox_id, mailbox, account) in demoted {
        let owners = directory::count_owners(conn, mailbox_id).await?;
        if owners == 0 {
            return Err(ImportError::Row {
                line,
                message: format!(
                    "this makes {account} a member, and {mailbox} would have no owner left: name another owner first"
                ),
            });
        }
    }
    Ok(s)
}

/// A mailbox a batch names: found in the database (`id`) or made by one of its rows.
struct KnownMailbox {
    id: Option<i64>,
    organisation: String,
}

/// An account a batch names, as its rows so far left it.
struct KnownAccount {
    /// `None`: made by one of the batch's rows.
    id: Option<i64>,
    organisation: String,
    name: String,
    status: AccountStatus,
    /// A row changed it (an existing account is written back once, at the end of the batch).
    changed: bool,
    /// A row changed its status: `status_changed_at` is now, even if a later row changed it
    /// back, as when each row was written alone.
    status_changed: bool,
    /// A row changed it and named it: its name keys are written again.
    rekey: bool,
}

/// A membership a batch names, as its rows so far left it.
struct KnownMembership {
    role: Role,
    /// In the database before the batch.
    existing: bool,
    changed: bool,
}

/// What the database holds of everything a batch names, then what its rows made of it.
#[derive(Default)]
struct Known {
    /// By name; `None`: made by one of the batch's rows.
    organisations: HashMap<String, Option<i64>>,
    mailboxes: HashMap<String, KnownMailbox>,
    accounts: HashMap<String, KnownAccount>,
    /// By (mailbox, account).
    memberships: HashMap<(String, String), KnownMembership>,
    /// What the batch makes, in the order of its rows.
    new_organisations: Vec<String>,
    new_mailboxes: Vec<String>,
    new_accounts: Vec<String>,
    new_memberships: Vec<(String, String)>,
    /// Owners the batch made members: (line, mailbox, account).
    demoted: Vec<(u64, String, String)>,
}

impl Known {
    /// Look up, in four statements, the organisations, mailboxes, accounts and memberships
    /// the batch's rows name; every address both as a mailbox and as an account, for the
    /// checks that one is not the other.
    async fn of(conn: &mut Conn, batch: &[Row]) -> Result<Known, ImportError> {
        let mut names: Vec<&str> = batch.iter().map(|r| r.organisation.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        let mut addresses: Vec<&str> = batch
            .iter()
            .flat_map(|r| [r.mailbox.as_deref(), r.account.as_deref()])
            .flatten()
            .collect();
        addresses.sort_unstable();
        addresses.dedup();
        let mut known = Known::default();
        for (name, id) in directory_batch::organisations_named(conn, &names).await? {
            known.organisations.insert(name, Some(id));
        }
        let mailboxes = directory_batch::mailboxes_at(conn, &addresses).await?;
        let accounts = directory_batch::accounts_at(conn, &addresses).await?;
        // Memberships only between mailboxes and accounts that exist and that a row pairs.
        let mut mailbox_ids = Vec::new();
        let mut account_ids = Vec::new();
        for row in batch {
            if let (Some(m), Some(a)) = (&row.mailbox, &row.account)
                && let (Some(m), Some(a)) = (mailboxes.get(m), accounts.get(a))
            {
                mailbox_ids.push(m.id);
                account_ids.push(a.id);
            }
        }
        mailbox_ids.sort_unstable();
        mailbox_ids.dedup();
        account_ids.sort_unstable();
        account_ids.dedup();
        let roles = directory_batch::memberships_among(conn, &mailbox_ids, &account_ids).await?;
        let mailbox_at: HashMap<i64, &str> = mailboxes
            .values()
            .map(|m| (m.id, m.address.as_str()))
            .collect();
        let account_at: HashMap<i64, &str> = accounts
            .values()
            .map(|a| (a.id, a.address.as_str()))
            .collect();
        for ((mailbox_id, account_id), role) in roles {
            if let (Some(m), Some(a)) = (mailbox_at.get(&mailbox_id), account_at.get(&account_id)) {
                known.memberships.insert(
                    ((*m).to_owned(), (*a).to_owned()),
                    KnownMembership {
                        role,
                        existing: true,
                        changed: false,
                    },
                );
            }
        }
        for (address, m) in mailboxes {
            known.mailboxes.insert(
                address,
                KnownMailbox {
                    id: Some(m.id),
                    organisation: m.organisation,
                },
            );
        }
        for (address, a) in accounts {
            known.accounts.insert(
                address,
                KnownAccount {
                    id: Some(a.id),
                    organisation: a.organisation,
                    name: a.name,
                    status: a.status,
                    changed: false,
                    status_changed: false,
                    rekey: false,
                },
            );
        }
        Ok(known)
    }

    /// Check the batch's rows in order, each against what the database held and what the
    /// rows before it made, counting what they change: the same checks, in the same order,
    /// as when each row was applied alone.
    fn check(mut self, batch: &[Row], s: &mut ImportSummary) -> Result<Known, ImportError> {
        for row in batch {
            s.rows += 1;
            let bad = |message: String| ImportError::Row {
                line: row.line,
                message,
            };
            if !self.organisations.contains_key(&row.organisation) {
                s.organisations += 1;
                self.organisations.insert(row.organisation.clone(), None);
                self.new_organisations.push(row.organisation.clone());
            }

            if let Some(address) = &row.mailbox {
                match self.mailboxes.get(address) {
                    Some(m) if m.organisation != row.organisation => {
                        return Err(bad(format!(
                            "mailbox {address} already belongs to {}",
                            m.organisation
                        )));
                    }
                    Some(_) => {}
                    None => {
                        if self.accounts.contains_key(address) {
                            return Err(bad(format!(
                                "{address} is already a personal account, not a mailbox"
                            )));
                        }
                        s.mailboxes += 1;
                        self.mailboxes.insert(
                            address.clone(),
                            KnownMailbox {
                                id: None,
                                organisation: row.organisation.clone(),
                            },
                        );
                        self.new_mailboxes.push(address.clone());
                    }
                }
            }

            if let Some(address) = &row.account {
                match self.accounts.get_mut(address) {
                    Some(a) if a.organisation != row.organisation => {
                        return Err(bad(format!(
                            "account {address} already belongs to {}",
                            a.organisation
                        )));
                    }
                    // An empty name keeps the stored one; a status is always given.
                    Some(a) => {
                        let renamed = !row.name.is_empty() && a.name != row.name;
                        let restatused = a.status != row.status;
                        if renamed || restatused {
                            s.accounts_updated += 1;
                            a.changed = true;
                            a.status_changed |= restatused;
                            a.status = row.status;
                            if !row.name.is_empty() {
                                a.name.clone_from(&row.name);
                                a.rekey = true;
                            }
                        }
                    }
                    None => {
                        if self.mailboxes.contains_key(address) {
                            return Err(bad(format!(
                                "{address} is already a shared mailbox, not a personal account"
                            )));
                        }
                        s.accounts += 1;
                        self.accounts.insert(
                            address.clone(),
                            KnownAccount {
                                id: None,
                                organisation: row.organisation.clone(),
                                name: row.name.clone(),
                                status: row.status,
                                changed: false,
                                status_changed: false,
                                rekey: false,
                            },
                        );
                        self.new_accounts.push(address.clone());
                    }
                }
            }

            if let (Some(mailbox), Some(account), Some(role)) =
                (&row.mailbox, &row.account, row.role)
            {
                let key = (mailbox.clone(), account.clone());
                match self.memberships.get_mut(&key) {
                    None => {
                        s.memberships += 1;
                        self.memberships.insert(
                            key.clone(),
                            KnownMembership {
                                role,
                                existing: false,
                                changed: false,
                            },
                        );
                        self.new_memberships.push(key);
                    }
                    Some(m) if m.role != role => {
                        s.memberships_updated += 1;
                        if m.role == Role::Owner {
                            self.demoted.push((row.line, key.0, key.1));
                        }
                        m.role = role;
                        m.changed = true;
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(self)
    }

    /// Write what the batch made and changed: a multi-row INSERT each for organisations,
    /// mailboxes, accounts and memberships, an UPDATE for each existing account or
    /// membership a row changed, nothing for rows that change nothing.
    async fn write(
        mut self,
        conn: &mut Conn,
        demoted: &mut Vec<(u64, i64, String, String)>,
    ) -> Result<(), ImportError> {
        let names: Vec<&str> = self.new_organisations.iter().map(String::as_str).collect();
        for (name, id) in directory_batch::insert_organisations(conn, &names).await? {
            self.organisations.insert(name, Some(id));
        }
        let organisation_id = |organisations: &HashMap<String, Option<i64>>, name: &str| {
            organisations
                .get(name)
                .copied()
                .flatten()
                .ok_or_else(|| unwritten("organisation", name))
        };

        let mut mailboxes = Vec::with_capacity(self.new_mailboxes.len());
        for address in &self.new_mailboxes {
            let m = self
                .mailboxes
                .get(address)
                .ok_or_else(|| unwritten("mailbox", address))?;
            mailboxes.push((
                organisation_id(&self.organisations, &m.organisation)?,
                address.as_str(),
            ));
        }
        for (address, id) in directory_batch::insert_mailboxes(conn, &mailboxes).await? {
            if let Some(m) = self.mailboxes.get_mut(&address) {
                m.id = Some(id);
            }
        }

        let mut accounts = Vec::with_capacity(self.new_accounts.len());
        for address in &self.new_accounts {
            let a = self
                .accounts
                .get(address)
                .ok_or_else(|| unwritten("account", address))?;
            accounts.push(directory_batch::ImportedAccount {
                organisation_id: organisation_id(&self.organisations, &a.organisation)?,
                address,
                name: &a.name,
                status: a.status,
            });
        }
        let account_ids = directory_batch::insert_accounts(conn, &accounts).await?;
        drop(accounts);
        for (address, id) in account_ids {
            if let Some(a) = self.accounts.get_mut(&address) {
                a.id = Some(id);
            }
        }

        let mailbox_id = |known: &Known, address: &str| {
            known
                .mailboxes
                .get(address)
                .and_then(|m| m.id)
                .ok_or_else(|| unwritten("mailbox", address))
        };
        let account_id = |known: &Known, address: &str| {
            known
                .accounts
                .get(address)
                .and_then(|a| a.id)
                .ok_or_else(|| unwritten("account", address))
        };
        let mut memberships = Vec::with_capacity(self.new_memberships.len());
        for key in &self.new_memberships {
            let m = self
                .memberships
                .get(key)
                .ok_or_else(|| unwritten("membership", &key.1))?;
            memberships.push((
                mailbox_id(&self, &key.0)?,
                account_id(&self, &key.1)?,
                m.role,
            ));
        }
        directory_batch::insert_memberships(conn, &memberships).await?;

        for a in self.accounts.values() {
            if let (Some(id), true) = (a.id, a.changed) {
                directory_batch::update_account(
                    conn,
                    &directory_batch::AccountChange {
                        id,
                        name: &a.name,
                        status: a.status,
                        status_changed: a.status_changed,
                        rekey: a.rekey,
                    },
                )
                .await?;
            }
        }
        for ((mailbox, account), m) in &self.memberships {
            if m.existing && m.changed {
                directory_batch::set_role(
                    conn,
                    mailbox_id(&self, mailbox)?,
                    account_id(&self, account)?,
                    m.role,
                )
                .await?;
            }
        }
        for (line, mailbox, account) in std::mem::take(&mut self.demoted) {
            demoted.push((line, mailbox_id(&self, &mailbox)?, mailbox, account));
        }
        Ok(())
    }
}

/// A row of the batch whose id the database did not give back: cannot happen while the
/// checks above hold, reported rather than assumed.
fn unwritten(what: &str, key: &str) -> ImportError {
    ImportError::File(format!("the import did not write {what} {key}"))
}

/// Write the directory as CSV, sorted, one row at a time (the database sorts; nothing but
/// the row being written is held in memory).
pub async fn export(store: &Store, out: impl Write) -> Result<(), ImportError> {
    let mut conn = store.read().await?;
    let mut w = csv::Writer::from_writer(out);
    let io = |e: csv::Error| ImportError::File(format!("cannot write CSV: {e}"));
    w.write_record(COLUMNS).map_err(io)?;
    directory::for_each_export_row(&mut conn, |r| {
        // Every cell defused (a name stored before issue 13, an organisation's name): the
        // export is opened in spreadsheets.
        w.write_record(
            [
                &r.organisation,
                &r.mailbox,
                &r.account,
                &r.name,
                &r.role,
                &r.status,
            ]
            .map(|cell| crate::text::csv_cell(&crate::text::clean(cell)).into_owned()),
        )
        .map_err(io)
    })
    .await?;
    w.flush()
        .map_err(|e| ImportError::File(format!("cannot write CSV: {e}")))?;
    Ok(())
}
