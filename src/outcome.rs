//! The one enum of outcomes: what happened to a message. Printed by `process`, stored with the
//! request, shown by the web page, used to choose the IMAP folder a message is moved to.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The change was made.
    Applied,
    /// The change was refused for a reason the site can act on.
    Rejected,
    /// A person on the helpdesk must decide.
    NeedsReview,
    /// Held until the requester confirms with a one-time code.
    AwaitingConfirmation,
    /// Not a request (auto-reply, bounce, our own mail): no reply, no change.
    Ignored,
    /// Seen before (same Message-ID or bytes): nothing changes the second time.
    Duplicate,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Rejected => "rejected",
            Outcome::NeedsReview => "needs_review",
            Outcome::AwaitingConfirmation => "awaiting_confirmation",
            Outcome::Ignored => "ignored",
            Outcome::Duplicate => "duplicate",
        }
    }

    /// Words for a person, used in reply subjects (`[HD-000123] Done: …`).
    pub fn title(self) -> &'static str {
        match self {
            Outcome::Applied => "Done",
            Outcome::Rejected => "Not done",
            Outcome::NeedsReview => "Received",
            Outcome::AwaitingConfirmation => "Confirmation needed",
            Outcome::Ignored => "Ignored",
            Outcome::Duplicate => "Duplicate",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Outcome::Applied,
            Outcome::Rejected,
            Outcome::NeedsReview,
            Outcome::AwaitingConfirmation,
            Outcome::Ignored,
            Outcome::Duplicate,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
        .ok_or_else(|| format!("unknown outcome `{s}`"))
    }
}
