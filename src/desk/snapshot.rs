//! The part of the directory a message can touch, read once before the rules decide: the
//! accounts it names with their memberships, and each mailbox involved as counts and roles.

use crate::accounts::MailboxSummary;
use crate::message::Message;
use crate::policy::{self, MailboxView, Snapshot};
use crate::request::extract::{Extracted, KindMatch};
use crate::request::{RequestKind, Role};
use crate::store::directory;
use crate::store::{Conn, StoreError};
use std::collections::HashMap;

/// How many addresses named in one message are looked up: more than a few candidate
/// accounts is ambiguous anyway, and a hostile message must not cost thousands of queries.
const MAX_LOOKUPS: usize = 12;

/// Read the part of the directory this message can touch: the accounts it names with their
/// memberships (one query), then each mailbox involved once, as counts and the roles of those
/// accounts (the sender, the requester and the target are usually all in the site's own
/// mailbox, and a large mailbox has hundreds of members that no rule needs one by one).
/// `sender`: the sending mailbox as the caller read it already in this transaction (by the
/// message's From address), so it is not read twice.
pub(crate) async fn load_snapshot(
    conn: &mut Conn,
    msg: &Message,
    ex: &Extracted,
    sender: Option<&MailboxSummary>,
) -> Result<Snapshot, StoreError> {
    let mut snap = Snapshot::default();
    let addresses: Vec<String> = policy::addresses_to_load(msg, ex)
        .into_iter()
        .take(MAX_LOOKUPS)
        .collect();
    let mut accounts = directory::find_accounts_with_memberships(conn, &addresses).await?;
    let mut roles: HashMap<i64, HashMap<i64, Role>> = HashMap::new();
    for (account, memberships) in accounts.values() {
        for (m, _) in memberships {
            roles
                .entry(m.mailbox_id)
                .or_default()
                .insert(account.id, m.role);
        }
    }
    let mut views = Views {
        seen: HashMap::new(),
        roles,
    };
    if let (Some(from), Some(summary)) = (&msg.from, sender) {
        let view = views.view(summary.clone());
        views.seen.insert(from.clone(), Some(view));
    }
    // The accounts' mailboxes came with their summaries in the same query: not read again.
    for (_, memberships) in accounts.values() {
        for (m, summary) in memberships {
            if !views.seen.contains_key(&m.mailbox) {
                let view = views.view(summary.clone());
                views.seen.insert(m.mailbox.clone(), Some(view));
            }
        }
    }
    if let Some(from) = &msg.from
        && let Some(view) = views.get(conn, from).await?
    {
        // Only a new account is held against the organisation's account limit (policy
        // reads the count for nothing else): not counted for the other kinds.
        if matches!(ex.kind, KindMatch::One(RequestKind::NewAccount)) {
            snap.organisation_accounts =
                directory::count_accounts_in_organisation(conn, view.mailbox.organisation_id)
                    .await?;
        }
        snap.mailbox = Some(view);
    }
    for address in addresses {
        if let Some((account, memberships)) = accounts.remove(&address) {
            let mut account_views = Vec::new();
            for (m, _) in memberships {
                if let Some(view) = views.get(conn, &m.mailbox).await? {
                    account_views.push(view);
                }
            }
            snap.account_mailboxes.insert(account.id, account_views);
            snap.accounts.insert(address, account);
        } else if let Some(view) = views.get(conn, &address).await? {
            snap.mailboxes_named.insert(address, view.mailbox);
        }
    }
    Ok(snap)
}

/// The mailboxes of one snapshot, each read at most once.
struct Views {
    seen: HashMap<String, Option<MailboxView>>,
    /// Mailbox id → account id → role, for the snapshot's accounts.
    roles: HashMap<i64, HashMap<i64, Role>>,
}

impl Views {
    async fn get(
        &mut self,
        conn: &mut Conn,
        address: &str,
    ) -> Result<Option<MailboxView>, StoreError> {
        if let Some(view) = self.seen.get(address) {
            return Ok(view.clone());
        }
        let view = directory::find_mailbox_summary(conn, address)
            .await?
            .map(|summary| self.view(summary));
        self.seen.insert(address.to_owned(), view.clone());
        Ok(view)
    }

    /// A mailbox as the rules see it, with the roles the snapshot's accounts have in it.
    fn view(&self, summary: MailboxSummary) -> MailboxView {
        MailboxView {
            roles: self
                .roles
                .get(&summary.mailbox.id)
                .cloned()
                .unwrap_or_default(),
            members: usize::try_from(summary.members).unwrap_or(0),
            owners: usize::try_from(summary.owners).unwrap_or(0),
            mailbox: summary.mailbox,
        }
    }
}
