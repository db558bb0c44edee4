//! `postroom check`: can this config reach its mail servers (and its directory target)? One line per check, ✓ or ✗ with
//! the reason; exit status 0 only when every check passed. Nothing is changed on the servers
//! (missing outcome folders are reported, and created by `run`).

use crate::config::{Config, ImapConfig};
use crate::imap::connect::{self, Tls};
use crate::imap::folders::Folders;
use crate::imap::{Caps, bounded};
use crate::smtp;
use crate::store::Store;
use anyhow::{Result, bail};
use std::io::Write;

/// The report being built.
#[derive(Debug, Default)]
pub struct Report {
    lines: Vec<(bool, String, String)>,
}

impl Report {
    fn pass(&mut self, what: &str, detail: impl Into<String>) {
        self.lines.push((true, what.to_owned(), detail.into()));
    }

    fn fail(&mut self, what: &str, detail: impl Into<String>) {
        self.lines.push((false, what.to_owned(), detail.into()));
    }

    pub fn failures(&self) -> usize {
        self.lines.iter().filter(|(ok, _, _)| !ok).count()
    }

    pub fn render(&self) -> String {
        let width = self
            .lines
            .iter()
            .map(|(_, w, _)| w.chars().count())
            .max()
            .unwrap_or(0);
        self.lines
            .iter()
            .map(|(ok, what, detail)| {
                let mark = if *ok { '✓' } else { '✗' };
                format!("{mark} {what:<width$}  {detail}\n")
            })
            .collect()
    }
}

pub async fn run(cfg: &Config, store: &Store) -> Result<()> {
    let report = checks(cfg, store).await;
    let mut out = std::io::stdout().lock();
    out.write_all(report.render().as_bytes())?;
    out.flush()?;
    let failed = report.failures();
    if failed > 0 {
        bail!("{failed} of {} checks failed", report.lines.len());
    }
    Ok(())
}

pub async fn checks(cfg: &Config, store: &Store) -> Report {
    let mut r = Report::default();
    match store.read().await {
        Ok(_) => r.pass(
            "database",
            format!("{:?} reachable, schema up to date", store.backend()),
        ),
        Err(e) => r.fail("database", e.to_string()),
    }
    match cfg.imap.as_slice() {
        [] => r.fail("IMAP", "no [imap] section in the config"),
        [imap] => {
            imap_checks(imap, "", &mut r).await;
            lease_check(store, imap, "", &mut r).await;
        }
        // Several inboxes: each line names its entry (`IMAP login imap[1]`).
        many => {
            for imap in many {
                let which = format!(" {}", imap.key);
                imap_checks(imap, &which, &mut r).await;
                lease_check(store, imap, &which, &mut r).await;
            }
        }
    }
    match &cfg.smtp {
        Some(s) => match smtp::check(s).await {
            Ok(detail) => r.pass("SMTP", detail),
            Err(e) => r.fail("SMTP", e),
        },
        None => r.fail("SMTP", "no [smtp] section in the config"),
    }
    // The directory target (issue 15), when changes go to one.
    match crate::provision::check(&cfg.directory.target).await {
        None => {}
        Some(Ok(detail)) => r.pass("directory", detail),
        Some(Err(e)) => r.fail("directory", e),
    }
    r
}

/// Which instance works the inbox now (several instances share one database): informative,
/// never a failure — a lease held by another instance is how it should be.
async fn lease_check(store: &Store, imap: &ImapConfig, which: &str, r: &mut Report) {
    let inbox = imap.inbox_id();
    let detail = match crate::store::lease::find(store, &inbox).await {
        Ok(Some(l)) if l.expires_in_ms > 0 => format!(
            "{inbox}: worked by {} (lease runs out in {:.0}s unless renewed)",
            l.holder,
            l.expires_in_ms as f64 / 1000.0
        ),
        Ok(_) => format!("{inbox}: no instance works it now; `run` takes it"),
        Err(e) => return r.fail(&format!("IMAP lease{which}"), e.to_string()),
    };
    r.pass(&format!("IMAP lease{which}"), detail);
}

/// The checks of one inbox; `which` is appended to each line's name (empty for one inbox).
async fn imap_checks(imap: &ImapConfig, which: &str, r: &mut Report) {
    let l = |what: &str| format!("{what}{which}");
    let tls = match Tls::from_config(imap) {
        Ok(t) => t,
        Err(e) => return r.fail(&l("IMAP TLS"), e.to_string()),
    };
    let how = match imap.tls {
        crate::config::TlsMode::Tls => "TLS, certificate verified",
        crate::config::TlsMode::Starttls => "STARTTLS, certificate verified",
        crate::config::TlsMode::None => "no TLS (loopback tests only)",
    };
    let client = match connect::open(imap, &tls).await {
        Ok(c) => {
            r.pass(
                &l("IMAP connect"),
                format!("{}:{} ({how})", imap.host, imap.port),
            );
            c
        }
        Err(e) => return r.fail(&l("IMAP connect"), e.to_string()),
    };
    let mut session = match connect::login(client, imap, None).await {
        Ok(s) => {
            r.pass(
                &l("IMAP login"),
                format!("logged in as {} ({})", imap.username, imap.auth.describe()),
            );
            s
        }
        Err(e) => return r.fail(&l("IMAP login"), e.to_string()),
    };
    match Caps::query(&mut session, imap.timeout).await {
        Ok(caps) => {
            match (imap.idle, caps.idle) {
                (true, true) => r.pass(&l("IMAP IDLE"), "offered: new mail is seen at once"),
                (true, false) => r.fail(&l("IMAP IDLE"),
                    format!(
                        "not offered: postroom falls back to polling every {:?} (set idle = false to accept that)",
                        imap.poll_interval
                    ),
                ),
                (false, _) => r.pass(&l("IMAP IDLE"), format!("not used (idle = false): polling every {:?}", imap.poll_interval)),
            }
            match (caps.r#move, caps.uidplus) {
                (true, _) => r.pass(&l("IMAP MOVE"), "offered: messages are filed with UID MOVE"),
                (false, true) => r.pass(&l("IMAP MOVE"), "not offered; UIDPLUS is: UID COPY + UID EXPUNGE instead"),
                (false, false) => r.fail(&l("IMAP MOVE"),
                    "neither MOVE nor UIDPLUS: filed messages can only be copied and flagged \\Deleted",
                ),
            }
            if caps.uidplus {
                r.pass(&l("IMAP UIDPLUS"), "offered");
            } else if caps.r#move {
                r.pass(&l("IMAP UIDPLUS"), "not offered (not needed: MOVE is)");
            }
        }
        Err(e) => return r.fail(&l("IMAP capabilities"), e.to_string()),
    }
    let folders = match Folders::discover(&mut session, imap).await {
        Ok(f) => f,
        Err(e) => return r.fail(&l("IMAP folders"), e.to_string()),
    };
    match bounded(
        format!("SELECT {}", folders.watched),
        imap.timeout,
        session.examine(&folders.watched),
    )
    .await
    {
        Ok(m) => r.pass(
            &l("IMAP folder"),
            format!(
                "{}: {} message{} waiting (UIDVALIDITY {})",
                folders.watched,
                m.exists,
                if m.exists == 1 { "" } else { "s" },
                m.uid_validity
                    .map_or_else(|| "none".to_owned(), |v| v.to_string())
            ),
        ),
        Err(e) => r.fail(&l("IMAP folder"), format!("{}: {e}", folders.watched)),
    }
    match folders.missing(&mut session, imap).await {
        Ok(missing) if missing.is_empty() => r.pass(
            &l("IMAP outcome folders"),
            folders.outcome_folders().join(", "),
        ),
        Ok(missing) => r.pass(
            &l("IMAP outcome folders"),
            format!("{} missing; `run` creates them", missing.join(", ")),
        ),
        Err(e) => r.fail(&l("IMAP outcome folders"), e.to_string()),
    }
    connect::logout(session, imap).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_marks_and_counts() {
        let mut r = Report::default();
        r.pass("IMAP connect", "ok");
        r.fail("SMTP", "refused");
        assert_eq!(r.failures(), 1);
        let text = r.render();
        assert!(text.contains("✓ IMAP connect  ok"), "{text}");
        assert!(text.contains("✗ SMTP          refused"), "{text}");
    }
}
