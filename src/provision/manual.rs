//! The `manual` target: where no API can make a change — Exchange Online's shared-mailbox
//! permissions have none (Microsoft Graph and the Exchange admin API offer no endpoint for
//! FullAccess or SendAs) — each operation becomes a task for the helpdesk, with the exact
//! steps. No worker runs these jobs: a job stays pending until a person on the staff page says
//! the steps are done, and only then is the site answered (its reply is held on the job like
//! any other target's).

use super::operation::Operation;
use crate::request::Role;

/// PowerShell arguments are quoted with single quotes; a quote inside doubles (about_Quoting_Rules).
fn ps(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// What a person does for `op`: a sentence, then the commands (Exchange Online PowerShell and
/// Microsoft Graph PowerShell), one per line.
pub fn steps(op: &Operation) -> Vec<String> {
    match op {
        Operation::CreateAccount {
            address,
            name,
            first,
            last,
            job_title,
            password,
        } => {
            let mut cmd = format!(
                "New-MgUser -UserPrincipalName {} -Mail {} -DisplayName {} -GivenName {} -Surname {} -MailNickname {} -AccountEnabled -PasswordProfile @{{ Password = {}; ForceChangePasswordNextSignIn = $true }}",
                ps(address),
                ps(address),
                ps(name),
                ps(first),
                ps(last),
                ps(address.split('@').next().unwrap_or(address)),
                ps(password)
            );
            if let Some(t) = job_title.as_deref().filter(|t| !t.is_empty()) {
                cmd.push_str(&format!(" -JobTitle {}", ps(t)));
            }
            vec![
                format!(
                    "Create the account {address} for {name}, with the temporary password below, to be changed at first sign-in (and a licence with a mailbox):"
                ),
                cmd,
            ]
        }
        Operation::ResetPassword { address, password } => vec![
            format!(
                "Set the temporary password below on {address}, to be changed at next sign-in, and let it sign in:"
            ),
            format!(
                "Update-MgUser -UserId {} -AccountEnabled -PasswordProfile @{{ Password = {}; ForceChangePasswordNextSignIn = $true }}",
                ps(address),
                ps(password)
            ),
        ],
        Operation::Unlock { address } => vec![
            format!("Let {address} sign in again (its password is unchanged):"),
            format!("Update-MgUser -UserId {} -AccountEnabled", ps(address)),
        ],
        Operation::Disable { address } => vec![
            format!("Stop {address} signing in, and end its sessions:"),
            format!(
                "Update-MgUser -UserId {} -AccountEnabled:$false",
                ps(address)
            ),
            format!("Revoke-MgUserSignInSession -UserId {}", ps(address)),
        ],
        Operation::AddMember {
            mailbox, account, ..
        } => vec![
            format!("Give {account} full access to {mailbox} and let it send as the mailbox:"),
            format!(
                "Add-MailboxPermission -Identity {} -User {} -AccessRights FullAccess -InheritanceType All",
                ps(mailbox),
                ps(account)
            ),
            format!(
                "Add-RecipientPermission -Identity {} -Trustee {} -AccessRights SendAs -Confirm:$false",
                ps(mailbox),
                ps(account)
            ),
        ],
        Operation::RemoveMember { mailbox, account } => vec![
            format!("Take {account}'s access to {mailbox} away:"),
            format!(
                "Remove-MailboxPermission -Identity {} -User {} -AccessRights FullAccess -InheritanceType All -Confirm:$false",
                ps(mailbox),
                ps(account)
            ),
            format!(
                "Remove-RecipientPermission -Identity {} -Trustee {} -AccessRights SendAs -Confirm:$false",
                ps(mailbox),
                ps(account)
            ),
        ],
        // Exchange has no owner of a shared mailbox: who may ask for changes is postroom's own
        // record, already made. The access itself is a member's.
        Operation::ChangeRole {
            mailbox,
            account,
            role,
        } => match role {
            Role::Owner | Role::Member => vec![format!(
                "Nothing to change in Exchange: {account} is now {role} of {mailbox} in postroom, which is where owners are kept. Check that {account} has full access (Get-MailboxPermission -Identity {} -User {}).",
                ps(mailbox),
                ps(account)
            )],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quote_in_a_name_cannot_end_the_argument() {
        let s = steps(&Operation::AddMember {
            mailbox: "care@x.org".into(),
            account: "o'brien@x.org".into(),
            role: Role::Member,
        });
        assert!(s[1].contains("-User 'o''brien@x.org'"), "{s:?}");
        assert!(s[2].contains("-AccessRights SendAs"), "{s:?}");
    }
}
