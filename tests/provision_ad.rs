//! Provisioning to a real Active Directory (issue 15): postroom's `ldap` connector in
//! `active_directory` mode against the throw-away Samba AD domain controller of
//! tests/adstack/ (started by `scripts/test`). The DC answers a bind the way Windows does, with
//! the reason in its diagnostic (`data 52e` wrong password, `data 773` right password that must
//! be changed, `data 533` disabled, `data 775` locked out), so each change is checked by how
//! the person's own sign-in fares afterwards, not only by the attributes postroom wrote.
//!
//! postroom binds as a service account that is not a domain administrator: it has full
//! control of the people and groups containers only, delegated as an AD administrator would.

use crate::common::adstack::AdStack;
use crate::common::mailstack::MailStack;
use crate::daemon_support::Site;
use crate::provision_ldap::{ask_site, surname, temporary_password};
use postroom::provision::config::{LdapConfig, LdapMode, RawDirectory};
use postroom::provision::ldap::LdapTarget;
use postroom::provision::{NotDone, Operation};
use postroom::request::Role;
use postroom::secret::Secret;
use std::sync::Arc;
use std::time::Duration;

/// `groups`: the mailboxes' groups; `owners`: the owners' groups (AD's `group` has no
/// multi-valued owner attribute without Exchange's schema: `owner` is refused on it).
fn target(ad: &AdStack, url: &str, starttls: bool, groups: &str, owners: &str) -> LdapTarget {
    LdapTarget::new(&LdapConfig {
        url: url.to_owned(),
        mode: LdapMode::ActiveDirectory,
        starttls,
        ca_file: Some(ad.ca.clone()),
        bind_dn: ad.bind_dn.clone(),
        bind_password: Secret::new(ad.bind_password()),
        people: ad.people.clone(),
        groups: groups.to_owned(),
        owner_attribute: "owner".into(),
        owner_groups: Some(owners.to_owned()),
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

/// Letters only, different each run and each call (names and sAMAccountNames are unique in a
/// domain, and the DC outlives a test run when it is kept).
fn unique() -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ (u128::from(std::process::id()) << 20)
        ^ u128::from(N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) << 40;
    let mut s = String::new();
    for _ in 0..8 {
        s.push(char::from(b'a' + u8::try_from(x % 26).unwrap()));
        x /= 26;
    }
    s
}

async fn connect(ad: &AdStack, url: &str) -> ldap3::Ldap {
    let tls = postroom::tls_client::config(Some(&ad.ca), "test").unwrap();
    let settings = ldap3::LdapConnSettings::new()
        .set_conn_timeout(Duration::from_secs(10))
        .set_config(Arc::new(tls));
    let (conn, ldap) = ldap3::LdapConnAsync::with_settings(settings, url)
        .await
        .unwrap();
    ldap3::drive!(conn);
    ldap
}

/// A simple bind as `dn`: `Ok`, or the result code and the DC's diagnostic.
async fn bind(ad: &AdStack, url: &str, dn: &str, password: &str) -> Result<(), (u32, String)> {
    let mut ldap = connect(ad, url).await;
    let r = ldap.simple_bind(dn, password).await.unwrap();
    let _ = ldap.unbind().await;
    if r.rc == 0 {
        Ok(())
    } else {
        Err((r.rc, r.text))
    }
}

/// How the person's sign-in fares: "ok", or the DC's `data NNN` reason.
async fn sign_in(ad: &AdStack, dn: &str, password: &str) -> String {
    match bind(ad, &ad.ldaps_url, dn, password).await {
        Ok(()) => "ok".into(),
        Err((49, text)) => text
            .split(", ")
            .find_map(|p| p.strip_prefix("data "))
            .map(|d| format!("data {d}"))
            .unwrap_or(text),
        Err((rc, text)) => format!("rc {rc}: {text}"),
    }
}

/// The domain's Administrator over LDAPS, for arranging and inspecting.
async fn admin(ad: &AdStack) -> ldap3::Ldap {
    let mut ldap = connect(ad, &ad.ldaps_url).await;
    ldap.simple_bind(&ad.admin_dn, &ad.admin_password())
        .await
        .unwrap()
        .success()
        .unwrap();
    ldap
}

/// `(dn, values of attr)` of the entries below `base` matching `filter`.
async fn search(ad: &AdStack, base: &str, filter: &str, attr: &str) -> Vec<(String, Vec<String>)> {
    let mut ldap = admin(ad).await;
    let (entries, _) = ldap
        .search(base, ldap3::Scope::Subtree, filter, vec![attr])
        .await
        .unwrap()
        .success()
        .unwrap();
    let _ = ldap.unbind().await;
    entries
        .into_iter()
        .map(|e| {
            let e = ldap3::SearchEntry::construct(e);
            let values = e
                .attrs
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(attr))
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            (e.dn, values)
        })
        .collect()
}

/// Containers of the test's own for the mailboxes' groups and their owners' groups (`directory
/// diff` and import read a whole container), side by side under the delegated `groups`.
async fn containers(ad: &AdStack) -> (String, String) {
    let ou = format!("t-{}", unique());
    let top = format!("OU={ou},{}", ad.groups);
    let mut ldap = admin(ad).await;
    let mut made = Vec::new();
    for (dn, name) in [
        (top.clone(), ou.as_str()),
        (format!("OU=mailboxes,{top}"), "mailboxes"),
        (format!("OU=owners,{top}"), "owners"),
    ] {
        ldap.add(
            &dn,
            vec![
                (
                    "objectClass",
                    std::collections::HashSet::from(["organizationalUnit"]),
                ),
                ("ou", std::collections::HashSet::from([name])),
            ],
        )
        .await
        .unwrap()
        .success()
        .unwrap();
        made.push(dn);
    }
    let _ = ldap.unbind().await;
    (made[1].clone(), made[2].clone())
}

fn new_starter(last: &str, password: &str) -> (String, Operation) {
    let address = format!("nina.{last}@test.example");
    let op = Operation::CreateAccount {
        address: address.clone(),
        name: format!("Nina {last}"),
        first: "Nina".into(),
        last: last.to_owned(),
        job_title: Some("Carer".into()),
        password: password.to_owned(),
    };
    (address, op)
}

#[tokio::test]
async fn a_domain_controller_takes_no_password_over_plain_ldap_and_postroom_asks_for_tls() {
    let Some(ad) = AdStack::require() else { return };

    // The DC itself: a simple bind over plain LDAP is refused before any password can be
    // written (strongerAuthRequired); the same bind over LDAPS works.
    let plain = bind(&ad, &ad.url, &ad.bind_dn, &ad.bind_password()).await;
    assert!(matches!(plain, Err((8, _))), "{plain:?}");
    assert_eq!(
        bind(&ad, &ad.ldaps_url, &ad.bind_dn, &ad.bind_password()).await,
        Ok(())
    );

    // postroom refuses the configuration before it ever connects: unicodePwd must not cross
    // the network in clear, whatever a server allows (Samba 4.17 with strong auth turned off
    // does accept it).
    let raw: RawDirectory = toml::from_str(&format!(
        "target = \"ldap\"\nmode = \"active_directory\"\nurl = \"{}\"\nbind_dn = \"{}\"\n\
         bind_password_file = \"{}\"\npeople = \"{}\"\ngroups = \"{}\"\n\
         owner_groups = \"OU=Owners,{}\"\n",
        ad.url,
        ad.bind_dn,
        ad.bind_password_file.display(),
        ad.people,
        ad.groups,
        ad.base
    ))
    .unwrap();
    let refused = postroom::provision::config::check(raw)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("url") && refused.contains("encrypted"),
        "{refused}"
    );

    // A connector built around the check anyway is refused for good by the DC, not retried
    // all day: staff get the DC's words.
    let (_, op) = new_starter(&unique(), "Plain-Text-4821");
    let answer = target(&ad, &ad.url, false, &ad.groups, &ad.groups)
        .apply(&[op])
        .await;
    assert!(
        matches!(answer, Err(NotDone::Rejected(ref m)) if m.contains("LDAP result 8")),
        "{answer:?}"
    );

    // `postroom check` over LDAPS and over StartTLS: bound, both containers found.
    for (url, starttls) in [(&ad.ldaps_url, false), (&ad.url, true)] {
        let checked = target(&ad, url, starttls, &ad.groups, &ad.groups)
            .check()
            .await;
        assert!(
            checked.as_ref().is_ok_and(|m| m.contains(&ad.people)),
            "{checked:?}"
        );
    }
}

#[tokio::test]
async fn accounts_are_created_reset_locked_out_unlocked_and_disabled_in_active_directory() {
    let Some(ad) = AdStack::require() else { return };
    let t = target(&ad, &ad.ldaps_url, false, &ad.groups, &ad.groups);
    let last = unique();
    // The generator postroom uses for every temporary password: the domain's complexity
    // policy must take it.
    let first = postroom::password::temporary();
    let (address, create) = new_starter(&last, &first);

    let done = t.apply(std::slice::from_ref(&create)).await.unwrap();
    let read_back = &done[0]["read_back"];
    assert_eq!(read_back["must_change"], true, "{done:?}");
    assert_eq!(read_back["disabled"], false, "{done:?}");
    let dn = read_back["dn"].as_str().unwrap().to_owned();
    // The right password, which must be changed at first sign-in; a wrong one is wrong.
    assert_eq!(sign_in(&ad, &dn, &first).await, "data 773");
    assert_eq!(sign_in(&ad, &dn, "Not-the-pass-1").await, "data 52e");

    // A job replayed after a crash converges: one account with that mail, the same password.
    t.apply(std::slice::from_ref(&create)).await.unwrap();
    let found = search(
        &ad,
        &ad.people,
        &format!("(mail={address})"),
        "sAMAccountName",
    )
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].1, vec![format!("nina.{last}")]);
    assert_eq!(sign_in(&ad, &dn, &first).await, "data 773");

    // A reset: the old password stops working, the new one must be changed.
    let second = postroom::password::temporary();
    let reset = Operation::ResetPassword {
        address: address.clone(),
        password: second.clone(),
    };
    t.apply(std::slice::from_ref(&reset)).await.unwrap();
    assert_eq!(sign_in(&ad, &dn, &first).await, "data 52e");
    assert_eq!(sign_in(&ad, &dn, &second).await, "data 773");

    // Locked out by three wrong passwords (the DC's policy), then unlocked by postroom.
    for _ in 0..3 {
        sign_in(&ad, &dn, "Wrong-pass-99").await;
    }
    assert_eq!(sign_in(&ad, &dn, &second).await, "data 775");
    let unlock = Operation::Unlock {
        address: address.clone(),
    };
    let done = t.apply(std::slice::from_ref(&unlock)).await.unwrap();
    assert_eq!(done[0]["read_back"]["locked"], false, "{done:?}");
    assert_eq!(sign_in(&ad, &dn, &second).await, "data 773");

    // A leaver: disabled, and the right password no longer gets in.
    let leave = Operation::Disable {
        address: address.clone(),
    };
    let done = t.apply(std::slice::from_ref(&leave)).await.unwrap();
    assert_eq!(done[0]["read_back"]["disabled"], true, "{done:?}");
    assert_eq!(sign_in(&ad, &dn, &second).await, "data 533");
    // Disabling again is the same (a replayed job).
    t.apply(std::slice::from_ref(&leave)).await.unwrap();
    assert_eq!(sign_in(&ad, &dn, &second).await, "data 533");

    // Unlock also re-enables (postroom's "restore an account").
    t.apply(&[unlock]).await.unwrap();
    assert_eq!(sign_in(&ad, &dn, &second).await, "data 773");

    // An account the domain does not have is refused with words staff can act on.
    let missing = t
        .apply(&[Operation::ResetPassword {
            address: format!("nobody.{last}@test.example"),
            password: postroom::password::temporary(),
        }])
        .await;
    assert!(
        matches!(missing, Err(NotDone::Rejected(ref m)) if m.contains("no account")),
        "{missing:?}"
    );
}

#[tokio::test]
async fn mailbox_groups_gain_and_lose_members_and_owners_and_are_read_back_from_the_domain() {
    let Some(ad) = AdStack::require() else { return };
    let (groups, owners) = containers(&ad).await;
    // Over StartTLS this time.
    let t = target(&ad, &ad.url, true, &groups, &owners);
    let last = unique();
    let (member, create_member) = new_starter(&last, &postroom::password::temporary());
    let owner = format!("omar.{last}@test.example");
    let create_owner = Operation::CreateAccount {
        address: owner.clone(),
        name: format!("Omar {last}"),
        first: "Omar".into(),
        last: last.clone(),
        job_title: None,
        password: postroom::password::temporary(),
    };
    let mailbox = format!("care-{last}@test.example");
    let ops = vec![
        create_member,
        create_owner,
        Operation::AddMember {
            mailbox: mailbox.clone(),
            account: member.clone(),
            role: Role::Member,
        },
        Operation::AddMember {
            mailbox: mailbox.clone(),
            account: owner.clone(),
            role: Role::Owner,
        },
    ];
    // Twice: the second run changes nothing.
    for _ in 0..2 {
        let done = t.apply(&ops).await.unwrap();
        assert_eq!(done[2]["read_back"]["member"], true, "{done:?}");
        assert_eq!(done[2]["read_back"]["owner"], false, "{done:?}");
        assert_eq!(done[3]["read_back"]["owner"], true, "{done:?}");
    }
    let group = format!("CN={mailbox},{groups}");
    let dn_of = |who: &str| {
        let who = who.to_owned();
        let ad = ad.clone();
        async move {
            search(&ad, &ad.people, &format!("(mail={who})"), "cn")
                .await
                .first()
                .map(|(dn, _)| dn.clone())
                .unwrap()
        }
    };
    let (member_dn, owner_dn) = (dn_of(&member).await, dn_of(&owner).await);
    let values = |attr: &'static str| {
        let ad = ad.clone();
        let group = group.clone();
        async move {
            let mut v = search(&ad, &group, "(objectClass=group)", attr)
                .await
                .first()
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            v.sort();
            v
        }
    };
    let mut both = vec![member_dn.clone(), owner_dn.clone()];
    both.sort();
    let owners_group = format!("CN={mailbox},{owners}");
    let owners_of = || {
        let ad = ad.clone();
        let owners_group = owners_group.clone();
        async move {
            search(&ad, &owners_group, "(objectClass=group)", "member")
                .await
                .first()
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        }
    };
    assert_eq!(values("member").await, both);
    assert_eq!(owners_of().await, vec![owner_dn.clone()]);

    // What the domain holds, as `directory import --from-target` reads it.
    let read = t.read_all().await.unwrap();
    let mut rows: Vec<(String, String, Role)> = read
        .rows
        .iter()
        .filter(|r| r.mailbox == mailbox)
        .map(|r| (r.account.clone(), r.mailbox.clone(), r.role))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        rows,
        vec![
            (member.clone(), mailbox.clone(), Role::Member),
            (owner.clone(), mailbox.clone(), Role::Owner),
        ]
    );

    // The owner becomes a member only; the member leaves the mailbox.
    let done = t
        .apply(&[
            Operation::ChangeRole {
                mailbox: mailbox.clone(),
                account: owner.clone(),
                role: Role::Member,
            },
            Operation::RemoveMember {
                mailbox: mailbox.clone(),
                account: member.clone(),
            },
        ])
        .await
        .unwrap();
    assert_eq!(done[0]["read_back"]["owner"], false, "{done:?}");
    assert_eq!(done[1]["read_back"]["member"], false, "{done:?}");
    assert_eq!(values("member").await, vec![owner_dn]);
    assert!(owners_of().await.is_empty());
}

/// End to end: a new starter's email goes in through Postfix, `postroom run` creates the
/// account in the domain (through its delegated service account, over LDAPS) and only then
/// answers; the password in the reply is the one the domain holds.
#[tokio::test]
async fn a_new_starter_asked_by_email_is_made_in_active_directory_before_the_site_hears_done() {
    let Some(ad) = AdStack::require() else { return };
    let stack = MailStack::require();
    let (groups, owners) = containers(&ad).await;
    let q = |s: &str| format!("\"{s}\"");
    let settings = [
        ("target", q("ldap")),
        ("mode", q("active_directory")),
        ("url", q(&ad.ldaps_url)),
        ("ca_file", q(&ad.ca.display().to_string())),
        ("bind_dn", q(&ad.bind_dn)),
        (
            "bind_password_file",
            q(&ad.bind_password_file.display().to_string()),
        ),
        ("people", q(&ad.people)),
        ("groups", q(&groups)),
        ("owner_groups", q(&owners)),
        ("timeout", q("10s")),
    ];
    let overrides: Vec<(&str, &str, &str)> = settings
        .iter()
        .map(|(k, v)| ("directory", *k, v.as_str()))
        .collect();
    let site = Site::new(&stack, &overrides);
    let daemon = site.start();

    let last = surname();
    let (_, raw) = site.request(
        "New starter",
        "",
        &format!(
            "A new carer, Nina {last}, starts on Monday. Could she have an account please?\n\n\
             Requested by: {}\n",
            site.owner
        ),
    );
    let reply = ask_site(&site, &raw, 1).await;
    assert!(reply.contains("has been done"), "{reply}");
    let address = format!("nina.{}@test.example", last.to_lowercase());
    let password = temporary_password(&reply);

    let found = search(&ad, &ad.people, &format!("(mail={address})"), "cn").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let dn = found[0].0.clone();
    // The password from the reply is the account's, and must be changed at first sign-in.
    assert_eq!(sign_in(&ad, &dn, &password).await, "data 773");
    let group = format!("CN={},{groups}", site.mailbox);
    let members = search(&ad, &group, "(objectClass=group)", "member").await;
    assert_eq!(members.first().map(|(_, v)| v.clone()), Some(vec![dn]));
    daemon.stop();
}
