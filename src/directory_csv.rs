//! `directory import` and `directory export`: the directory as CSV.
//!
//! Import is all or nothing: the rows are checked and applied one by one as they are read, in
//! one transaction, and a bad row names its line and rolls back every row before it, so a
//! file either lands whole or not at all. Only one row is held in memory at a time.
//! Importing the same file twice changes nothing the second time.

use crate::action::AuditAction;
use crate::config_value::looks_like_address;
use crate::request::Role;
use crate::store::directory::{self, AccountStatus, NewAccount};
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

/// The file's rows, one at a time: an import holds one row in memory, not the file (a
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
        let get = |p: usize| {
            index[p]
                .and_then(|i| record.get(i))
                .unwrap_or("")
                .trim()
                .to_owned()
        };
        let bad = |message: String| ImportError::Row { line, message };
        if record.iter().all(|f| f.trim().is_empty()) {
            return Ok(None);
        }
        let organisation = crate::text::clean(&get(0));
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
        let name = crate::text::clean(&get(3));
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

/// Each row is checked and applied as it is read, in the caller's transaction: a bad row
/// stops the import, and the caller rolls back what the rows before it did.
async fn apply_rows<R: Read>(
    conn: &mut Conn,
    rows: &mut RowReader<R>,
) -> Result<ImportSummary, ImportError> {
    let mut s = ImportSummary::default();
    let mut progress = crate::ops::progress::Progress::unbounded("import", "rows");
    // Owners made members by this file: (line, mailbox id, mailbox, account).
    let mut demoted: Vec<(u64, i64, Option<String>, Option<String>)> = Vec::new();
    // What earlier rows found or made, so that each row does not look its organisation and
    // mailbox up again: inside this transaction nobody else writes the directory (issue 18:
    // two statements of six per row). Organisations are few, mailboxes a few per hundred
    // accounts: (id, organisation id, organisation) by address.
    let mut organisations: HashMap<String, i64> = HashMap::new();
    let mut mailboxes: HashMap<String, (i64, i64, String)> = HashMap::new();
    while let Some(row) = rows.next_row()? {
        let row = &row;
        s.rows += 1;
        progress.inc(1);
        let bad = |message: String| ImportError::Row {
            line: row.line,
            message,
        };
        let org_id = match organisations.get(&row.organisation) {
            Some(id) => *id,
            None => {
                let id = match directory::find_organisation_id(conn, &row.organisation).await? {
                    Some(id) => id,
                    None => {
                        s.organisations += 1;
                        directory::ensure_organisation(conn, &row.organisation).await?
                    }
                };
                organisations.insert(row.organisation.clone(), id);
                id
            }
        };

        let mailbox_id = match &row.mailbox {
            None => None,
            Some(address) => {
                let known = match mailboxes.get(address) {
                    Some(m) => Some(m.clone()),
                    None => directory::find_mailbox(conn, address)
                        .await?
                        .map(|m| (m.id, m.organisation_id, m.organisation)),
                };
                Some(match known {
                    Some((_, organisation_id, organisation)) if organisation_id != org_id => {
                        return Err(bad(format!(
                            "mailbox {address} already belongs to {organisation}"
                        )));
                    }
                    Some(m) => {
                        let id = m.0;
                        mailboxes.entry(address.clone()).or_insert(m);
                        id
                    }
                    None => {
                        if directory::find_account(conn, address).await?.is_some() {
                            return Err(bad(format!(
                                "{address} is already a personal account, not a mailbox"
                            )));
                        }
                        s.mailboxes += 1;
                        let id = directory::ensure_mailbox(conn, org_id, address).await?;
                        mailboxes.insert(address.clone(), (id, org_id, row.organisation.clone()));
                        id
                    }
                })
            }
        };

        // A new account has no membership yet: its row's is inserted without a look-up.
        let mut new_account = false;
        let account_id = match &row.account {
            None => None,
            Some(address) => Some(match directory::find_account(conn, address).await? {
                Some(a) if a.organisation_id != org_id => {
                    return Err(bad(format!(
                        "account {address} already belongs to {}",
                        a.organisation
                    )));
                }
                Some(a) => {
                    if directory::update_account_from_import(conn, a.id, &row.name, row.status)
                        .await?
                    {
                        s.accounts_updated += 1;
                    }
                    a.id
                }
                None => {
                    if directory::find_mailbox(conn, address).await?.is_some() {
                        return Err(bad(format!(
                            "{address} is already a shared mailbox, not a personal account"
                        )));
                    }
                    s.accounts += 1;
                    new_account = true;
                    directory::insert_account(
                        conn,
                        &NewAccount {
                            organisation_id: org_id,
                            address,
                            name: &row.name,
                            job_title: None,
                            status: row.status,
                            password_hash: None,
                            must_change: false,
                        },
                    )
                    .await?
                }
            }),
        };

        if let (Some(mailbox_id), Some(account_id), Some(role)) = (mailbox_id, account_id, row.role)
        {
            if new_account {
                directory::insert_membership(conn, mailbox_id, account_id, role).await?;
                s.memberships += 1;
                continue;
            }
            match directory::upsert_membership(conn, mailbox_id, account_id, role).await? {
                None => s.memberships += 1,
                Some(previous) if previous != role => {
                    s.memberships_updated += 1;
                    if previous == Role::Owner {
                        demoted.push((
                            row.line,
                            mailbox_id,
                            row.mailbox.clone(),
                            row.account.clone(),
                        ));
                    }
                }
                Some(_) => {}
            }
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
                    "this makes {} a member, and {} would have no owner left: name another owner first",
                    account.unwrap_or_default(),
                    mailbox.unwrap_or_default()
                ),
            });
        }
    }
    Ok(s)
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
