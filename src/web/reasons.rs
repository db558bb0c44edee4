//! A request's stored reason as staff read it: the sentence the site was given.
//!
//! The request keeps its [`Reason`] whole (`reason_json`, migration 0110), so the page shows
//! [`Reason::explain`], the same words the reply used, details and all. Requests recorded
//! before then kept only the code: for them the page says what the code means
//! ([`Reason::describe_code`]); the audit events on the same page carry the rest. So does a
//! refusal by staff, whose words are their own and stand in the comments.

use crate::reason::Reason;
use crate::store::journal::RequestRow;

/// What staff read for a request's reason: the sentence, and whether it is exactly what the
/// site was told (or a summary written for staff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explained {
    pub code: String,
    pub sentence: String,
    pub as_sent: bool,
}

/// For a code this build has no sentence for (one written by another version).
const UNKNOWN_CODE: &str = "See the audit events below for the details.";

/// Explain `request`'s reason; `None` when it has none.
pub fn explain(request: &RequestRow) -> Option<Explained> {
    let code = request.reason.as_deref()?;
    let stored = request.reason_json.as_deref().and_then(|json| {
        serde_json::from_str::<Reason>(json)
            .inspect_err(|e| {
                // Written by a version whose reasons differ: what the code means is still
                // shown, marked as a summary.
                tracing::warn!(
                    reference = %request.reference,
                    error = %e,
                    "the stored reason cannot be read; showing what its code means"
                );
            })
            .ok()
    });
    // A person's own refusal is theirs to word: it is in the comments and the reply, and the
    // reason says who refused.
    let stored = stored.filter(|r| !matches!(r, Reason::StaffRejected(_)));
    Some(match stored {
        Some(reason) => Explained {
            code: code.to_owned(),
            sentence: reason.explain(),
            as_sent: true,
        },
        None => Explained {
            code: code.to_owned(),
            sentence: Reason::describe_code(code)
                .unwrap_or(UNKNOWN_CODE)
                .to_owned(),
            as_sent: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(reason: Option<&Reason>, code: &str, json: Option<String>) -> RequestRow {
        RequestRow {
            id: 1,
            reference: "HD-000001".into(),
            message_id: 1,
            kind: crate::request::RequestKind::Leaver,
            outcome: crate::outcome::Outcome::Rejected,
            reason: Some(reason.map_or(code, |r| r.code()).to_owned()),
            reason_json: json.or_else(|| reason.map(|r| serde_json::to_string(r).unwrap())),
            mailbox: None,
            requester: Some("jane.doe@nhs.example".into()),
            target: None,
            fields: "{}".into(),
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn a_stored_reason_is_explained_in_the_words_the_site_got() {
        let reason = Reason::LastOwner {
            account: "jane.doe@nhs.example".into(),
            mailbox: "rosehill.care@nhs.example".into(),
        };
        let e = explain(&row(Some(&reason), "", None)).unwrap();
        assert!(e.as_sent);
        assert_eq!(e.code, "last_owner");
        assert_eq!(e.sentence, reason.explain());
        assert!(
            e.sentence
                .contains("jane.doe@nhs.example is the last owner of rosehill.care@nhs.example")
        );
    }

    #[test]
    fn a_code_without_its_reason_gets_a_summary() {
        // Before migration 0110: the code alone.
        let e = explain(&row(None, "ambiguous_account", None)).unwrap();
        assert!(!e.as_sent);
        assert!(e.sentence.contains("several accounts"));
        // A reason this build cannot read, and a code it does not know.
        let e = explain(&row(
            None,
            "last_owner",
            Some("{\"reason\":\"new\"}".into()),
        ))
        .unwrap();
        assert!(!e.as_sent);
        assert_eq!(
            Some(e.sentence.as_str()),
            Reason::describe_code("last_owner")
        );
        let e = explain(&row(
            Some(&Reason::StaffRejected(
                "Please send one request per email.".into(),
            )),
            "",
            None,
        ))
        .unwrap();
        assert!(!e.as_sent);
        assert!(
            e.sentence
                .starts_with("Rejected by a person on the helpdesk")
        );
        let e = explain(&row(None, "from_the_future", None)).unwrap();
        assert_eq!(e.sentence, UNKNOWN_CODE);
        assert!(
            explain(&RequestRow {
                reason: None,
                ..row(None, "x", None)
            })
            .is_none()
        );
    }
}
