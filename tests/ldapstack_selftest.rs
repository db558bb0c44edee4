//! Checks the test LDAP directory itself (tests/ldapstack/, tests/common/ldapstack.rs)
//! and the mail stack's Dovecot logging people in against it: if these fail, every
//! directory test of issue 15 would fail for the wrong reason.

use crate::common::ldapstack::{LOCKED_FOR_GOOD, LdapStack};
use crate::common::mailstack::MailStack;

/// Both stacks, checking that the mail stack's Dovecot uses this directory. The
/// directory's lock is taken first (see tests/common/ldapstack.rs).
fn both(ldap: LdapStack) -> (LdapStack, MailStack) {
    let mail = MailStack::require();
    match (&mail.ldap_env, &ldap.env_file) {
        (Some(used), Some(ours)) => assert_eq!(
            used, ours,
            "the mail stack authenticates against another directory"
        ),
        (None, _) => panic!(
            "the mail stack was started without MAILSTACK_LDAP_ENV: Dovecot does not know \
             the test directory (scripts/test passes it)"
        ),
        (Some(_), None) => {}
    }
    (ldap, mail)
}

async fn login_ok(mail: &MailStack, user: &str, password: &str) -> bool {
    match mail.imap_login_with(user, password).await {
        Ok(mut session) => {
            let _ = session.logout().await;
            true
        }
        Err(e) => {
            assert!(
                e.contains("AUTHENTICATIONFAILED") || e.contains("Authentication failed"),
                "LOGIN {user} failed for another reason than its credentials: {e}"
            );
            false
        }
    }
}

#[test]
fn manager_writes_people_and_groups_and_reads_no_passwords() {
    let ldap = LdapStack::require();
    let alice = ldap.unique_person("selftest-alice", "alice-pw-1");
    let bob = ldap.unique_person("selftest-bob", "bob-pw-1");

    // Found by address, the way Dovecot (and postroom) look people up.
    let found = ldap
        .search(
            &ldap.people,
            &format!("(mail={})", alice.mail),
            &["uid", "mail"],
        )
        .expect("search");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, alice.dn);
    assert_eq!(found[0].1["mail"], vec![alice.mail.clone()]);

    // The manager sets passwords but cannot read them.
    assert!(ldap.values(&alice.dn, "userPassword").is_empty());
    ldap.bind(&alice.dn, "alice-pw-1")
        .expect("bind with the set password");
    ldap.bind(&alice.dn, "wrong").expect_err("wrong password");

    // A shared mailbox: members and owners.
    let mailbox = format!("{}.box@test.example", alice.uid);
    let group = ldap.add_mailbox_group(&mailbox, &[&bob.dn], &[&alice.dn]);
    let members = ldap.values(&group, "member");
    assert!(
        members.contains(&alice.dn) && members.contains(&bob.dn),
        "{members:?}"
    );
    assert_eq!(ldap.values(&group, "owner"), vec![alice.dn.clone()]);
    let owned = ldap
        .search(&ldap.groups, &format!("(owner={})", alice.dn), &["cn"])
        .expect("search groups");
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].1["cn"], vec![mailbox]);

    // A person reads their own entry but cannot write the directory.
    let refused = std::process::Command::new("ldapmodify")
        .args(["-x", "-H", &ldap.url, "-D", &bob.dn, "-w", "bob-pw-1"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(
                format!(
                    "dn: {group}\nchangetype: modify\nadd: owner\nowner: {}\n",
                    bob.dn
                )
                .as_bytes(),
            )?;
            c.wait()
        })
        .expect("run ldapmodify");
    assert!(
        !refused.success(),
        "a member must not make himself an owner"
    );
}

#[test]
fn ppolicy_must_change_history_and_lockout() {
    let ldap = LdapStack::require();
    let p = ldap.unique_person("selftest-policy", "first-pw");

    // Must change: the manager's temporary password carries pwdReset.
    ldap.reset_password_must_change(&p.dn, "temp-pw");
    assert!(ldap.must_change(&p.dn));
    ldap.bind(&p.dn, "temp-pw")
        .expect("a must-change account can still bind");
    ldap.change_own_password(&p.dn, "temp-pw", "own-pw-1")
        .expect("the person changes the temporary password");
    assert!(!ldap.must_change(&p.dn), "changing it clears pwdReset");

    // History: the previous passwords are refused.
    let err = ldap
        .change_own_password(&p.dn, "own-pw-1", "temp-pw")
        .expect_err("a password from the history");
    assert!(err.contains("history"), "{err}");

    // Five wrong binds lock the account for good.
    for _ in 0..5 {
        ldap.bind(&p.dn, "wrong").expect_err("wrong password");
    }
    assert!(
        ldap.locked_time(&p.dn).is_some(),
        "pwdAccountLockedTime after 5 failures"
    );
    ldap.bind(&p.dn, "own-pw-1")
        .expect_err("a locked account cannot bind, even with its password");
    ldap.unlock(&p.dn);
    assert!(ldap.values(&p.dn, "pwdFailureTime").is_empty());
    ldap.bind(&p.dn, "own-pw-1").expect("unlocked");
}

#[test]
fn ldaps_verifies_with_the_stack_ca_only() {
    let ldap = LdapStack::require();
    let p = ldap.unique_person("selftest-ldaps", "tls-pw");
    let ca = ldap.ca.clone().expect("LDAPSTACK_CA");
    ldap.bind_ldaps(&p.dn, "tls-pw", &ca).expect("LDAPS bind");
    // Another CA (the mail stack's, or any) does not vouch for this certificate.
    let other = std::env::temp_dir().join(format!("ldapstack-other-ca-{}.pem", std::process::id()));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-subj",
            "/CN=other",
            "-days",
            "1",
            "-keyout",
            "/dev/null",
            "-out",
        ])
        .arg(&other)
        .output()
        .expect("openssl");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let refused = ldap.bind_ldaps(&p.dn, "tls-pw", &other);
    let _ = std::fs::remove_file(&other);
    refused.expect_err("a certificate not signed by the given CA must be refused");
}

#[tokio::test]
async fn imap_login_follows_the_directory() {
    let (ldap, mail) = both(LdapStack::require());
    let p = ldap.unique_person("selftest-imap", "pw-one");

    assert!(
        login_ok(&mail, &p.mail, "pw-one").await,
        "LDAP person logs in to IMAP"
    );
    // The address is the login name whatever its case (Dovecot looks up %Lu).
    assert!(login_ok(&mail, &p.mail.to_uppercase(), "pw-one").await);
    assert!(!login_ok(&mail, &p.mail, "wrong").await);

    // The person changes the password: the old one fails at once (no auth cache).
    ldap.change_own_password(&p.dn, "pw-one", "pw-two")
        .expect("own change");
    assert!(
        !login_ok(&mail, &p.mail, "pw-one").await,
        "old password must fail"
    );
    assert!(
        login_ok(&mail, &p.mail, "pw-two").await,
        "new password works"
    );

    // Locked in the directory: LOGIN fails even with the right password.
    ldap.lock(&p.dn);
    assert_eq!(ldap.locked_time(&p.dn).as_deref(), Some(LOCKED_FOR_GOOD));
    assert!(
        !login_ok(&mail, &p.mail, "pw-two").await,
        "locked account must not log in"
    );
    ldap.unlock(&p.dn);
    assert!(
        login_ok(&mail, &p.mail, "pw-two").await,
        "unlocked account logs in"
    );

    // A must-change temporary password still lets the mailbox be read (only LDAP
    // operations are restricted until it is changed).
    ldap.reset_password_must_change(&p.dn, "temp-three");
    assert!(login_ok(&mail, &p.mail, "temp-three").await);

    // The passwd-file users are untouched by the second passdb.
    assert!(login_ok(&mail, "jane.doe@nhs.example", &mail.password).await);
}

#[tokio::test]
async fn mail_is_delivered_to_directory_people() {
    let (ldap, mail) = both(LdapStack::require());
    let p = ldap.unique_person("selftest-lmtp", "deliver-pw");
    let raw = format!(
        "From: jane.doe@nhs.example\r\nTo: {}\r\nSubject: to a directory person\r\n\
         Message-ID: <lmtp-{}@selftest.test.example>\r\n\r\nhello\r\n",
        p.mail, p.uid
    );
    mail.send("jane.doe@nhs.example", &[&p.mail], raw.as_bytes())
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let mut session = mail
            .imap_login_with(&p.mail, "deliver-pw")
            .await
            .expect("login");
        let inbox = session.select("INBOX").await.expect("select");
        let _ = session.logout().await;
        if inbox.exists >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "mail to {} never arrived",
            p.mail
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn slapd_restart_keeps_the_data() {
    // Exclusive: no other directory test runs while slapd is down.
    let (ldap, mail) = both(LdapStack::require_exclusive());
    let p = ldap.unique_person("selftest-restart", "restart-pw");
    assert!(login_ok(&mail, &p.mail, "restart-pw").await);

    ldap.stop_slapd();
    ldap.bind(&p.dn, "restart-pw").expect_err("slapd is down");
    let down = mail.imap_login_with(&p.mail, "restart-pw").await;
    let Err(err) = down else {
        panic!("no LOGIN while the directory is down");
    };
    assert!(
        err.contains("UNAVAILABLE") || err.contains("Temporary"),
        "{err}"
    );
    // Accounts of the passwd-file do not depend on the directory.
    assert!(login_ok(&mail, "jane.doe@nhs.example", &mail.password).await);

    ldap.start_slapd();
    ldap.bind(&p.dn, "restart-pw")
        .expect("same data after the restart");
    assert!(
        login_ok(&mail, &p.mail, "restart-pw").await,
        "Dovecot reconnects"
    );
}
