//! Provisioning to a real OpenLDAP (issue 15): `postroom run` with `[directory] target =
//! "ldap"` against the throw-away slapd of tests/ldapstack/, whose accounts the mail stack's
//! Dovecot also signs in (a second passdb, `auth_bind`). A change is made in LDAP before the
//! site hears "done"; the people it concerns sign in (or no longer can) with what the reply
//! says. Also the faults: slapd down (intake goes on, replies wait, all converge once it is
//! back, nothing doubled), a refusal (staff get it, the site is told a person has it), and a
//! job replayed after a crash between the LDAP write and its record (it converges).

use crate::common::ldapstack::{LOCKED_FOR_GOOD, LdapStack, Person};
use crate::common::mailstack::MailStack;
use crate::daemon_support::{Daemon, Site, contains, eventually};
use postroom::provision::config::{LdapConfig, LdapMode};
use postroom::provision::ldap::LdapTarget;
use postroom::provision::{NotDone, Operation};
use postroom::request::Role;
use postroom::secret::Secret;
use std::time::Duration;

const FIRST_PASSWORD: &str = "First-pass-4821";
const REPLY_WAIT: Duration = Duration::from_secs(45);

/// A site whose accounts live in LDAP too: owner, member, locked (locked there as well), the
/// mailbox's group with the member and the locked one as members and the owner as owner.
struct LdapSite {
    site: Site,
    owner: Person,
    member: Person,
    locked: Person,
    group: String,
}

fn local(address: &str) -> &str {
    address.split('@').next().unwrap_or(address)
}

/// `groups`: the site's own container of mailbox groups (the test directory is shared by
/// tests running at once; `directory diff` and the reconcile read a whole container).
fn directory_settings(ldap: &LdapStack, groups: &str) -> Vec<(&'static str, &'static str, String)> {
    let q = |s: &str| format!("\"{s}\"");
    vec![
        ("directory", "target", q("ldap")),
        ("directory", "url", q(&ldap.url)),
        ("directory", "bind_dn", q(&ldap.bind_dn)),
        (
            "directory",
            "bind_password_file",
            q(&ldap.bind_password_file.display().to_string()),
        ),
        ("directory", "people", q(&ldap.people)),
        ("directory", "groups", q(groups)),
        ("directory", "timeout", q("3s")),
    ]
}

/// `in_ldap`: whether the locked account is put in LDAP (a refusal test leaves it out).
fn ldap_site(stack: &MailStack, ldap: &LdapStack, in_ldap: bool) -> LdapSite {
    ldap_site_with(stack, ldap, in_ldap, &[])
}

fn ldap_site_with(
    stack: &MailStack,
    ldap: &LdapStack,
    in_ldap: bool,
    extra: &[(&'static str, &'static str, &str)],
) -> LdapSite {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let container = format!(
        "site-{}-{}-{}",
        std::process::id(),
        surname().to_lowercase(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let groups = format!("ou={container},{}", ldap.groups);
    ldap.must_modify(&format!(
        "dn: {groups}\nobjectClass: organizationalUnit\nou: {container}\n"
    ));
    let mut settings = directory_settings(ldap, &groups);
    settings.extend(extra.iter().map(|(s, k, v)| (*s, *k, (*v).to_owned())));
    let overrides: Vec<(&str, &str, &str)> = settings
        .iter()
        .map(|(s, k, v)| (*s, *k, v.as_str()))
        .collect();
    let site = Site::new(stack, &overrides);
    let owner = ldap.add_person(local(&site.owner), &site.owner, FIRST_PASSWORD);
    let member = ldap.add_person(local(&site.member), &site.member, FIRST_PASSWORD);
    let locked = if in_ldap {
        let p = ldap.add_person(local(&site.locked), &site.locked, FIRST_PASSWORD);
        // Locked by failed sign-ins (a time), as postroom's "locked"; the permanent lock
        // (LOCKED_FOR_GOOD) is what postroom writes for "disabled".
        ldap.must_modify(&format!(
            "dn: {}\nchangetype: modify\nreplace: pwdAccountLockedTime\npwdAccountLockedTime: 20261201090000Z\n",
            p.dn
        ));
        p
    } else {
        Person {
            uid: local(&site.locked).to_owned(),
            dn: format!("uid={},{}", local(&site.locked), ldap.people),
            mail: site.locked.clone(),
        }
    };
    let mut members = vec![member.dn.as_str()];
    if in_ldap {
        members.push(locked.dn.as_str());
    }
    // The mailbox's group, in the site's container: members, and the owner as both.
    let group = format!("cn={},{groups}", site.mailbox);
    let mut ldif = format!(
        "dn: {group}\nobjectClass: groupOfNames\ncn: {}\no: {}\nmember: {}\nowner: {}\n",
        site.mailbox,
        site.organisation(),
        owner.dn,
        owner.dn
    );
    for m in &members {
        ldif.push_str(&format!("member: {m}\n"));
    }
    ldap.must_modify(&ldif);
    LdapSite {
        site,
        owner,
        member,
        locked,
        group,
    }
}

/// Send `raw` through Postfix and wait for the `n`th reply in the site's INBOX.
async fn ask(s: &LdapSite, raw: &[u8], n: usize) -> String {
    ask_site(&s.site, raw, n).await
}

pub(crate) async fn ask_site(site: &Site, raw: &[u8], n: usize) -> String {
    let stack = &site.stack;
    stack.send(&site.mailbox, &[&site.helpdesk], raw).await;
    let replies = stack.wait_for(&site.mailbox, "INBOX", n, REPLY_WAIT).await;
    String::from_utf8_lossy(&replies[n - 1]).into_owned()
}

/// The temporary password a reply carries.
pub(crate) fn temporary_password(reply: &str) -> String {
    reply
        .lines()
        .find_map(|l| l.trim().strip_prefix("Temporary password: "))
        .map(|p| p.trim().to_owned())
        .unwrap_or_else(|| panic!("no temporary password in the reply:\n{reply}"))
}

fn by(s: &LdapSite) -> String {
    format!("\n\nRequested by: {}\n", s.site.owner)
}

async fn signs_in(stack: &MailStack, user: &str, password: &str) -> bool {
    stack.imap_login_with(user, password).await.is_ok()
}

/// A surname of letters only, different each run (addresses are first.last@).
pub(crate) fn surname() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
        ^ u128::from(std::process::id());
    let mut x = n;
    let mut s = String::from("Q");
    for _ in 0..7 {
        s.push(char::from(b'a' + u8::try_from(x % 26).unwrap()));
        x /= 26;
    }
    s
}

/// GET /metrics from the daemon's staff page (its address from the log).
fn metrics(daemon: &Daemon) -> String {
    use std::io::{Read, Write};
    daemon.wait_log("staff page listening", Duration::from_secs(10));
    let log = daemon.log();
    let addr = log
        .lines()
        .find(|l| l.contains("staff page listening"))
        .and_then(|l| l.split("addr=").nth(1))
        .map(|a| {
            a.split_whitespace()
                .next()
                .unwrap_or(a)
                .trim_matches('"')
                .to_owned()
        })
        .unwrap_or_else(|| panic!("no address in the log:\n{log}"));
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        c,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut body = String::new();
    c.read_to_string(&mut body).unwrap();
    body
}

fn stop(daemon: Daemon) -> String {
    daemon.stop()
}

#[tokio::test]
async fn a_new_starter_is_created_in_ldap_and_signs_in_with_the_password_from_the_reply() {
    let ldap = LdapStack::require();
    let stack = MailStack::require();
    let s = ldap_site(&stack, &ldap, true);
    let daemon = s.site.start();

    let last = surname();
    let (_, raw) = s.site.request(
        "New starter",
        "",
        &format!(
            "A new carer, Nina {last}, starts on Monday. Could she have an account please?{}",
            by(&s)
        ),
    );
    let reply = ask(&s, &raw, 1).await;
    assert!(reply.contains("has been done"), "{reply}");
    let address = format!("nina.{}@test.example", last.to_lowercase());
    assert!(contains(reply.as_bytes(), &address), "{reply}");
    let password = temporary_password(&reply);

    // In LDAP, before the site heard "done": the entry, must-change, in the mailbox's group.
    let found = ldap
        .search(&ldap.people, &format!("(mail={address})"), &["uid"])
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let dn = found[0].0.clone();
    assert!(ldap.must_change(&dn), "pwdReset is set");
    assert!(ldap.values(&s.group, "member").contains(&dn));
    assert!(!ldap.values(&s.group, "owner").contains(&dn));

    // The new person signs in to the mail server with the password from the reply.
    assert!(
        signs_in(&stack, &address, &password).await,
        "IMAP LOGIN as {address} with the temporary password"
    );
    assert!(!signs_in(&stack, &address, "not-the-password").await);

    assert_eq!(s.site.audit_count("job.done"), 1);
    // The password reached LDAP and is not kept in the job afterwards.
    let store = postroom::store::Store::open(&s.site.database())
        .await
        .unwrap();
    let job_id = s
        .site
        .audit()
        .iter()
        .find(|e| e["action"] == "job.done")
        .and_then(|e| e["detail"]["job"].as_i64())
        .unwrap();
    let job = postroom::store::jobs::find(&mut store.read().await.unwrap(), job_id)
        .await
        .unwrap()
        .unwrap();
    assert!(!job.payload.contains(&password), "{}", job.payload);
    assert!(job.payload.contains(&address), "{}", job.payload);
    stop(daemon);
}

#[tokio::test]
async fn resets_unlocks_leavers_and_memberships_are_made_in_ldap() {
    let ldap = LdapStack::require();
    let stack = MailStack::require();
    let s = ldap_site(&stack, &ldap, true);
    let outsider = ldap.add_person(local(&s.site.outsider), &s.site.outsider, FIRST_PASSWORD);
    let daemon = s.site.start();

    // A password reset: the old password stops working, the new one works.
    assert!(signs_in(&stack, &s.member.mail, FIRST_PASSWORD).await);
    let (_, raw) = s.site.request(
        "Password",
        "",
        &format!("Please reset the password for {}.{}", s.member.mail, by(&s)),
    );
    let reply = ask(&s, &raw, 1).await;
    let new = temporary_password(&reply);
    assert!(!signs_in(&stack, &s.member.mail, FIRST_PASSWORD).await);
    assert!(signs_in(&stack, &s.member.mail, &new).await);
    assert!(ldap.must_change(&s.member.dn));

    // An unlock: locked in LDAP, signs in again with the password it had.
    assert!(!signs_in(&stack, &s.locked.mail, FIRST_PASSWORD).await);
    let (_, raw) = s.site.unlock_request();
    let reply = ask(&s, &raw, 2).await;
    assert!(reply.contains("has been done"), "{reply}");
    assert_eq!(ldap.locked_time(&s.locked.dn), None);
    assert!(signs_in(&stack, &s.locked.mail, FIRST_PASSWORD).await);

    // A member added, then made an owner: read back from the group.
    let (_, raw) = s.site.request(
        "Add to mailbox",
        "",
        &format!(
            "Please add {} to our shared mailbox.{}",
            outsider.mail,
            by(&s)
        ),
    );
    ask(&s, &raw, 3).await;
    assert!(ldap.values(&s.group, "member").contains(&outsider.dn));
    let (_, raw) = s.site.request(
        "Owner",
        "",
        &format!(
            "Please make {} an owner of the mailbox.{}",
            outsider.mail,
            by(&s)
        ),
    );
    let reply = ask(&s, &raw, 4).await;
    assert!(reply.contains("has been done"), "{reply}");
    assert!(ldap.values(&s.group, "owner").contains(&outsider.dn));

    // A leaver: can no longer sign in, and is out of the mailbox's group.
    let (_, raw) = s.site.request(
        "Leaver",
        "",
        &format!(
            "{} has left the practice, please close the account.{}",
            s.member.mail,
            by(&s)
        ),
    );
    let reply = ask(&s, &raw, 5).await;
    assert!(reply.contains("has been done"), "{reply}");
    assert_eq!(
        ldap.locked_time(&s.member.dn).as_deref(),
        Some(LOCKED_FOR_GOOD)
    );
    assert!(!signs_in(&stack, &s.member.mail, &new).await);
    assert!(!ldap.values(&s.group, "member").contains(&s.member.dn));

    assert_eq!(s.site.audit_count("job.done"), 5);
    assert_eq!(s.site.audit_count("job.failed"), 0);
    stop(daemon);
}

#[tokio::test]
async fn a_directory_refusal_goes_to_staff_and_the_site_is_told_a_person_has_it() {
    let ldap = LdapStack::require();
    let stack = MailStack::require();
    // The locked account is in postroom's directory but not in LDAP: LDAP cannot unlock it.
    // A reconcile runs (its first pass soon after start) and reports that on /metrics.
    let s = ldap_site_with(
        &stack,
        &ldap,
        false,
        &[("directory", "reconcile_every", "\"1m\"")],
    );
    let daemon = s.site.start();

    let (_, raw) = s.site.unlock_request();
    let reply = ask(&s, &raw, 1).await;
    assert!(!reply.contains("has been done"), "{reply}");
    assert!(
        reply.contains("a person on the helpdesk is handling it"),
        "{reply}"
    );
    eventually(
        "the request is in the staff queue",
        Duration::from_secs(10),
        || async {
            s.site.audit().iter().any(|e| {
                e["action"] == "request.needs_review" && e["detail"]["reason"] == "target_refused"
            })
        },
    )
    .await;
    let failed: Vec<_> = s
        .site
        .audit()
        .into_iter()
        .filter(|e| e["action"] == "job.failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0]["detail"]["error"]
            .as_str()
            .is_some_and(|e| e.contains(&s.locked.mail)),
        "{failed:?}"
    );
    // The "done" answer stays held: nothing more reaches the site.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(stack.folder_count(&s.site.mailbox, "INBOX").await, 1);

    // /metrics: the failed job, and the drift the reconcile found (the locked account is a
    // member in postroom and not in LDAP's group).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut metrics = metrics(&daemon);
    while !metrics.contains("postroom_directory_drift") && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        metrics = self::metrics(&daemon);
    }
    assert!(
        metrics.contains("postroom_jobs{kind=\"provision\",status=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("postroom_directory_drift 1"), "{metrics}");
    let _ = &s.owner;
    stop(daemon);
}

#[tokio::test]
async fn with_slapd_down_intake_goes_on_replies_wait_and_all_converge_once_it_is_back() {
    let ldap = LdapStack::require_exclusive();
    let stack = MailStack::require();
    let s = ldap_site(&stack, &ldap, true);
    let daemon = s.site.start();

    ldap.stop_slapd();
    let (_, unlock) = s.site.unlock_request();
    let (_, reset) = s.site.request(
        "Password",
        "",
        &format!("Please reset the password for {}.{}", s.member.mail, by(&s)),
    );
    stack
        .send(&s.site.mailbox, &[&s.site.helpdesk], &unlock)
        .await;
    stack
        .send(&s.site.mailbox, &[&s.site.helpdesk], &reset)
        .await;
    // Intake goes on: both decided and recorded, the job tried and put off.
    eventually("both requests applied", Duration::from_secs(30), || async {
        s.site.audit_count("request.applied") == 2 && s.site.audit_count("job.retried") >= 2
    })
    .await;
    assert_eq!(
        stack.folder_count(&s.site.mailbox, "INBOX").await,
        0,
        "no reply before LDAP has it"
    );

    ldap.start_slapd();
    let replies = stack
        .wait_for(&s.site.mailbox, "INBOX", 2, Duration::from_secs(90))
        .await;
    let reset_reply = replies
        .iter()
        .map(|r| String::from_utf8_lossy(r).into_owned())
        .find(|r| r.contains("Temporary password"))
        .expect("the reset's reply");
    let new = temporary_password(&reset_reply);
    assert!(signs_in(&stack, &s.member.mail, &new).await);
    assert_eq!(ldap.locked_time(&s.locked.dn), None);
    // Each done once; each answered once.
    assert_eq!(s.site.audit_count("job.done"), 2);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(stack.folder_count(&s.site.mailbox, "INBOX").await, 2);
    stop(daemon);
}

/// A daemon killed (abort, as a power cut) after the LDAP write and before recording it:
/// restarted, it takes the job up again once its lease has run out, the operations converge
/// (the password is not set a second time), and the site gets one reply whose password works.
#[tokio::test]
async fn killed_between_the_ldap_write_and_its_record_the_job_converges_on_restart() {
    let ldap = LdapStack::require();
    let stack = MailStack::require();
    // timeout 1s: the job's lease is 20 s, how long the restarted daemon waits for it.
    let s = ldap_site_with(&stack, &ldap, true, &[("directory", "timeout", "\"1s\"")]);
    let mut first = s
        .site
        .start_with(&[("POSTROOM_TEST_ABORT_AFTER_JOB_ATTEMPTS", "1")], false);
    let (_, raw) = s.site.request(
        "Password",
        "",
        &format!("Please reset the password for {}.{}", s.member.mail, by(&s)),
    );
    stack.send(&s.site.mailbox, &[&s.site.helpdesk], &raw).await;
    assert!(
        first.wait_exit(Duration::from_secs(45)).is_some(),
        "the test hook aborts the daemon after the LDAP write:\n{}",
        first.log()
    );
    // Done in LDAP, not recorded, not answered.
    assert!(ldap.must_change(&s.member.dn));
    assert!(!signs_in(&stack, &s.member.mail, FIRST_PASSWORD).await);
    assert_eq!(stack.folder_count(&s.site.mailbox, "INBOX").await, 0);
    assert_eq!(s.site.audit_count("job.done"), 0);

    let second = s.site.start();
    let replies = stack
        .wait_for(&s.site.mailbox, "INBOX", 1, Duration::from_secs(90))
        .await;
    let reply = String::from_utf8_lossy(&replies[0]).into_owned();
    let new = temporary_password(&reply);
    assert!(signs_in(&stack, &s.member.mail, &new).await);
    assert_eq!(s.site.audit_count("job.done"), 1);
    assert_eq!(
        s.site.audit_count("password.reset"),
        1,
        "applied once in postroom"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        stack.folder_count(&s.site.mailbox, "INBOX").await,
        1,
        "one reply"
    );
    stop(second);
    let _ = first;
}

fn target(ldap: &LdapStack, url: &str, starttls: bool) -> LdapTarget {
    LdapTarget::new(&LdapConfig {
        url: url.to_owned(),
        mode: LdapMode::OpenLdap,
        starttls,
        ca_file: ldap.ca.clone(),
        bind_dn: ldap.bind_dn.clone(),
        bind_password: Secret::new(ldap.bind_password()),
        people: ldap.people.clone(),
        groups: ldap.groups.clone(),
        owner_attribute: "owner".into(),
        owner_groups: None,
        timeout: Duration::from_secs(5),
    })
    .unwrap()
}

/// A worker killed between the LDAP write and recording it leaves the job due again: the
/// same operations applied a second time converge (one entry, one group value, the same
/// password, no history refusal). Over LDAPS and StartTLS with the stack's own CA.
#[tokio::test]
async fn a_job_replayed_after_a_crash_converges_over_ldaps_and_starttls() {
    let ldap = LdapStack::require();
    let last = surname().to_lowercase();
    let address = format!("rita.{last}@test.example");
    let mailbox = format!("replay-{last}@test.example");
    let ops = vec![
        Operation::CreateAccount {
            address: address.clone(),
            name: format!("Rita {last}"),
            first: "Rita".into(),
            last: last.clone(),
            job_title: Some("Carer".into()),
            password: "Replay-pass-1".into(),
        },
        Operation::AddMember {
            mailbox: mailbox.clone(),
            account: address.clone(),
            role: Role::Owner,
        },
    ];
    let ldaps = ldap.ldaps_url.clone().expect("LDAPS");
    for t in [target(&ldap, &ldaps, false), target(&ldap, &ldap.url, true)] {
        let done = t.apply(&ops).await.unwrap();
        assert_eq!(done[0]["read_back"]["must_change"], true, "{done:?}");
        assert_eq!(done[1]["read_back"]["owner"], true, "{done:?}");
    }
    let found = ldap
        .search(
            &ldap.people,
            &format!("(mail={address})"),
            &["uid", "title"],
        )
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let dn = &found[0].0;
    let group = format!("cn={mailbox},{}", ldap.groups);
    assert_eq!(ldap.values(&group, "member"), vec![dn.clone()]);
    assert_eq!(ldap.values(&group, "owner"), vec![dn.clone()]);
    assert!(ldap.bind(dn, "Replay-pass-1").is_ok());

    // Operations on an account LDAP does not have are refused, with its words.
    let missing = target(&ldap, &ldap.url, false)
        .apply(&[Operation::Unlock {
            address: format!("nobody-{last}@test.example"),
        }])
        .await;
    assert!(
        matches!(missing, Err(NotDone::Rejected(ref m)) if m.contains("no account")),
        "{missing:?}"
    );
    // A server that is not there is "not now".
    let down = target(&ldap, "ldap://127.0.0.1:9", false).apply(&ops).await;
    assert!(matches!(down, Err(NotDone::RetryLater(_))), "{down:?}");
}

fn diff(site: &Site) -> (bool, Vec<serde_json::Value>) {
    let out = site.cli(&["directory", "diff"]);
    let lines = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (out.status.success(), lines)
}

#[tokio::test]
async fn the_directory_is_read_from_ldap_and_where_it_differs_is_listed() {
    let ldap = LdapStack::require();
    let stack = MailStack::require();
    let s = ldap_site(&stack, &ldap, true);

    // `postroom check` binds to the target and finds its containers; a target that is not
    // there is a failed check.
    let out = s.site.cli(&["check"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("✓ directory") && text.contains(&ldap.bind_dn),
        "{text}"
    );
    let cfg = std::fs::read_to_string(&s.site.config)
        .unwrap()
        .replace(&ldap.url, "ldap://127.0.0.1:9");
    let bad = s.site.dir.path().join("bad-target.toml");
    std::fs::write(&bad, cfg).unwrap();
    let out = s.site.cli_with(&bad, &["check"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(!out.status.success());
    assert!(
        text.contains("✗ directory") && text.contains("127.0.0.1:9"),
        "{text}"
    );

    // As set up, LDAP and postroom agree: memberships, roles, states.
    let (same, lines) = diff(&s.site);
    assert!(same, "{lines:?}");
    assert_eq!(lines.last().unwrap()["differences"], 0, "{lines:?}");

    // Someone added in LDAP by hand, someone removed there, someone disabled there.
    let outsider = ldap.add_person(local(&s.site.outsider), &s.site.outsider, FIRST_PASSWORD);
    ldap.must_modify(&format!(
        "dn: {g}\nchangetype: modify\nadd: member\nmember: {o}\n-\ndelete: member\nmember: {m}\n",
        g = s.group,
        o = outsider.dn,
        m = s.member.dn
    ));
    ldap.lock(&s.owner.dn);
    let (same, lines) = diff(&s.site);
    assert!(!same, "exit 1 on a difference");
    let has = |kind: &str, account: &str| {
        lines
            .iter()
            .any(|l| l["difference"] == kind && l["account"] == account)
    };
    assert!(has("only_in_target", &s.site.outsider), "{lines:?}");
    assert!(has("only_in_postroom", &s.site.member), "{lines:?}");
    assert!(has("status", &s.site.owner), "{lines:?}");
    assert_eq!(lines.last().unwrap()["differences"], 3, "{lines:?}");

    // Imported from LDAP: the outsider's membership and the owner's state come in; an
    // import adds and updates, it removes nothing (the member stays, and is still listed).
    let out = s.site.cli(&["directory", "import", "--from-target"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["rows"], 3, "{summary}");
    let (_, lines) = diff(&s.site);
    assert_eq!(lines.last().unwrap()["differences"], 1, "{lines:?}");
    assert!(
        lines[0]["difference"] == "only_in_postroom"
            && lines[0]["account"] == s.site.member.as_str()
    );
}

/// `postroom directory repair KIND…`: the target made to agree with postroom for the kinds
/// named, and only those (and only one account's, when named); a dry run changes nothing;
/// every repair is audited.
#[tokio::test]
async fn drift_is_repaired_only_where_someone_says_so() {
    let ldap = LdapStack::require();
    let stack = MailStack::require();
    let s = ldap_site(&stack, &ldap, true);

    // Behind postroom's back: an outsider added, the member removed, the owner no longer
    // marked owner, and the owner locked.
    let outsider = ldap.add_person(local(&s.site.outsider), &s.site.outsider, FIRST_PASSWORD);
    ldap.must_modify(&format!(
        "dn: {g}\nchangetype: modify\nadd: member\nmember: {o}\n-\ndelete: member\nmember: {m}\n-\ndelete: owner\nowner: {w}\n",
        g = s.group,
        o = outsider.dn,
        m = s.member.dn,
        w = s.owner.dn
    ));
    ldap.lock(&s.owner.dn);
    assert_eq!(diff(&s.site).1.last().unwrap()["differences"], 4);

    let repair = |args: &[&str]| {
        let mut all = vec!["directory", "repair"];
        all.extend_from_slice(args);
        let out = s.site.cli(&all);
        let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (out.status.success(), lines)
    };
    // Nothing is repaired unless a kind is named.
    assert!(!s.site.cli(&["directory", "repair"]).status.success());

    // A dry run lists the two membership repairs and changes nothing.
    let (ok, lines) = repair(&["memberships", "--dry-run"]);
    assert!(ok, "{lines:?}");
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[..2].iter().all(|l| l["result"] == "planned"));
    assert_eq!(lines[2]["left_as_they_are"], 2, "{lines:?}");
    assert_eq!(diff(&s.site).1.last().unwrap()["differences"], 4);

    // Memberships only: the outsider leaves the group, the member is back; the role and the
    // lock are left as they are.
    let (ok, lines) = repair(&["memberships"]);
    assert!(ok, "{lines:?}");
    assert_eq!(lines.last().unwrap()["repaired"], 2, "{lines:?}");
    let members = ldap.values(&s.group, "member");
    assert!(members.contains(&s.member.dn), "{members:?}");
    assert!(!members.contains(&outsider.dn), "{members:?}");
    let (_, left) = diff(&s.site);
    assert_eq!(left.last().unwrap()["differences"], 2, "{left:?}");
    assert!(left.iter().all(|l| l["difference"] == "role"
        || l["difference"] == "status"
        || l.get("differences").is_some()));

    // The owner's state, named by account: unlocked, and signs in again.
    assert!(ldap.bind(&s.owner.dn, FIRST_PASSWORD).is_err());
    let (ok, lines) = repair(&["statuses", "--account", &s.site.owner]);
    assert!(ok, "{lines:?}");
    assert_eq!(lines[0]["operation"], "unlock", "{lines:?}");
    assert!(ldap.bind(&s.owner.dn, FIRST_PASSWORD).is_ok());

    // And the role.
    let (ok, _) = repair(&["roles"]);
    assert!(ok);
    assert_eq!(ldap.values(&s.group, "owner"), vec![s.owner.dn.clone()]);
    let (same, lines) = diff(&s.site);
    assert!(same, "{lines:?}");

    // Each repair is audited as the command line's, with what the directory read back.
    let repaired: Vec<_> = s
        .site
        .audit()
        .into_iter()
        .filter(|e| e["action"] == "directory.repaired")
        .collect();
    assert_eq!(repaired.len(), 4, "{repaired:?}");
    assert!(
        repaired
            .iter()
            .all(|e| e["actor"] == "cli" && e["detail"]["result"] == "done")
    );
}

/// `reconcile_repair = ["memberships"]`: `postroom run`'s reconcile repairs memberships by
/// itself, and reports (does not touch) the rest.
#[tokio::test]
async fn the_reconcile_repairs_the_kinds_it_is_told_and_reports_the_rest() {
    let ldap = LdapStack::require();
    let stack = MailStack::require();
    let s = ldap_site_with(
        &stack,
        &ldap,
        true,
        &[
            ("directory", "reconcile_every", "\"1m\""),
            ("directory", "reconcile_repair", "[\"memberships\"]"),
        ],
    );
    let outsider = ldap.add_person(local(&s.site.outsider), &s.site.outsider, FIRST_PASSWORD);
    ldap.must_modify(&format!(
        "dn: {g}\nchangetype: modify\nadd: member\nmember: {o}\n-\ndelete: owner\nowner: {w}\n",
        g = s.group,
        o = outsider.dn,
        w = s.owner.dn
    ));
    let daemon = s.site.start();
    daemon.wait_log(
        "the reconcile made the directory target agree",
        Duration::from_secs(30),
    );
    daemon.wait_log("differs from postroom", Duration::from_secs(30));
    assert!(!ldap.values(&s.group, "member").contains(&outsider.dn));
    // The role was not repaired: it is what is left, on /metrics too.
    assert!(ldap.values(&s.group, "owner").is_empty());
    assert!(
        metrics(&daemon).contains("postroom_directory_drift 1"),
        "{}",
        metrics(&daemon)
    );
    let repaired: Vec<_> = s
        .site
        .audit()
        .into_iter()
        .filter(|e| e["action"] == "directory.repaired")
        .collect();
    assert_eq!(repaired.len(), 1, "{repaired:?}");
    assert_eq!(repaired[0]["actor"], "reconcile");
    stop(daemon);
}
