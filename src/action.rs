//! Every act the audit trail records, as one closed set: the pipeline, the staff page, the
//! command line and the daemon name an event only through [`AuditAction`], and the staff
//! page's filter lists them from [`AuditAction::ALL`]. The stored text ([`AuditAction::as_str`])
//! is part of the trail and of its hash chain: never change one, add a new one.

use crate::outcome::Outcome;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    // --- a request and what was decided about it
    RequestApplied,
    RequestRejected,
    RequestNeedsReview,
    RequestAwaitingConfirmation,
    RequestIgnored,
    RequestDuplicate,
    RequestComment,
    RequestClaimed,
    RequestReleased,
    /// Staff merged a duplicate request into an earlier one of the same site (issue 17).
    RequestMerged,
    // --- the changes made to the directory
    AccountCreated,
    AccountUnlocked,
    AccountDisabled,
    AccountDeleted,
    PasswordReset,
    MembershipAdded,
    MembershipRemoved,
    MembershipRoleChanged,
    DirectoryImport,
    /// The target made to agree with postroom where someone said to (`directory repair`,
    /// `[directory] reconcile_repair`).
    DirectoryRepaired,
    // --- confirmation codes
    ConfirmationAccepted,
    ConfirmationWrongPerson,
    ConfirmationBadCode,
    ConfirmationCodeVoid,
    ConfirmationCodeExpired,
    ConfirmationCodeUsed,
    ConfirmationMessageGone,
    // --- answers and work left to do
    ReplySuppressed,
    OutboxRetry,
    JobDone,
    JobRetried,
    JobFailed,
    /// Someone asked for a failed job to be tried again.
    JobRetry,
    // --- continuity of shared mailboxes
    ContinuityReminded,
    ContinuityFixed,
    // --- the review queue's targets, saved replies and saved searches (issue 17)
    /// A waiting request passed its kind's target and `[queue] notify` was told.
    RequestOverTarget,
    SavedReplyAdded,
    SavedReplyChanged,
    SavedReplyDeleted,
    SearchSaved,
    SearchDeleted,
    // --- retention and exports
    MessagesRawDropped,
    AuditExported,
    ReportExported,
    // --- the helpdesk's staff
    StaffSignedIn,
    StaffSignedOut,
    StaffAdded,
    StaffPasswordSet,
    StaffDisabled,
    StaffEnabled,
    StaffRoleSet,
}

impl AuditAction {
    pub const ALL: [AuditAction; 51] = [
        AuditAction::RequestApplied,
        AuditAction::RequestRejected,
        AuditAction::RequestNeedsReview,
        AuditAction::RequestAwaitingConfirmation,
        AuditAction::RequestIgnored,
        AuditAction::RequestDuplicate,
        AuditAction::RequestComment,
        AuditAction::RequestClaimed,
        AuditAction::RequestReleased,
        AuditAction::RequestMerged,
        AuditAction::AccountCreated,
        AuditAction::AccountUnlocked,
        AuditAction::AccountDisabled,
        AuditAction::AccountDeleted,
        AuditAction::PasswordReset,
        AuditAction::MembershipAdded,
        AuditAction::MembershipRemoved,
        AuditAction::MembershipRoleChanged,
        AuditAction::DirectoryImport,
        AuditAction::DirectoryRepaired,
        AuditAction::ConfirmationAccepted,
        AuditAction::ConfirmationWrongPerson,
        AuditAction::ConfirmationBadCode,
        AuditAction::ConfirmationCodeVoid,
        AuditAction::ConfirmationCodeExpired,
        AuditAction::ConfirmationCodeUsed,
        AuditAction::ConfirmationMessageGone,
        AuditAction::ReplySuppressed,
        AuditAction::OutboxRetry,
        AuditAction::JobDone,
        AuditAction::JobRetried,
        AuditAction::JobFailed,
        AuditAction::JobRetry,
        AuditAction::ContinuityReminded,
        AuditAction::ContinuityFixed,
        AuditAction::RequestOverTarget,
        AuditAction::SavedReplyAdded,
        AuditAction::SavedReplyChanged,
        AuditAction::SavedReplyDeleted,
        AuditAction::SearchSaved,
        AuditAction::SearchDeleted,
        AuditAction::MessagesRawDropped,
        AuditAction::AuditExported,
        AuditAction::ReportExported,
        AuditAction::StaffSignedIn,
        AuditAction::StaffSignedOut,
        AuditAction::StaffAdded,
        AuditAction::StaffPasswordSet,
        AuditAction::StaffDisabled,
        AuditAction::StaffEnabled,
        AuditAction::StaffRoleSet,
    ];

    /// The text stored in the trail (and hashed into its chain).
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::RequestApplied => "request.applied",
            AuditAction::RequestRejected => "request.rejected",
            AuditAction::RequestNeedsReview => "request.needs_review",
            AuditAction::RequestAwaitingConfirmation => "request.awaiting_confirmation",
            AuditAction::RequestIgnored => "request.ignored",
            AuditAction::RequestDuplicate => "request.duplicate",
            AuditAction::RequestComment => "request.comment",
            AuditAction::RequestClaimed => "request.claimed",
            AuditAction::RequestReleased => "request.released",
            AuditAction::RequestMerged => "request.merged",
            AuditAction::AccountCreated => "account.created",
            AuditAction::AccountUnlocked => "account.unlocked",
            AuditAction::AccountDisabled => "account.disabled",
            AuditAction::AccountDeleted => "account.deleted",
            AuditAction::PasswordReset => "password.reset",
            AuditAction::MembershipAdded => "membership.added",
            AuditAction::MembershipRemoved => "membership.removed",
            AuditAction::MembershipRoleChanged => "membership.role_changed",
            AuditAction::DirectoryImport => "directory.import",
            AuditAction::DirectoryRepaired => "directory.repaired",
            AuditAction::ConfirmationAccepted => "confirmation.accepted",
            AuditAction::ConfirmationWrongPerson => "confirmation.wrong_person",
            AuditAction::ConfirmationBadCode => "confirmation.bad_code",
            AuditAction::ConfirmationCodeVoid => "confirmation.code_void",
            AuditAction::ConfirmationCodeExpired => "confirmation.code_expired",
            AuditAction::ConfirmationCodeUsed => "confirmation.code_used",
            AuditAction::ConfirmationMessageGone => "confirmation.message_gone",
            AuditAction::ReplySuppressed => "reply.suppressed",
            AuditAction::OutboxRetry => "outbox.retry",
            AuditAction::JobDone => "job.done",
            AuditAction::JobRetried => "job.retried",
            AuditAction::JobFailed => "job.failed",
            AuditAction::JobRetry => "job.retry",
            AuditAction::ContinuityReminded => "continuity.reminded",
            AuditAction::ContinuityFixed => "continuity.fixed",
            AuditAction::RequestOverTarget => "request.over_target",
            AuditAction::SavedReplyAdded => "saved_reply.added",
            AuditAction::SavedReplyChanged => "saved_reply.changed",
            AuditAction::SavedReplyDeleted => "saved_reply.deleted",
            AuditAction::SearchSaved => "search.saved",
            AuditAction::SearchDeleted => "search.deleted",
            AuditAction::MessagesRawDropped => "messages.raw_dropped",
            AuditAction::AuditExported => "audit.exported",
            AuditAction::ReportExported => "report.exported",
            AuditAction::StaffSignedIn => "staff.signed_in",
            AuditAction::StaffSignedOut => "staff.signed_out",
            AuditAction::StaffAdded => "staff.added",
            AuditAction::StaffPasswordSet => "staff.password_set",
            AuditAction::StaffDisabled => "staff.disabled",
            AuditAction::StaffEnabled => "staff.enabled",
            AuditAction::StaffRoleSet => "staff.role_set",
        }
    }

    /// A request's own event: `request.` and the outcome it was given.
    pub fn of_outcome(outcome: Outcome) -> AuditAction {
        match outcome {
            Outcome::Applied => AuditAction::RequestApplied,
            Outcome::Rejected => AuditAction::RequestRejected,
            Outcome::NeedsReview => AuditAction::RequestNeedsReview,
            Outcome::AwaitingConfirmation => AuditAction::RequestAwaitingConfirmation,
            Outcome::Ignored => AuditAction::RequestIgnored,
            Outcome::Duplicate => AuditAction::RequestDuplicate,
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AuditAction {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AuditAction::ALL
            .into_iter()
            .find(|a| a.as_str() == s.trim())
            .ok_or_else(|| format!("unknown audit action `{s}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_its_own_text_and_reads_back() {
        let mut seen = std::collections::HashSet::new();
        for a in AuditAction::ALL {
            assert!(seen.insert(a.as_str()), "{a:?} repeats {}", a.as_str());
            assert_eq!(a.as_str().parse::<AuditAction>(), Ok(a));
        }
    }
}
