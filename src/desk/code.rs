//! One-time confirmation codes: issued when a decided change hands over control (owners,
//! restoring a disabled account) and emailed to the requester's OWN account, not the shared
//! mailbox. `confirm` checks a code that comes back. Codes are random, stored as SHA-256 only,
//! and use the one alphabet the reading of a reply knows (`request::extract::CODE_ALPHABET`).

use crate::config::Config;
use crate::desk::answer;
use crate::password;
use crate::policy::Decision;
use crate::reply::{self, Notice};
use crate::request::extract::{CODE_ALPHABET, CODE_LEN};
use crate::store::journal;
use crate::store::{Conn, StoreError, now_ms};
use sha2::{Digest, Sha256};

fn new_code() -> String {
    password::from_alphabet(CODE_ALPHABET.as_bytes(), CODE_LEN)
}

pub(crate) fn code_hash(code: &str) -> String {
    hex::encode(Sha256::digest(code.trim().to_ascii_uppercase().as_bytes()))
}

/// Issue a code for a held request and email it to the requester's own account.
pub(crate) async fn issue(
    conn: &mut Conn,
    cfg: &Config,
    d: &Decision,
    requester: &str,
    request_id: i64,
    reference: &str,
) -> Result<(), StoreError> {
    let code = new_code();
    let ttl_ms = i64::try_from(cfg.confirmation.ttl.as_millis()).unwrap_or(i64::MAX);
    journal::insert_confirmation(
        conn,
        request_id,
        requester,
        &code_hash(&code),
        now_ms().saturating_add(ttl_ms),
    )
    .await?;
    let mailbox = d.mailbox.as_deref().unwrap_or("your shared mailbox");
    let what = describe(d);
    let body = format!(
        "{mailbox} has asked the helpdesk, in your name, for this change:\n\n    {what}\n\n\
         Because it hands over control of a shared mailbox or an account, we need you to confirm it.\n\
         To go ahead, reply to this email and keep this line in your reply:\n\n    Code: {code}\n\n\
         (or send an email with the code alone as its subject). The code works once, from your own \
         account only, until {}.\n\n\
         If you did not ask for this, do not reply: nothing will change, and please tell the helpdesk.",
        crate::store::format_ms(now_ms().saturating_add(ttl_ms))
    );
    let title = format!("Confirm: {}", d.kind.title());
    let notice = reply::notice(
        &cfg.helpdesk,
        &Notice {
            to: requester,
            reference,
            title: &title,
            body: &body,
            in_reply_to: None,
            unique: &password::token(12),
        },
    );
    // The code is a secret like a temporary password: blanked from the outbox once sent.
    let mut notice = notice;
    notice.secret = Some(code);
    answer::enqueue(conn, cfg, notice, Some(request_id)).await?;
    Ok(())
}

/// The change in the requester's words: each kind says how (`Kind::confirmation`).
fn describe(d: &Decision) -> String {
    let target = d.target.as_deref().unwrap_or("a new account");
    d.kind.def().confirmation(target, &d.fields)
}
