//! Authorisation and business rules: who may ask for what, and what the directory must keep
//! true (a mailbox keeps an owner; targets stay inside the sender's organisation).
//!
//! Pure: [`decide`] is a function of the message, what was extracted from it, a snapshot of
//! the relevant part of the directory, and the config. The pipeline loads the snapshot and
//! applies the [`Plan`] inside one transaction.

use crate::accounts::{Account, AccountStatus, Mailbox};
use crate::config::Config;
use crate::message::Message;
use crate::outcome::Outcome;
use crate::reason::Reason;
use crate::request::extract::{Extracted, Field, KindMatch};
use crate::request::{RequestKind, Role};
use std::collections::{BTreeMap, HashMap};

/// A mailbox as the rules see it: how many members and owners it has, and the role in it of
/// each account the snapshot loaded (every account the message names). Not the whole member
/// list: a large site's mailbox has hundreds, and reading them for every message cost the
/// daemon a quarter of its time (issue 7).
#[derive(Debug, Clone)]
pub struct MailboxView {
    pub mailbox: Mailbox,
    /// Memberships of any role (owners included).
    pub members: usize,
    pub owners: usize,
    /// Role by account id, for the snapshot's accounts that belong to this mailbox.
    pub roles: HashMap<i64, Role>,
}

impl MailboxView {
    /// The role of one of the snapshot's accounts (`None`: not in this mailbox). Only
    /// accounts in [`Snapshot::accounts`] are known here.
    pub fn role_of(&self, account_id: i64) -> Option<Role> {
        self.roles.get(&account_id).copied()
    }
}

/// The part of the directory a message can touch, read inside the message's transaction.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The shared mailbox the message is from, if registered.
    pub mailbox: Option<MailboxView>,
    /// Accounts named anywhere in the message (Sender, fields, free text), by address.
    pub accounts: HashMap<String, Account>,
    /// Mailbox addresses named anywhere in the message that are registered.
    pub mailboxes_named: HashMap<String, Mailbox>,
    /// For each account in `accounts`: every mailbox it belongs to, with its members.
    pub account_mailboxes: HashMap<i64, Vec<MailboxView>>,
    /// Accounts (not disabled) of the sending mailbox's organisation; counted only when the
    /// request is for a new account (0 otherwise).
    pub organisation_accounts: i64,
}

/// What to change, with the ids read from the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    NewAccount {
        organisation_id: i64,
        mailbox_id: i64,
        domain: String,
        first: String,
        last: String,
        name: String,
        job_title: Option<String>,
        role: Role,
    },
    PasswordReset {
        account_id: i64,
    },
    Unlock {
        account_id: i64,
        from: AccountStatus,
    },
    AddMember {
        mailbox_id: i64,
        account_id: i64,
        role: Role,
    },
    RemoveMember {
        mailbox_id: i64,
        account_id: i64,
    },
    ChangeRole {
        mailbox_id: i64,
        account_id: i64,
        from: Role,
        to: Role,
    },
    Leaver {
        account_id: i64,
        mailbox_ids: Vec<i64>,
        /// The account that becomes owner of every mailbox the leaver owned.
        replacement: Option<Replacement>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    pub account_id: i64,
    pub address: String,
    /// Mailboxes the leaver owned, each with the replacement's current role there.
    pub mailboxes: Vec<(i64, String, Option<Role>)>,
}

/// What postroom decided about one message.
#[derive(Debug, Clone)]
pub struct Decision {
    pub outcome: Outcome,
    pub kind: RequestKind,
    pub reason: Option<Reason>,
    /// The registered shared mailbox the message came from: the only address ever answered.
    pub mailbox: Option<String>,
    pub requester: Option<String>,
    pub target: Option<String>,
    /// The fields as read, for the audit and the staff page.
    pub fields: BTreeMap<String, String>,
    pub plan: Option<Plan>,
    /// Applied, but the site should know (e.g. a mailbox left with one member).
    pub warnings: Vec<String>,
}

impl Decision {
    pub fn new(outcome: Outcome, kind: RequestKind, reason: Option<Reason>) -> Decision {
        Decision {
            outcome,
            kind,
            reason,
            mailbox: None,
            requester: None,
            target: None,
            fields: BTreeMap::new(),
            plan: None,
            warnings: Vec::new(),
        }
    }

    /// Whether the site gets an answer: only a registered mailbox is ever answered, and
    /// never for mail that is not a request.
    pub fn answers(&self) -> bool {
        self.mailbox.is_some()
            && matches!(
                self.outcome,
                Outcome::Applied
                    | Outcome::Rejected
                    | Outcome::NeedsReview
                    | Outcome::AwaitingConfirmation
            )
    }
}

/// Every address the decision may need to look up, for the pipeline to load the snapshot.
pub fn addresses_to_load(msg: &Message, ex: &Extracted) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |a: &str| {
        let a = a.trim().to_ascii_lowercase();
        if !a.is_empty() && !out.contains(&a) {
            out.push(a);
        }
    };
    if let Some(s) = &msg.sender {
        push(s);
    }
    for f in [
        Field::RequestedBy,
        Field::Account,
        Field::Mailbox,
        Field::Replacement,
    ] {
        if let Some(v) = ex.fields.get(&f) {
            push(v);
        }
    }
    for c in &ex.candidate_accounts {
        push(c);
    }
    out
}

/// Fields by the names the audit, the request row and the staff page use.
pub fn field_names(fields: &BTreeMap<Field, String>) -> BTreeMap<String, String> {
    fields
        .iter()
        .map(|(k, v)| (field_name(*k).to_owned(), v.clone()))
        .collect()
}

/// Fields stored by their names ([`field_names`]) read back; a name not known is left out.
pub fn fields_named(names: &BTreeMap<String, String>) -> BTreeMap<Field, String> {
    const ALL: [Field; 9] = [
        Field::Name,
        Field::FirstName,
        Field::LastName,
        Field::JobTitle,
        Field::Role,
        Field::Account,
        Field::Mailbox,
        Field::RequestedBy,
        Field::Replacement,
    ];
    ALL.into_iter()
        .filter_map(|f| names.get(field_name(f)).map(|v| (f, v.clone())))
        .collect()
}

fn field_name(f: Field) -> &'static str {
    match f {
        Field::Name => "name",
        Field::FirstName => "first_name",
        Field::LastName => "last_name",
        Field::JobTitle => "job_title",
        Field::Role => "role",
        Field::Account => "account",
        Field::Mailbox => "mailbox",
        Field::RequestedBy => "requested_by",
        Field::Replacement => "replacement",
    }
}

/// Decide. Checks run in the order a person on the helpdesk would: who sent it, who is
/// asking, may they, what is asked, to whom, and what the directory must keep true.
pub fn decide(msg: &Message, ex: &Extracted, snap: &Snapshot, cfg: &Config) -> Decision {
    let kind = match &ex.kind {
        KindMatch::One(k) => *k,
        KindMatch::Ambiguous(_) | KindMatch::None => RequestKind::Unknown,
    };
    let mut d = Decision::new(Outcome::Rejected, kind, None);
    d.fields = ex
        .fields
        .iter()
        .map(|(k, v)| (field_name(*k).to_owned(), v.clone()))
        .collect();
    match decide_inner(msg, ex, snap, cfg, &mut d) {
        Ok(()) => d.outcome = Outcome::Applied,
        Err((outcome, reason)) => {
            d.outcome = outcome;
            d.reason = Some(reason);
            d.plan = None;
            d.warnings.clear();
        }
    }
    d
}

type Stop = (Outcome, Reason);

fn reject(r: Reason) -> Stop {
    (Outcome::Rejected, r)
}
fn review(r: Reason) -> Stop {
    (Outcome::NeedsReview, r)
}

fn decide_inner(
    msg: &Message,
    ex: &Extracted,
    snap: &Snapshot,
    cfg: &Config,
    d: &mut Decision,
) -> Result<(), Stop> {
    // 1. The sender must be a registered shared mailbox.
    let from = msg.from.as_deref().ok_or_else(|| reject(Reason::NoFrom))?;
    let mbox = snap
        .mailbox
        .as_ref()
        .filter(|m| m.mailbox.address == from)
        .ok_or_else(|| reject(Reason::NotSharedMailbox(from.to_owned())))?;
    d.mailbox = Some(mbox.mailbox.address.clone());

    // 2. A mailbox can only change its own membership.
    if let Some(named) = ex.fields.get(&Field::Mailbox)
        && *named != mbox.mailbox.address
    {
        return Err(reject(Reason::OtherMailbox {
            named: named.clone(),
            mailbox: mbox.mailbox.address.clone(),
        }));
    }

    // 3. What is asked. A message from a registered mailbox that asks for nothing we know is
    //    for a person to read (whoever wrote it: reading changes nothing).
    let kind = match &ex.kind {
        KindMatch::One(k) => *k,
        other => {
            // Name the person for the staff page when we can tell.
            d.requester = identify_requester(msg, ex, snap, mbox)
                .ok()
                .map(|a| a.address.clone());
            return Err(review(match other {
                KindMatch::Ambiguous(ks) => Reason::AmbiguousKind(ks.clone()),
                KindMatch::None | KindMatch::One(_) => Reason::UnknownKind,
            }));
        }
    };

    // 4. Who is asking: Exchange's "send on behalf" Sender, else a Requested by: line.
    let requester = identify_requester(msg, ex, snap, mbox)?;
    d.requester = Some(requester.address.clone());
    if requester.status != AccountStatus::Active {
        return Err(reject(Reason::RequesterInactive(requester.address.clone())));
    }
    let requester_role = mbox.role_of(requester.id).ok_or_else(|| {
        reject(Reason::RequesterNotMember {
            requester: requester.address.clone(),
            mailbox: mbox.mailbox.address.clone(),
        })
    })?;

    // 5. May they ask for this kind.
    let needed = cfg.policy.required_role(kind);
    if needed == Role::Owner && requester_role != Role::Owner {
        return Err(reject(Reason::RequesterRoleTooLow {
            requester: requester.address.clone(),
            needed,
            kind,
        }));
    }

    if kind == RequestKind::NewAccount {
        if let Some(limit) = cfg.limits.max_accounts_per_organisation
            && snap.organisation_accounts >= i64::from(limit)
        {
            return Err(reject(Reason::AccountLimit {
                organisation: mbox.mailbox.organisation.clone(),
                limit,
            }));
        }
        plan_new_account(ex, mbox, d)?;
        if let Some(Plan::NewAccount { role, .. }) = &d.plan {
            check_room(cfg, mbox, *role)?;
        }
        return Ok(());
    }

    // 6. To whom.
    let target = identify_target(ex, snap)?;
    d.target = Some(target.address.clone());
    if target.organisation_id != mbox.mailbox.organisation_id {
        return Err(reject(Reason::OtherOrganisation {
            account: target.address.clone(),
        }));
    }
    let target_role = mbox.role_of(target.id);
    let views = snap
        .account_mailboxes
        .get(&target.id)
        .map(Vec::as_slice)
        .unwrap_or(&[]);

    // 7. What the directory must keep true.
    match kind {
        RequestKind::PasswordReset => {
            if target.status == AccountStatus::Disabled {
                return Err(reject(Reason::AccountDisabled(target.address.clone())));
            }
            d.plan = Some(Plan::PasswordReset {
                account_id: target.id,
            });
        }
        RequestKind::Unlock => {
            if target.status == AccountStatus::Active {
                return Err(reject(Reason::AlreadyActive(target.address.clone())));
            }
            d.plan = Some(Plan::Unlock {
                account_id: target.id,
                from: target.status,
            });
        }
        RequestKind::AddMember => {
            let role = role_field(ex)?.unwrap_or(Role::Member);
            if let Some(existing) = target_role {
                return Err(reject(Reason::AlreadyMember {
                    account: target.address.clone(),
                    role: existing,
                }));
            }
            if target.status == AccountStatus::Disabled {
                return Err(reject(Reason::AccountDisabled(target.address.clone())));
            }
            check_room(cfg, mbox, role)?;
            d.plan = Some(Plan::AddMember {
                mailbox_id: mbox.mailbox.id,
                account_id: target.id,
                role,
            });
        }
        RequestKind::RemoveMember => {
            let role =
                target_role.ok_or_else(|| reject(Reason::NotMember(target.address.clone())))?;
            if role == Role::Owner && mbox.owners <= 1 {
                return Err(reject(last_owner(target, &mbox.mailbox)));
            }
            if mbox.members <= 1 {
                return Err(reject(last_member(target, &mbox.mailbox)));
            }
            warn_if_thin(d, &mbox.mailbox.address, mbox.members.saturating_sub(1));
            d.plan = Some(Plan::RemoveMember {
                mailbox_id: mbox.mailbox.id,
                account_id: target.id,
            });
        }
        RequestKind::ChangeRole => {
            let from =
                target_role.ok_or_else(|| reject(Reason::NotMember(target.address.clone())))?;
            let to = match role_field(ex)? {
                Some(r) => r,
                None => infer_role(&ex.new_text, &msg.subject)
                    .ok_or_else(|| reject(Reason::RoleMissing))?,
            };
            if from == to {
                return Err(reject(Reason::AlreadyRole {
                    account: target.address.clone(),
                    role: to,
                }));
            }
            if from == Role::Owner && mbox.owners <= 1 {
                return Err(reject(last_owner(target, &mbox.mailbox)));
            }
            if to == Role::Owner
                && let Some(limit) = cfg.limits.max_owners_per_mailbox
                && mbox.owners >= limit as usize
            {
                return Err(reject(Reason::OwnerLimit {
                    mailbox: mbox.mailbox.address.clone(),
                    limit,
                }));
            }
            d.plan = Some(Plan::ChangeRole {
                mailbox_id: mbox.mailbox.id,
                account_id: target.id,
                from,
                to,
            });
        }
        RequestKind::Leaver => {
            if target.status == AccountStatus::Disabled {
                return Err(reject(Reason::AlreadyDisabled(target.address.clone())));
            }
            // Leaving every mailbox of the organisation. An owner must hand over to a named
            // replacement, who becomes owner wherever the leaver was.
            let in_org: Vec<&MailboxView> = views
                .iter()
                .filter(|v| v.mailbox.organisation_id == target.organisation_id)
                .collect();
            let owned: Vec<&MailboxView> = in_org
                .iter()
                .copied()
                .filter(|v| v.role_of(target.id) == Some(Role::Owner))
                .collect();
            let replacement = if owned.is_empty() {
                None
            } else {
                let named = ex.fields.get(&Field::Replacement).ok_or_else(|| {
                    reject(Reason::ReplacementMissing {
                        account: target.address.clone(),
                    })
                })?;
                let r = snap
                    .accounts
                    .get(named.as_str())
                    .filter(|r| {
                        r.organisation_id == target.organisation_id
                            && r.status == AccountStatus::Active
                            && r.id != target.id
                    })
                    .ok_or_else(|| reject(Reason::BadReplacement(named.clone())))?;
                Some(Replacement {
                    account_id: r.id,
                    address: r.address.clone(),
                    mailboxes: owned
                        .iter()
                        .map(|v| (v.mailbox.id, v.mailbox.address.clone(), v.role_of(r.id)))
                        .collect(),
                })
            };
            for v in &in_org {
                let gains = replacement.as_ref().is_some_and(|r| {
                    r.mailboxes
                        .iter()
                        .any(|(id, _, role)| *id == v.mailbox.id && role.is_none())
                });
                let after = v.members.saturating_sub(1) + usize::from(gains);
                // A leaver's account is disabled whatever happens; leaving a mailbox nobody
                // can read is what continuity forbids (issue 16): a colleague first.
                if after == 0 {
                    return Err(reject(last_member(target, &v.mailbox)));
                }
                warn_if_thin(d, &v.mailbox.address, after);
            }
            d.plan = Some(Plan::Leaver {
                account_id: target.id,
                mailbox_ids: in_org.iter().map(|v| v.mailbox.id).collect(),
                replacement,
            });
        }
        RequestKind::NewAccount | RequestKind::Unknown => return Err(review(Reason::UnknownKind)),
    }
    Ok(())
}

/// Room for one more member (and owner) under the configured limits.
fn check_room(cfg: &Config, mbox: &MailboxView, role: Role) -> Result<(), Stop> {
    if let Some(limit) = cfg.limits.max_members_per_mailbox
        && mbox.members >= limit as usize
    {
        return Err(reject(Reason::MemberLimit {
            mailbox: mbox.mailbox.address.clone(),
            limit,
        }));
    }
    if role == Role::Owner
        && let Some(limit) = cfg.limits.max_owners_per_mailbox
        && mbox.owners >= limit as usize
    {
        return Err(reject(Reason::OwnerLimit {
            mailbox: mbox.mailbox.address.clone(),
            limit,
        }));
    }
    Ok(())
}

/// Changes that hand over control must be confirmed by the requester with a one-time code:
/// making or removing an owner, an owner leaving, restoring a disabled account.
pub fn needs_confirmation(d: &Decision, snap: &Snapshot, cfg: &Config) -> bool {
    if d.outcome != Outcome::Applied || !cfg.confirmation.applies_to(d.kind) {
        return false;
    }
    let owner_in = |mailbox_id: i64, account_id: i64| {
        snap.account_mailboxes
            .get(&account_id)
            .into_iter()
            .flatten()
            .any(|v| v.mailbox.id == mailbox_id && v.role_of(account_id) == Some(Role::Owner))
    };
    match &d.plan {
        Some(Plan::ChangeRole { .. }) => true,
        Some(Plan::AddMember { role, .. }) | Some(Plan::NewAccount { role, .. }) => {
            *role == Role::Owner
        }
        Some(Plan::RemoveMember {
            mailbox_id,
            account_id,
        }) => owner_in(*mailbox_id, *account_id),
        Some(Plan::Leaver { replacement, .. }) => replacement.is_some(),
        Some(Plan::Unlock { from, .. }) => *from == AccountStatus::Disabled,
        Some(Plan::PasswordReset { .. }) | None => false,
    }
}

fn last_member(account: &Account, mailbox: &Mailbox) -> Reason {
    Reason::LastMember {
        account: account.address.clone(),
        mailbox: mailbox.address.clone(),
    }
}

fn last_owner(account: &Account, mailbox: &Mailbox) -> Reason {
    Reason::LastOwner {
        account: account.address.clone(),
        mailbox: mailbox.address.clone(),
    }
}

/// The helpdesk's standing advice is at least two people per mailbox: staff leave, and a
/// mailbox with one member gets lost.
fn warn_if_thin(d: &mut Decision, mailbox: &str, members_after: usize) {
    if members_after < 2 {
        d.warnings.push(format!(
            "{mailbox} now has {members_after} member{}. We advise at least 2, so that the mailbox is not lost when someone is away or leaves: please ask for another member to be added.",
            if members_after == 1 { "" } else { "s" }
        ));
    }
}

fn identify_requester<'a>(
    msg: &Message,
    ex: &Extracted,
    snap: &'a Snapshot,
    mbox: &MailboxView,
) -> Result<&'a Account, Stop> {
    // Exchange "send on behalf of": Sender names the person's own account.
    if let Some(sender) = msg.sender.as_deref()
        && sender != mbox.mailbox.address
        && let Some(a) = snap.accounts.get(sender)
    {
        return Ok(a);
    }
    let named = ex
        .fields
        .get(&Field::RequestedBy)
        .ok_or_else(|| reject(Reason::RequesterMissing))?;
    snap.accounts
        .get(named.as_str())
        .ok_or_else(|| reject(Reason::RequesterNotFound(named.clone())))
}

fn identify_target<'a>(ex: &Extracted, snap: &'a Snapshot) -> Result<&'a Account, Stop> {
    let address = match ex.fields.get(&Field::Account) {
        Some(a) => a.clone(),
        None => match ex.candidate_accounts.as_slice() {
            [one] => one.clone(),
            [] => return Err(review(Reason::AccountMissing)),
            many => return Err(review(Reason::AmbiguousAccount(many.to_vec()))),
        },
    };
    if let Some(a) = snap.accounts.get(&address) {
        return Ok(a);
    }
    if snap.mailboxes_named.contains_key(&address) {
        return Err(reject(Reason::TargetIsMailbox(address)));
    }
    Err(review(Reason::UnknownAccount(address)))
}

fn role_field(ex: &Extracted) -> Result<Option<Role>, Stop> {
    ex.fields
        .get(&Field::Role)
        .map(|r| {
            r.parse::<Role>()
                .map_err(|_| reject(Reason::BadRole(r.clone())))
        })
        .transpose()
}

/// "Please make tom an owner" carries no Role: line; read the role from the words.
fn infer_role(text: &str, subject: &str) -> Option<Role> {
    let all = format!("{subject}\n{text}").to_lowercase();
    let owner = all.contains("owner") || all.contains("promote");
    let member = all.contains("demote")
        || all.contains("to member")
        || all.contains("a member")
        || all.contains("as member");
    match (owner, member) {
        (true, false) => Some(Role::Owner),
        (false, true) => Some(Role::Member),
        _ => None,
    }
}

fn plan_new_account(ex: &Extracted, mbox: &MailboxView, d: &mut Decision) -> Result<(), Stop> {
    // A value that can never be a name is refused as such, before it is split into parts.
    for field in [
        Field::Name,
        Field::FirstName,
        Field::LastName,
        Field::JobTitle,
    ] {
        if let Some(value) = ex.fields.get(&field) {
            let value = crate::text::clean(value);
            if let Some(why) = crate::text::name_problem(&value) {
                return Err(reject(Reason::BadName {
                    name: crate::text::clip(&value, 60),
                    why,
                }));
            }
        }
    }
    let (first, last) = match (
        ex.fields.get(&Field::FirstName),
        ex.fields.get(&Field::LastName),
    ) {
        (Some(f), Some(l)) if !f.trim().is_empty() && !l.trim().is_empty() => {
            (f.trim().to_owned(), l.trim().to_owned())
        }
        _ => {
            let name = ex
                .fields
                .get(&Field::Name)
                .ok_or_else(|| reject(Reason::NameMissing))?;
            let words: Vec<&str> = name.split_whitespace().collect();
            match words.split_last() {
                Some((last, firsts)) if !firsts.is_empty() => {
                    (firsts.join(" "), (*last).to_owned())
                }
                _ => return Err(reject(Reason::NameMissing)),
            }
        }
    };
    // What reaches the directory, the export, replies and pages: no control, bidi or
    // zero-width characters, no spreadsheet formula, a bounded length (issue 13).
    let (first, last) = (crate::text::clean(&first), crate::text::clean(&last));
    let name = format!("{first} {last}");
    if let Some(why) =
        crate::text::name_problem(&first).or_else(|| crate::text::name_problem(&name))
    {
        return Err(reject(Reason::BadName {
            name: crate::text::clip(&name, 60),
            why,
        }));
    }
    let job_title = ex
        .fields
        .get(&Field::JobTitle)
        .map(|t| crate::text::clean(t));
    if let Some(title) = &job_title
        && let Some(why) = crate::text::name_problem(title)
    {
        return Err(reject(Reason::BadName {
            name: crate::text::clip(title, 60),
            why,
        }));
    }
    // RFC 5321 §4.5.3.1.1: a local part is at most 64 octets (with room for a number when
    // the address is taken).
    let local = format!("{}.{}", address_part(&first), address_part(&last));
    if local.len() > MAX_LOCAL_PART {
        return Err(reject(Reason::BadName {
            name: crate::text::clip(&name, 60),
            why: format!(
                "its address would be {} characters before the @, and addresses allow {MAX_LOCAL_PART}",
                local.len()
            ),
        }));
    }
    let role = role_field(ex)?.unwrap_or(Role::Member);
    let domain = mbox
        .mailbox
        .address
        .rsplit_once('@')
        .map(|(_, dom)| dom.to_owned())
        .ok_or_else(|| reject(Reason::NotSharedMailbox(mbox.mailbox.address.clone())))?;
    if address_part(&first).is_empty() || address_part(&last).is_empty() {
        return Err(reject(Reason::NameMissing));
    }
    d.plan = Some(Plan::NewAccount {
        organisation_id: mbox.mailbox.organisation_id,
        mailbox_id: mbox.mailbox.id,
        domain,
        name,
        first,
        last,
        job_title,
        role,
    });
    Ok(())
}

/// The longest local part a new address gets: RFC 5321 allows 64 octets; a few are kept for
/// the number added when the address is taken (`zoe.angstrom2`).
const MAX_LOCAL_PART: usize = 60;

/// One part of a new address: accents folded (Zoë → zoe), lower-case, letters and digits, with
/// inner spaces and hyphens kept as single hyphens ("Mary Ann" → mary-ann, "O'Neil" → oneil).
pub fn address_part(name: &str) -> String {
    let folded = deunicode::deunicode(name).to_ascii_lowercase();
    let mut out = String::new();
    for c in folded.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if (c == ' ' || c == '-') && !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_parts_fold_accents_and_punctuation() {
        assert_eq!(address_part("Zoë"), "zoe");
        assert_eq!(address_part("Ångström"), "angstrom");
        assert_eq!(address_part("O'Neil"), "oneil");
        assert_eq!(address_part("Mary  Ann"), "mary-ann");
        assert_eq!(address_part("  "), "");
    }

    #[test]
    fn role_inferred_from_words() {
        assert_eq!(
            infer_role("Please make tom an owner", ""),
            Some(Role::Owner)
        );
        assert_eq!(infer_role("Please demote tom", ""), Some(Role::Member));
        assert_eq!(infer_role("change tom", "Change role"), None);
    }
}
