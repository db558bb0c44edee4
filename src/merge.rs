//! Merging duplicates (issue 17, item 7): a site sent the same request twice in different
//! words; a person merges the second (waiting for review) into the first.
//!
//! What happens, in one transaction:
//! - the second request becomes `duplicate` with the reason `merged` (naming the first), so it
//!   leaves the queue; its claim is dropped; it gets **no reply of its own** — the site's one
//!   answer is the first request's, in the first request's thread (already sent, or sent when
//!   the first is decided);
//! - a `merges` row links the two, so each request's page shows the other, with the second
//!   message's text a click away;
//! - one audit event, `request.merged`, on the second request, naming the first.
//!
//! Only requests of the same registered mailbox are merged (the same site), never a request
//! into itself or into one that was itself merged.

use crate::action::AuditAction;
use crate::outcome::Outcome;
use crate::reason::Reason;
use crate::review::ReviewError;
use crate::store::journal::{self, NewAuditEvent};
use crate::store::{Conn, Store, claims, merges};
use serde_json::json;

/// Merge waiting request `reference` into request `into`, as staff member `staff`.
pub async fn merge(
    store: &Store,
    reference: &str,
    into: &str,
    staff: &str,
) -> Result<(), ReviewError> {
    let into = into.trim().to_ascii_uppercase();
    if into.is_empty() {
        return Err(ReviewError::Invalid(
            "name the request to merge this one into (its reference, HD-…)".into(),
        ));
    }
    let into = into.as_str();
    store
        .transaction(|mut tx| async move {
            let result = merge_in(&mut tx, reference, into, staff).await;
            (tx, result)
        })
        .await
}

async fn merge_in(
    conn: &mut Conn,
    reference: &str,
    into: &str,
    staff: &str,
) -> Result<(), ReviewError> {
    let second = journal::find_request(conn, reference)
        .await?
        .ok_or_else(|| ReviewError::NotFound(reference.to_owned()))?;
    if second.outcome != Outcome::NeedsReview {
        return Err(ReviewError::NotWaiting {
            reference: second.reference,
            outcome: second.outcome.as_str().to_owned(),
        });
    }
    let Some(first) = journal::find_request(conn, into).await? else {
        return Err(ReviewError::Invalid(format!("there is no request {into}")));
    };
    if first.id == second.id {
        return Err(ReviewError::Invalid(
            "a request cannot be merged into itself".into(),
        ));
    }
    if let Some(m) = merges::of_request(conn, first.id).await? {
        return Err(ReviewError::Invalid(format!(
            "{into} was itself merged into {}: merge into that one",
            m.into_reference
        )));
    }
    match (&second.mailbox, &first.mailbox) {
        (Some(a), Some(b)) if a == b => {}
        _ => {
            return Err(ReviewError::Invalid(format!(
                "{into} did not come from the same shared mailbox: only one site's requests are merged"
            )));
        }
    }
    let now = crate::store::now_ms();
    journal::update_request_outcome(
        conn,
        second.id,
        Outcome::Duplicate.as_str(),
        Some(&Reason::Merged(first.reference.clone())),
    )
    .await?;
    merges::insert(conn, second.id, first.id, staff, now).await?;
    claims::release(conn, second.id).await?;
    journal::insert_audit(
        conn,
        &NewAuditEvent {
            actor: &format!("staff:{staff}"),
            on_behalf_of: second.mailbox.as_deref(),
            action: AuditAction::RequestMerged.as_str(),
            subject: second.target.as_deref(),
            detail: json!({
                "decided_by": staff,
                "into": first.reference,
                "into_outcome": first.outcome.as_str(),
            }),
            request_id: Some(second.id),
            message_id: Some(second.message_id),
        },
    )
    .await?;
    Ok(())
}
