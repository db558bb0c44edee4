//! Folder names as the server spells them, and the outcome folders made when missing.
//!
//! The config writes hierarchy with `/` (`postroom/processed`). Servers that separate with
//! `.` (Courier; Cyrus unless `unixhierarchysep: yes`; Dovecot with `separator = .`) would
//! take that `/` as part of one flat name, so it is replaced by the separator the server
//! reports in `LIST "" ""` (RFC 3501 §6.3.8).

use super::{ImapError, Session, bounded, quoted};
use crate::imap::config::ImapConfig;
use crate::outcome::Outcome;
use futures::TryStreamExt;

#[derive(Debug, Clone)]
pub struct Folders {
    /// The server's hierarchy separator; `None` for a flat namespace.
    pub delimiter: Option<String>,
    pub watched: String,
    processed: String,
    rejected: String,
    review: String,
    ignored: String,
}

impl Folders {
    /// Ask the server for its separator and map the configured names.
    pub async fn discover(session: &mut Session, imap: &ImapConfig) -> Result<Folders, ImapError> {
        let names = bounded("LIST \"\" \"\"", imap.timeout, async {
            session
                .list(Some(""), Some("\"\""))
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        let delimiter = names.iter().find_map(|n| n.delimiter().map(str::to_owned));
        Ok(Folders::new(imap, delimiter))
    }

    pub fn new(imap: &ImapConfig, delimiter: Option<String>) -> Folders {
        let map = |name: &str| match delimiter.as_deref() {
            Some(d) if d != "/" && !d.is_empty() => name.replace('/', d),
            _ => name.to_owned(),
        };
        Folders {
            watched: map(&imap.folder),
            processed: map(&imap.processed),
            rejected: map(&imap.rejected),
            review: map(&imap.review),
            ignored: map(&imap.ignored),
            delimiter,
        }
    }

    /// The folder a message with this outcome is filed in (see `ImapConfig::folder_for`).
    pub fn for_outcome(&self, outcome: Outcome) -> &str {
        match outcome {
            Outcome::Applied | Outcome::AwaitingConfirmation | Outcome::Duplicate => {
                &self.processed
            }
            Outcome::Rejected => &self.rejected,
            Outcome::NeedsReview => &self.review,
            Outcome::Ignored => &self.ignored,
        }
    }

    pub fn outcome_folders(&self) -> [&str; 4] {
        [&self.processed, &self.rejected, &self.review, &self.ignored]
    }

    /// Outcome folders that do not exist on the server.
    pub async fn missing(
        &self,
        session: &mut Session,
        imap: &ImapConfig,
    ) -> Result<Vec<String>, ImapError> {
        let mut missing = Vec::new();
        for name in self.outcome_folders() {
            if !exists(session, imap, name).await? && !missing.iter().any(|m| m == name) {
                missing.push(name.to_owned());
            }
        }
        Ok(missing)
    }

    /// Create (and subscribe, so that mail clients show them) the outcome folders missing.
    pub async fn ensure(&self, session: &mut Session, imap: &ImapConfig) -> Result<(), ImapError> {
        for name in self.missing(session, imap).await? {
            create(session, imap, &name).await?;
        }
        Ok(())
    }
}

async fn exists(session: &mut Session, imap: &ImapConfig, name: &str) -> Result<bool, ImapError> {
    let found = bounded(format!("LIST {name}"), imap.timeout, async {
        session
            .list(Some(""), Some(&quoted(name)))
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    Ok(found.iter().any(|n| n.name() == name))
}

/// `CREATE`, tolerating a folder that appeared in the meantime (`[ALREADYEXISTS]`, RFC 5530).
pub async fn create(session: &mut Session, imap: &ImapConfig, name: &str) -> Result<(), ImapError> {
    match bounded(format!("CREATE {name}"), imap.timeout, session.create(name)).await {
        Ok(()) => tracing::info!(folder = name, "created IMAP folder {name}"),
        Err(e) if e.is_refusal() && exists(session, imap, name).await? => {}
        Err(e) => return Err(e),
    }
    // Not fatal: the folder works unsubscribed, clients just hide it.
    if let Err(e) = bounded(
        format!("SUBSCRIBE {name}"),
        imap.timeout,
        session.subscribe(name),
    )
    .await
    {
        if !e.is_refusal() {
            return Err(e);
        }
        tracing::debug!(folder = name, "SUBSCRIBE refused: {e}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn imap() -> ImapConfig {
        let text = "[helpdesk]\naddress = \"h@x.example\"\n[imap]\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n";
        Config::from_toml_with_env(text, &[])
            .unwrap()
            .imap
            .remove(0)
    }

    #[test]
    fn slash_becomes_the_server_separator() {
        let f = Folders::new(&imap(), Some(".".into()));
        assert_eq!(f.for_outcome(Outcome::Applied), "postroom.processed");
        assert_eq!(f.for_outcome(Outcome::Duplicate), "postroom.processed");
        assert_eq!(f.for_outcome(Outcome::NeedsReview), "postroom.review");
        assert_eq!(f.watched, "INBOX");
        let f = Folders::new(&imap(), Some("/".into()));
        assert_eq!(f.for_outcome(Outcome::Rejected), "postroom/rejected");
        let f = Folders::new(&imap(), None);
        assert_eq!(f.for_outcome(Outcome::Ignored), "postroom/ignored");
    }
}
