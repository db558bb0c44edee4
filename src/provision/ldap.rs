//! The LDAP connector: OpenLDAP (with the ppolicy overlay) and Active Directory.
//!
//! One connection per job, bound as the configured service account; each operation is
//! written to converge — doing it again after a crash leaves what doing it once leaves:
//! - an account is found by its `mail` under `people` before it is created, and a found one
//!   is brought to what was asked (its temporary password set again) instead of doubled;
//! - a password is set only if the account does not already sign in with it (a replayed
//!   reset must not trip the policy's password history);
//! - adding a value that is there (`attributeOrValueExists`, RFC 4511 §4.1.9) or deleting one
//!   that is not (`noSuchAttribute`) counts as done.
//!
//! OpenLDAP: the password by RFC 3062 Password Modify (the server hashes it as its policy
//! says), must-change by `pwdReset: TRUE`, unlock by deleting `pwdAccountLockedTime`, disable
//! by the permanent lock `000001010000Z` (draft-behera-ldap-password-policy §5.3.3).
//! Active Directory: `unicodePwd` as the quoted password in UTF-16LE (MS-ADTS 3.1.1.3.1.5.1;
//! refused over plain LDAP, which the config check already forbids), must-change by
//! `pwdLastSet: 0`, unlock by `lockoutTime: 0`, disable by bit 2 (ACCOUNTDISABLE) of
//! `userAccountControl`.
//!
//! A shared mailbox is the group `cn=<mailbox address>` under `groups` (`groupOfNames` on
//! OpenLDAP, `group` on AD); its members are `member` values, its owners are also listed in
//! `owner_attribute`, or (`owner_groups`, for AD, whose `group` has no multi-valued owner
//! attribute without Exchange's schema) are the members of `cn=<mailbox address>` there.

use super::config::{LdapConfig, LdapMode};
use super::operation::{NotDone, Operation};
use crate::accounts::AccountStatus;
use crate::request::Role;
use ldap3::exop::PasswordModify;
use ldap3::{
    LdapConnAsync, LdapConnSettings, LdapError, Mod, Scope, SearchEntry, dn_escape, ldap_escape,
};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::Arc;

/// RFC 4511 result codes postroom tells apart.
mod rc {
    pub const STRONGER_AUTH_REQUIRED: u32 = 8;
    pub const CONFIDENTIALITY_REQUIRED: u32 = 13;
    pub const NO_SUCH_ATTRIBUTE: u32 = 16;
    pub const ATTRIBUTE_OR_VALUE_EXISTS: u32 = 20;
    pub const NO_SUCH_OBJECT: u32 = 32;
    pub const INVALID_CREDENTIALS: u32 = 49;
    pub const BUSY: u32 = 51;
    pub const UNWILLING_TO_PERFORM: u32 = 53;
    pub const UNAVAILABLE: u32 = 52;
    pub const ENTRY_ALREADY_EXISTS: u32 = 68;
    pub const OTHER: u32 = 80;
}

/// OpenLDAP ppolicy's "locked by an administrator, for good".
const PERMANENT_LOCK: &str = "000001010000Z";
/// AD's userAccountControl bit for a disabled account.
const ACCOUNTDISABLE: u32 = 0x2;
/// AD: a normal account (NORMAL_ACCOUNT), enabled.
const NORMAL_ACCOUNT: u32 = 0x200;

pub struct LdapTarget {
    cfg: LdapConfig,
    tls: Arc<rustls::ClientConfig>,
}

/// A failure on the way: refused for good, or "not now".
type Step<T> = Result<T, NotDone>;

fn temporary(what: &str, e: impl std::fmt::Display) -> NotDone {
    NotDone::RetryLater(format!("{what}: {e}"))
}

/// An LDAP error: the connection or the server failing is "not now"; the server refusing the
/// operation is its answer for good.
fn refused(what: &str, e: LdapError) -> NotDone {
    match e {
        LdapError::LdapResult { result } => match result.rc {
            rc::BUSY | rc::UNAVAILABLE | rc::OTHER => temporary(what, describe(&result)),
            _ => NotDone::Rejected(format!("{what}: {}", describe(&result))),
        },
        other => temporary(what, other),
    }
}

fn describe(r: &ldap3::LdapResult) -> String {
    let text = r.text.trim();
    if text.is_empty() {
        format!("LDAP result {}", r.rc)
    } else {
        format!("LDAP result {} ({text})", r.rc)
    }
}

/// The group of `mailbox` under `base`: `cn=<mailbox address>`.
fn group_dn(base: &str, mailbox: &str) -> String {
    format!("cn={},{base}", dn_escape(mailbox))
}

/// AD's `unicodePwd`: the password in double quotes, UTF-16LE.
pub fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn set<S: Into<String>>(values: impl IntoIterator<Item = S>) -> HashSet<String> {
    values.into_iter().map(Into::into).collect()
}

impl LdapTarget {
    /// Build the connector: the TLS roots (the system's web roots, plus `ca_file`).
    pub fn new(cfg: &LdapConfig) -> Result<LdapTarget, String> {
        let tls = crate::tls_client::config(cfg.ca_file.as_deref(), "directory.ca_file")?;
        Ok(LdapTarget {
            cfg: cfg.clone(),
            tls: Arc::new(tls),
        })
    }

    fn settings(&self) -> LdapConnSettings {
        LdapConnSettings::new()
            .set_conn_timeout(self.cfg.timeout)
            .set_config(self.tls.clone())
            .set_starttls(self.cfg.starttls)
    }

    /// A connection bound as `dn`, and the task that drives it.
    async fn session(&self, dn: &str, password: &str) -> Result<ldap3::Ldap, LdapError> {
        let (conn, mut ldap) = LdapConnAsync::with_settings(self.settings(), &self.cfg.url).await?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.cfg.timeout);
        ldap.simple_bind(dn, password).await?.success()?;
        Ok(ldap)
    }

    /// `postroom check`: bind as the service account and find `people` and `groups`.
    pub async fn check(&self) -> Result<String, String> {
        let mut ldap = self
            .session(&self.cfg.bind_dn, self.cfg.bind_password.expose())
            .await
            .map_err(|e| format!("{}: binding as {}: {e}", self.cfg.url, self.cfg.bind_dn))?;
        for base in [&self.cfg.people, &self.cfg.groups] {
            if let Err(e) = ldap
                .search(base, Scope::Base, "(objectClass=*)", vec!["1.1"])
                .await
                .and_then(ldap3::SearchResult::success)
            {
                let _ = ldap.unbind().await;
                return Err(format!("{}: {base}: {e}", self.cfg.url));
            }
        }
        let _ = ldap.unbind().await;
        Ok(format!(
            "{} bound as {}; {} and {} found",
            self.cfg.url, self.cfg.bind_dn, self.cfg.people, self.cfg.groups
        ))
    }

    /// Apply a request's operations in order over one connection: what each read back, or
    /// the first that was not done.
    pub async fn apply(&self, ops: &[Operation]) -> Result<Vec<Value>, NotDone> {
        let mut ldap = self
            .session(&self.cfg.bind_dn, self.cfg.bind_password.expose())
            .await
            .map_err(|e| match e {
                // A wrong service password, or a server that wants an encrypted connection
                // (a domain controller's default for simple binds over plain LDAP), is for
                // staff, not for retrying all day.
                LdapError::LdapResult { result }
                    if matches!(
                        result.rc,
                        rc::INVALID_CREDENTIALS
                            | rc::STRONGER_AUTH_REQUIRED
                            | rc::CONFIDENTIALITY_REQUIRED
                    ) =>
                {
                    NotDone::Rejected(format!(
                        "binding as {}: {}",
                        self.cfg.bind_dn,
                        describe(&result)
                    ))
                }
                other => temporary(&format!("connecting to {}", self.cfg.url), other),
            })?;
        let mut done = Vec::new();
        for op in ops {
            ldap.with_timeout(self.cfg.timeout);
            match self.one(&mut ldap, op).await {
                Ok(read_back) => done.push(json!({ "op": op.name(), "read_back": read_back })),
                Err(answer) => {
                    let _ = ldap.unbind().await;
                    return Err(answer);
                }
            }
        }
        let _ = ldap.unbind().await;
        Ok(done)
    }

    async fn one(&self, ldap: &mut ldap3::Ldap, op: &Operation) -> Step<Value> {
        match op {
            Operation::CreateAccount {
                address,
                name,
                first,
                last,
                job_title,
                password,
            } => {
                let dn = match self.find_account(ldap, address).await? {
                    Some(dn) => dn,
                    None => {
                        self.create(
                            ldap,
                            address,
                            name,
                            first,
                            last,
                            job_title.as_deref(),
                            password,
                        )
                        .await?
                    }
                };
                self.set_password(ldap, &dn, password).await?;
                self.must_change_and_unlock(ldap, &dn).await?;
                self.read_account(ldap, &dn).await
            }
            Operation::ResetPassword { address, password } => {
                let dn = self.account(ldap, address).await?;
                self.set_password(ldap, &dn, password).await?;
                self.must_change_and_unlock(ldap, &dn).await?;
                self.read_account(ldap, &dn).await
            }
            Operation::Unlock { address } => {
                let dn = self.account(ldap, address).await?;
                self.unlock(ldap, &dn).await?;
                self.read_account(ldap, &dn).await
            }
            Operation::Disable { address } => {
                let dn = self.account(ldap, address).await?;
                self.disable(ldap, &dn).await?;
                self.read_account(ldap, &dn).await
            }
            Operation::AddMember {
                mailbox,
                account,
                role,
            }
            | Operation::ChangeRole {
                mailbox,
                account,
                role,
            } => {
                let member = self.account(ldap, account).await?;
                let group = self.group(ldap, &self.cfg.groups, mailbox, &member).await?;
                self.add_value(ldap, &group, "member", &member).await?;
                match role {
                    Role::Owner => self.mark_owner(ldap, mailbox, &group, &member).await?,
                    Role::Member => self.unmark_owner(ldap, mailbox, &group, &member).await?,
                }
                self.read_group(ldap, mailbox, &group, &member).await
            }
            Operation::RemoveMember { mailbox, account } => {
                let member = self.account(ldap, account).await?;
                let group = group_dn(&self.cfg.groups, mailbox);
                self.unmark_owner(ldap, mailbox, &group, &member).await?;
                self.delete_value(ldap, &group, "member", &member).await?;
                self.read_group(ldap, mailbox, &group, &member).await
            }
        }
    }

    /// Make `member` an owner of `mailbox`: a value of the owner attribute on its group, or a
    /// member of its owners' group (made when missing).
    async fn mark_owner(
        &self,
        ldap: &mut ldap3::Ldap,
        mailbox: &str,
        group: &str,
        member: &str,
    ) -> Step<()> {
        match &self.cfg.owner_groups {
            Some(base) => {
                let owners = self.group(ldap, base, mailbox, member).await?;
                self.add_value(ldap, &owners, "member", member).await
            }
            None => {
                self.add_value(ldap, group, &self.cfg.owner_attribute, member)
                    .await
            }
        }
    }

    async fn unmark_owner(
        &self,
        ldap: &mut ldap3::Ldap,
        mailbox: &str,
        group: &str,
        member: &str,
    ) -> Step<()> {
        match &self.cfg.owner_groups {
            Some(base) => {
                self.delete_value(ldap, &group_dn(base, mailbox), "member", member)
                    .await
            }
            None => {
                self.delete_value(ldap, group, &self.cfg.owner_attribute, member)
                    .await
            }
        }
    }

    /// The DN of the account whose `mail` is `address`, if there is one.
    async fn find_account(&self, ldap: &mut ldap3::Ldap, address: &str) -> Step<Option<String>> {
        let filter = format!("(mail={})", ldap_escape(address));
        let (entries, _) = ldap
            .search(&self.cfg.people, Scope::Subtree, &filter, vec!["1.1"])
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| refused(&format!("looking up {address}"), e))?;
        let mut dns = entries.into_iter().filter_map(entry).map(|e| e.dn);
        match (dns.next(), dns.next()) {
            (None, _) => Ok(None),
            (Some(dn), None) => Ok(Some(dn)),
            (Some(a), Some(b)) => Err(NotDone::Rejected(format!(
                "{address} is the mail of more than one entry ({a}, {b}): a person must choose"
            ))),
        }
    }

    async fn account(&self, ldap: &mut ldap3::Ldap, address: &str) -> Step<String> {
        self.find_account(ldap, address).await?.ok_or_else(|| {
            NotDone::Rejected(format!(
                "no account with mail {address} under {}",
                self.cfg.people
            ))
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn create(
        &self,
        ldap: &mut ldap3::Ldap,
        address: &str,
        name: &str,
        first: &str,
        last: &str,
        job_title: Option<&str>,
        password: &str,
    ) -> Step<String> {
        let local = address.split('@').next().unwrap_or(address);
        let (dn, mut attrs): (String, Vec<(String, HashSet<String>)>) = match self.cfg.mode {
            LdapMode::OpenLdap => (
                format!("uid={},{}", dn_escape(local), self.cfg.people),
                vec![
                    (
                        "objectClass".into(),
                        set(["top", "person", "organizationalPerson", "inetOrgPerson"]),
                    ),
                    ("uid".into(), set([local])),
                    ("cn".into(), set([name])),
                    (
                        "sn".into(),
                        set([if last.is_empty() { name } else { last }]),
                    ),
                    ("mail".into(), set([address])),
                ],
            ),
            LdapMode::ActiveDirectory => {
                // sAMAccountName is at most 20 characters (MS-ADA3).
                let sam: String = local.chars().take(20).collect();
                (
                    format!("CN={},{}", dn_escape(name), self.cfg.people),
                    vec![
                        (
                            "objectClass".into(),
                            set(["top", "person", "organizationalPerson", "user"]),
                        ),
                        ("cn".into(), set([name])),
                        (
                            "sn".into(),
                            set([if last.is_empty() { name } else { last }]),
                        ),
                        ("sAMAccountName".into(), set([sam])),
                        ("userPrincipalName".into(), set([address])),
                        ("mail".into(), set([address])),
                        ("displayName".into(), set([name])),
                    ],
                )
            }
        };
        if !first.is_empty() {
            attrs.push(("givenName".into(), set([first])));
        }
        if let Some(title) = job_title.filter(|t| !t.is_empty()) {
            attrs.push(("title".into(), set([title])));
        }
        let result = match self.cfg.mode {
            LdapMode::OpenLdap => ldap.add(&dn, attrs).await,
            LdapMode::ActiveDirectory => {
                // AD creates a user with its password and state in the same add, as bytes.
                let mut bytes: Vec<(Vec<u8>, HashSet<Vec<u8>>)> = attrs
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k.into_bytes(),
                            v.into_iter().map(String::into_bytes).collect(),
                        )
                    })
                    .collect();
                bytes.push((
                    b"unicodePwd".to_vec(),
                    HashSet::from([unicode_pwd(password)]),
                ));
                bytes.push((
                    b"userAccountControl".to_vec(),
                    HashSet::from([NORMAL_ACCOUNT.to_string().into_bytes()]),
                ));
                ldap.add(&dn, bytes).await
            }
        };
        match result.and_then(ldap3::LdapResult::success) {
            Ok(_) => Ok(dn),
            Err(LdapError::LdapResult { result }) if result.rc == rc::ENTRY_ALREADY_EXISTS => {
                Err(NotDone::Rejected(format!(
                    "creating {address}: {dn} exists already with another mail: a person must choose the account's name"
                )))
            }
            Err(e) => Err(refused(&format!("creating {address}"), e)),
        }
    }

    /// Set `password`. On OpenLDAP, not when the account already signs in with it: a job
    /// replayed after a crash must not trip the policy's password history (which an
    /// administrator's change meets too). Active Directory applies no history to an
    /// administrator's reset, and a probing bind there would count towards its lockout.
    async fn set_password(&self, ldap: &mut ldap3::Ldap, dn: &str, password: &str) -> Step<()> {
        if self.cfg.mode == LdapMode::OpenLdap && self.signs_in(dn, password).await {
            return Ok(());
        }
        let what = format!("setting the password of {dn}");
        match self.cfg.mode {
            LdapMode::OpenLdap => ldap
                .extended(PasswordModify {
                    user_id: Some(dn),
                    old_pass: None,
                    new_pass: Some(password),
                })
                .await
                .and_then(ldap3::result::ExopResult::success)
                .map(|_| ())
                .map_err(|e| refused(&what, e)),
            LdapMode::ActiveDirectory => ldap
                .modify(
                    dn,
                    vec![Mod::Replace(
                        b"unicodePwd".to_vec(),
                        HashSet::from([unicode_pwd(password)]),
                    )],
                )
                .await
                .and_then(ldap3::LdapResult::success)
                .map(|_| ())
                .map_err(|e| refused(&what, e)),
        }
    }

    /// Whether `dn` can bind with `password` now.
    async fn signs_in(&self, dn: &str, password: &str) -> bool {
        match self.session(dn, password).await {
            Ok(mut l) => {
                let _ = l.unbind().await;
                true
            }
            Err(_) => false,
        }
    }

    async fn must_change_and_unlock(&self, ldap: &mut ldap3::Ldap, dn: &str) -> Step<()> {
        let what = format!("marking {dn} must-change");
        match self.cfg.mode {
            LdapMode::OpenLdap => {
                ldap.modify(dn, vec![Mod::Replace("pwdReset".to_owned(), set(["TRUE"]))])
                    .await
                    .and_then(ldap3::LdapResult::success)
                    .map_err(|e| refused(&what, e))?;
                self.unlock(ldap, dn).await
            }
            LdapMode::ActiveDirectory => ldap
                .modify(
                    dn,
                    vec![
                        Mod::Replace("pwdLastSet".to_owned(), set(["0"])),
                        Mod::Replace("lockoutTime".to_owned(), set(["0"])),
                    ],
                )
                .await
                .and_then(ldap3::LdapResult::success)
                .map(|_| ())
                .map_err(|e| refused(&what, e)),
        }
    }

    async fn unlock(&self, ldap: &mut ldap3::Ldap, dn: &str) -> Step<()> {
        match self.cfg.mode {
            LdapMode::OpenLdap => {
                self.delete_value_all(ldap, dn, "pwdAccountLockedTime")
                    .await
            }
            LdapMode::ActiveDirectory => {
                let uac = self.user_account_control(ldap, dn).await?;
                ldap.modify(
                    dn,
                    vec![
                        Mod::Replace("lockoutTime".to_owned(), set(["0"])),
                        Mod::Replace(
                            "userAccountControl".to_owned(),
                            set([(uac & !ACCOUNTDISABLE).to_string()]),
                        ),
                    ],
                )
                .await
                .and_then(ldap3::LdapResult::success)
                .map(|_| ())
                .map_err(|e| refused(&format!("unlocking {dn}"), e))
            }
        }
    }

    async fn disable(&self, ldap: &mut ldap3::Ldap, dn: &str) -> Step<()> {
        let what = format!("disabling {dn}");
        let change = match self.cfg.mode {
            LdapMode::OpenLdap => vec![Mod::Replace(
                "pwdAccountLockedTime".to_owned(),
                set([PERMANENT_LOCK]),
            )],
            LdapMode::ActiveDirectory => {
                let uac = self.user_account_control(ldap, dn).await?;
                vec![Mod::Replace(
                    "userAccountControl".to_owned(),
                    set([(uac | ACCOUNTDISABLE).to_string()]),
                )]
            }
        };
        ldap.modify(dn, change)
            .await
            .and_then(ldap3::LdapResult::success)
            .map(|_| ())
            .map_err(|e| refused(&what, e))
    }

    async fn user_account_control(&self, ldap: &mut ldap3::Ldap, dn: &str) -> Step<u32> {
        let e = self.read(ldap, dn, &["userAccountControl"]).await?;
        Ok(first(&e, "userAccountControl")
            .and_then(|v| v.parse().ok())
            .unwrap_or(NORMAL_ACCOUNT))
    }

    /// The mailbox's group, made (with `member` as its first member) when it is not there: a
    /// `groupOfNames` cannot exist empty.
    async fn group(
        &self,
        ldap: &mut ldap3::Ldap,
        base: &str,
        mailbox: &str,
        member: &str,
    ) -> Step<String> {
        let dn = group_dn(base, mailbox);
        match ldap
            .search(&dn, Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await
            .and_then(ldap3::SearchResult::success)
        {
            Ok(_) => return Ok(dn),
            Err(LdapError::LdapResult { result }) if result.rc == rc::NO_SUCH_OBJECT => {}
            Err(e) => return Err(refused(&format!("looking up the group of {mailbox}"), e)),
        }
        let class = match self.cfg.mode {
            LdapMode::OpenLdap => "groupOfNames",
            LdapMode::ActiveDirectory => "group",
        };
        let attrs = vec![
            ("objectClass".to_owned(), set(["top", class])),
            ("cn".to_owned(), set([mailbox])),
            ("member".to_owned(), set([member])),
        ];
        match ldap
            .add(&dn, attrs)
            .await
            .and_then(ldap3::LdapResult::success)
        {
            Ok(_) => Ok(dn),
            Err(LdapError::LdapResult { result }) if result.rc == rc::ENTRY_ALREADY_EXISTS => {
                Ok(dn)
            }
            Err(e) => Err(refused(&format!("creating the group of {mailbox}"), e)),
        }
    }

    async fn add_value(
        &self,
        ldap: &mut ldap3::Ldap,
        dn: &str,
        attr: &str,
        value: &str,
    ) -> Step<()> {
        match ldap
            .modify(dn, vec![Mod::Add(attr.to_owned(), set([value]))])
            .await
            .and_then(ldap3::LdapResult::success)
        {
            Ok(_) => Ok(()),
            Err(LdapError::LdapResult { result }) if result.rc == rc::ATTRIBUTE_OR_VALUE_EXISTS => {
                Ok(())
            }
            // Active Directory answers a member who is in the group already with
            // entryAlreadyExists (ERROR_MEMBER_IN_GROUP), not attributeOrValueExists: seen
            // against Samba AD ("Attribute member already exists for target GUID …").
            Err(LdapError::LdapResult { result })
                if self.cfg.mode == LdapMode::ActiveDirectory
                    && result.rc == rc::ENTRY_ALREADY_EXISTS =>
            {
                Ok(())
            }
            Err(e) => Err(refused(&format!("adding {attr} {value} to {dn}"), e)),
        }
    }

    async fn delete_value(
        &self,
        ldap: &mut ldap3::Ldap,
        dn: &str,
        attr: &str,
        value: &str,
    ) -> Step<()> {
        match ldap
            .modify(dn, vec![Mod::Delete(attr.to_owned(), set([value]))])
            .await
            .and_then(ldap3::LdapResult::success)
        {
            Ok(_) => Ok(()),
            Err(LdapError::LdapResult { result })
                if matches!(result.rc, rc::NO_SUCH_ATTRIBUTE | rc::NO_SUCH_OBJECT) =>
            {
                Ok(())
            }
            // Active Directory answers the removal of someone who is not a member with
            // unwillingToPerform (ERROR_MEMBER_NOT_IN_GROUP; seen against Samba AD: "Attribute
            // member doesn't exist …"), which it also uses for real refusals: done only if
            // the value is indeed not there.
            Err(LdapError::LdapResult { result })
                if self.cfg.mode == LdapMode::ActiveDirectory
                    && result.rc == rc::UNWILLING_TO_PERFORM =>
            {
                let there = self.read_optional(ldap, dn, &[attr]).await?;
                if there.is_some_and(|e| {
                    values(&e, attr)
                        .iter()
                        .any(|v| v.eq_ignore_ascii_case(value))
                }) {
                    Err(NotDone::Rejected(format!(
                        "removing {attr} {value} from {dn}: {}",
                        describe(&result)
                    )))
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(refused(&format!("removing {attr} {value} from {dn}"), e)),
        }
    }

    async fn delete_value_all(&self, ldap: &mut ldap3::Ldap, dn: &str, attr: &str) -> Step<()> {
        match ldap
            .modify(dn, vec![Mod::Delete(attr, HashSet::<&str>::new())])
            .await
            .and_then(ldap3::LdapResult::success)
        {
            Ok(_) => Ok(()),
            Err(LdapError::LdapResult { result }) if result.rc == rc::NO_SUCH_ATTRIBUTE => Ok(()),
            Err(e) => Err(refused(&format!("removing {attr} from {dn}"), e)),
        }
    }

    async fn read(&self, ldap: &mut ldap3::Ldap, dn: &str, attrs: &[&str]) -> Step<SearchEntry> {
        let (entries, _) = ldap
            .search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| refused(&format!("reading {dn} back"), e))?;
        entries
            .into_iter()
            .find_map(entry)
            .ok_or_else(|| NotDone::RetryLater(format!("{dn} did not read back")))
    }

    /// What the account is now, read back after the change.
    async fn read_account(&self, ldap: &mut ldap3::Ldap, dn: &str) -> Step<Value> {
        match self.cfg.mode {
            LdapMode::OpenLdap => {
                let e = self
                    .read(ldap, dn, &["mail", "pwdReset", "pwdAccountLockedTime"])
                    .await?;
                let locked = first(&e, "pwdAccountLockedTime");
                Ok(json!({
                    "dn": dn,
                    "mail": first(&e, "mail"),
                    "must_change": first(&e, "pwdReset").is_some_and(|v| v.eq_ignore_ascii_case("TRUE")),
                    "locked": locked.is_some(),
                    "disabled": locked.as_deref() == Some(PERMANENT_LOCK),
                }))
            }
            LdapMode::ActiveDirectory => {
                let e = self
                    .read(
                        ldap,
                        dn,
                        &["mail", "pwdLastSet", "lockoutTime", "userAccountControl"],
                    )
                    .await?;
                let uac: u32 = first(&e, "userAccountControl")
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                Ok(json!({
                    "dn": dn,
                    "mail": first(&e, "mail"),
                    "must_change": first(&e, "pwdLastSet").as_deref() == Some("0"),
                    "locked": first(&e, "lockoutTime").is_some_and(|v| v != "0"),
                    "disabled": uac & ACCOUNTDISABLE != 0,
                }))
            }
        }
    }

    async fn read_group(
        &self,
        ldap: &mut ldap3::Ldap,
        mailbox: &str,
        group: &str,
        member: &str,
    ) -> Step<Value> {
        let owner_attr = self.cfg.owner_attribute.as_str();
        let attrs: Vec<&str> = match self.cfg.owner_groups {
            Some(_) => vec!["member"],
            None => vec!["member", owner_attr],
        };
        // A group that is not there has nobody in it (a removal from a missing group).
        let e = self.read_optional(ldap, group, &attrs).await?;
        let has = |e: &Option<SearchEntry>, attr: &str| {
            e.as_ref().is_some_and(|e| {
                values(e, attr)
                    .iter()
                    .any(|v| v.eq_ignore_ascii_case(member))
            })
        };
        let owner = match &self.cfg.owner_groups {
            Some(base) => {
                let owners = self
                    .read_optional(ldap, &group_dn(base, mailbox), &["member"])
                    .await?;
                has(&owners, "member")
            }
            None => has(&e, owner_attr),
        };
        Ok(json!({ "group": group, "member": has(&e, "member"), "owner": owner }))
    }

    /// `dn`'s attributes, or `None` when there is no such entry.
    async fn read_optional(
        &self,
        ldap: &mut ldap3::Ldap,
        dn: &str,
        attrs: &[&str],
    ) -> Step<Option<SearchEntry>> {
        match ldap
            .search(dn, Scope::Base, "(objectClass=*)", attrs.to_vec())
            .await
            .and_then(ldap3::SearchResult::success)
        {
            Ok((entries, _)) => Ok(entries.into_iter().find_map(entry)),
            Err(LdapError::LdapResult { result }) if result.rc == rc::NO_SUCH_OBJECT => Ok(None),
            Err(e) => Err(refused(&format!("reading {dn} back"), e)),
        }
    }
}

/// One row of the directory as the target has it, in the shape of postroom's CSV import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetRow {
    pub organisation: String,
    pub mailbox: String,
    pub account: String,
    pub name: String,
    pub role: Role,
    pub status: AccountStatus,
}

/// What the target holds: a row per membership, and how many accounts were in no mailbox
/// group (postroom files every account under an organisation, which only a group gives).
#[derive(Debug, Default)]
pub struct TargetDirectory {
    pub rows: Vec<TargetRow>,
    /// Groups under `groups` whose name is not an address (not a shared mailbox).
    pub groups_skipped: usize,
    pub accounts_without_mailbox: usize,
}

/// Entries per page: a directory of a million accounts is read a page at a time (RFC 2696;
/// Active Directory answers at most 1000 per page whatever is asked).
const PAGE: i32 = 500;

impl LdapTarget {
    /// Read every account under `people` and every mailbox group under `groups`.
    pub async fn read_all(&self) -> Result<TargetDirectory, NotDone> {
        let mut ldap = self
            .session(&self.cfg.bind_dn, self.cfg.bind_password.expose())
            .await
            .map_err(|e| refused(&format!("binding to {}", self.cfg.url), e))?;
        let person_attrs: Vec<&str> = match self.cfg.mode {
            LdapMode::OpenLdap => vec!["mail", "cn", "pwdAccountLockedTime"],
            LdapMode::ActiveDirectory => vec!["mail", "cn", "userAccountControl", "lockoutTime"],
        };
        let people = self
            .all(&mut ldap, &self.cfg.people, "(mail=*)", &person_attrs)
            .await?;
        let mut accounts: std::collections::HashMap<String, (String, String, AccountStatus)> =
            std::collections::HashMap::new();
        for e in people {
            let Some(mail) = first(&e, "mail") else {
                continue;
            };
            let name = first(&e, "cn").unwrap_or_else(|| mail.clone());
            let status = match self.cfg.mode {
                LdapMode::OpenLdap => match first(&e, "pwdAccountLockedTime").as_deref() {
                    None => AccountStatus::Active,
                    Some(PERMANENT_LOCK) => AccountStatus::Disabled,
                    Some(_) => AccountStatus::Locked,
                },
                LdapMode::ActiveDirectory => {
                    let uac: u32 = first(&e, "userAccountControl")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if uac & ACCOUNTDISABLE != 0 {
                        AccountStatus::Disabled
                    } else if first(&e, "lockoutTime").is_some_and(|v| v != "0") {
                        AccountStatus::Locked
                    } else {
                        AccountStatus::Active
                    }
                }
            };
            accounts.insert(
                e.dn.to_ascii_lowercase(),
                (mail.to_ascii_lowercase(), name, status),
            );
        }
        const GROUPS: &str = "(|(objectClass=groupOfNames)(objectClass=group))";
        let owner_attr = self.cfg.owner_attribute.clone();
        let groups = self
            .all(
                &mut ldap,
                &self.cfg.groups,
                GROUPS,
                &["cn", "member", owner_attr.as_str(), "o"],
            )
            .await?;
        // With owners' groups: each mailbox's owners, by the group's name.
        let mut owner_groups: std::collections::HashMap<String, Vec<String>> =
            std::collections::HashMap::new();
        if let Some(base) = &self.cfg.owner_groups {
            for g in self.all(&mut ldap, base, GROUPS, &["cn", "member"]).await? {
                if let Some(cn) = first(&g, "cn") {
                    owner_groups.insert(cn.to_ascii_lowercase(), values(&g, "member"));
                }
            }
        }
        let _ = ldap.unbind().await;
        let mut out = TargetDirectory::default();
        let mut placed = std::collections::HashSet::new();
        for g in groups {
            let Some(mailbox) = first(&g, "cn").filter(|c| c.contains('@')) else {
                out.groups_skipped += 1;
                continue;
            };
            let mailbox = mailbox.to_ascii_lowercase();
            let organisation = first(&g, "o").unwrap_or_else(|| mailbox.clone());
            let owner_dns = match self.cfg.owner_groups {
                Some(_) => owner_groups.remove(&mailbox).unwrap_or_default(),
                None => values(&g, &owner_attr),
            };
            let owners: std::collections::HashSet<String> = owner_dns
                .into_iter()
                .map(|d| d.to_ascii_lowercase())
                .collect();
            for dn in values(&g, "member") {
                let dn = dn.to_ascii_lowercase();
                // A member that is not an account under `people` (a nested group, a
                // service entry) is not postroom's to list.
                let Some((mail, name, status)) = accounts.get(&dn) else {
                    continue;
                };
                placed.insert(dn.clone());
                out.rows.push(TargetRow {
                    organisation: organisation.clone(),
                    mailbox: mailbox.clone(),
                    account: mail.clone(),
                    name: name.clone(),
                    role: if owners.contains(&dn) {
                        Role::Owner
                    } else {
                        Role::Member
                    },
                    status: *status,
                });
            }
        }
        out.accounts_without_mailbox = accounts.keys().filter(|dn| !placed.contains(*dn)).count();
        out.rows
            .sort_by(|a, b| (&a.mailbox, &a.account).cmp(&(&b.mailbox, &b.account)));
        Ok(out)
    }

    /// Every entry under `base` matching `filter`, a page at a time.
    async fn all(
        &self,
        ldap: &mut ldap3::Ldap,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> Step<Vec<SearchEntry>> {
        let what = format!("reading {base}");
        let adapters: Vec<Box<dyn ldap3::adapters::Adapter<'_, &str, Vec<&str>>>> = vec![
            Box::new(ldap3::adapters::EntriesOnly::new()),
            Box::new(ldap3::adapters::PagedResults::new(PAGE)),
        ];
        let mut stream = ldap
            .streaming_search_with(adapters, base, Scope::Subtree, filter, attrs.to_vec())
            .await
            .map_err(|e| refused(&what, e))?;
        let mut out = Vec::new();
        while let Some(e) = stream.next().await.map_err(|e| refused(&what, e))? {
            if let Some(e) = entry(e) {
                out.push(e);
            }
        }
        stream
            .finish()
            .await
            .success()
            .map_err(|e| refused(&what, e))?;
        Ok(out)
    }
}

/// Every value of `attr`.
fn values(e: &SearchEntry, attr: &str) -> Vec<String> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .map(|(_, vs)| vs.clone())
        .unwrap_or_default()
}

/// A search result entry as attributes; ldap3 panics on a malformed entry, which must not take
/// the worker down with it.
fn entry(e: ldap3::ResultEntry) -> Option<SearchEntry> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| SearchEntry::construct(e))).ok()
}

/// The first value of `attr` (attribute names are case-insensitive).
fn first(e: &SearchEntry, attr: &str) -> Option<String> {
    e.attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(attr))
        .and_then(|(_, vs)| vs.first().cloned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_active_directory_password_is_quoted_utf16le() {
        assert_eq!(unicode_pwd("ab"), vec![b'"', 0, b'a', 0, b'b', 0, b'"', 0]);
        // A character outside ASCII is one UTF-16 unit, little-endian.
        assert_eq!(unicode_pwd("é")[2..4], [0xE9, 0x00]);
    }

    #[test]
    fn the_server_refusing_is_for_good_and_the_server_failing_is_for_later() {
        let result = |rc: u32| LdapError::LdapResult {
            result: ldap3::LdapResult {
                rc,
                matched: String::new(),
                text: "because".into(),
                refs: vec![],
                ctrls: vec![],
            },
        };
        assert!(matches!(refused("x", result(19)), NotDone::Rejected(m) if m.contains("because")));
        assert!(matches!(
            refused("x", result(rc::UNAVAILABLE)),
            NotDone::RetryLater(_)
        ));
        assert!(matches!(
            refused("x", result(rc::BUSY)),
            NotDone::RetryLater(_)
        ));
    }
}
