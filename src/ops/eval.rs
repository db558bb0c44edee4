//! `postroom eval DIR`: how well postroom understands requests, measured on a labelled corpus
//! (issue 12, "Measured, not hoped"). Each message of `DIR/manifest.toml` is decided in a dry
//! run against a throw-away SQLite database seeded from `DIR/directory.csv`, alone (nothing of
//! one message is left for the next), and compared with its label.
//!
//! Every message falls in one of three classes (the definitions are printed by `--help` and
//! in the README, "How well it understands"):
//! - **understood**: decided as labelled — the same outcome class, and for an action every
//!   ask's kind and target account right;
//! - **sent to review**: labelled act or refuse, and postroom chose `needs_review` (a safe
//!   miss: a person decides);
//! - **wrong**: an action on the wrong account or kind, an action on mail that asks for none,
//!   a refusal of a clear request (or for another reason than the label's), a refusal where
//!   the label says review/ignore — and, because nobody would ever read it, a request that was
//!   ignored or an ask that was dropped without being sent to a person.
//!
//! The format of a corpus directory is documented in `tests/understanding/README.md`.

use crate::config::Config;
use crate::outcome::Outcome;
use crate::pipeline::{self, Mode, Processed};
use crate::request::RequestKind;
use crate::store::{Store, StoreError};
use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// What `--help` prints after the options: the definitions the figures rest on.
pub const HELP: &str = "\
DIR holds manifest.toml (one [[message]] per .eml file with its label), directory.csv (the \
directory every message is judged against) and optionally postroom.toml (used instead of \
--config; the database is always a throw-away SQLite file). Format: tests/understanding/README.md.

Each message is decided alone, in a dry run, and counted as:
  understood      decided as labelled: same outcome class (act = applied or \
awaiting_confirmation, refuse = rejected with the labelled reason, review = needs_review, \
ignore = ignored), and for an action every ask's kind and target account right
  sent to review  labelled act or refuse, and postroom chose needs_review (a safe miss)
  wrong           an action on the wrong account or kind, an action on mail that asks for \
none, a refusal of a clear request or for another reason than labelled, a refusal where the \
label says review/ignore, or a request ignored or an ask dropped without a person seeing it

Exit status: 1 when any message is wrong (or the corpus cannot be read), 0 otherwise.";

/// Outcome classes a label can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    Act,
    Review,
    Ignore,
    Refuse,
}

impl Expect {
    fn as_str(self) -> &'static str {
        match self {
            Expect::Act => "act",
            Expect::Review => "review",
            Expect::Ignore => "ignore",
            Expect::Refuse => "refuse",
        }
    }

    /// The class an outcome belongs to (`None`: a duplicate, which a corpus never labels).
    fn of(outcome: Outcome) -> Option<Expect> {
        match outcome {
            Outcome::Applied | Outcome::AwaitingConfirmation => Some(Expect::Act),
            Outcome::Rejected => Some(Expect::Refuse),
            Outcome::NeedsReview => Some(Expect::Review),
            Outcome::Ignored => Some(Expect::Ignore),
            Outcome::Duplicate => None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(Expect),
    Many(Vec<Expect>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    #[serde(default)]
    message: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    file: String,
    expect: OneOrMany,
    #[serde(default)]
    asks: Vec<RawAsk>,
    reason: Option<String>,
    /// Which `[policy]` switch would change the label (documentation only).
    policy: Option<String>,
    /// Why the label is what it is (documentation only).
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAsk {
    kind: String,
    target: String,
}

/// One labelled message.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub file: String,
    /// The outcome classes the label accepts: one, or review and ignore together.
    pub expect: Vec<Expect>,
    pub asks: Vec<Ask>,
    /// For a refusal: the reason code it must give.
    pub reason: Option<String>,
    /// Which `[policy]` switch would change the label, and why the label is what it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// One thing a message asks: the kind and the target (an account address; for a new account,
/// the new person's name).
#[derive(Debug, Clone, Serialize)]
pub struct Ask {
    pub kind: RequestKind,
    pub target: String,
}

/// Read and check `manifest.toml`; every error names the file and the entry.
pub fn load_manifest(dir: &Path) -> Result<Vec<Entry>> {
    let path = dir.join("manifest.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let raw: RawManifest =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if raw.message.is_empty() {
        bail!(
            "{}: no [[message]] entries: nothing to measure",
            path.display()
        );
    }
    let mut seen = BTreeSet::new();
    let mut entries = Vec::with_capacity(raw.message.len());
    for (i, e) in raw.message.into_iter().enumerate() {
        let at = format!("{}: message {} ({})", path.display(), i + 1, e.file);
        entries.push(check_entry(dir, e, &mut seen).map_err(|m| anyhow::anyhow!("{at}: {m}"))?);
    }
    Ok(entries)
}

fn check_entry(
    dir: &Path,
    e: RawEntry,
    seen: &mut BTreeSet<String>,
) -> std::result::Result<Entry, String> {
    if e.file.trim().is_empty() {
        return Err("`file` is empty".into());
    }
    if !seen.insert(e.file.clone()) {
        return Err("this file is listed twice".into());
    }
    if !dir.join(&e.file).is_file() {
        return Err(format!("no such file {}", dir.join(&e.file).display()));
    }
    let mut expect = match e.expect {
        OneOrMany::One(x) => vec![x],
        OneOrMany::Many(xs) => xs,
    };
    expect.sort();
    expect.dedup();
    match expect.as_slice() {
        [Expect::Act] | [Expect::Refuse] | [Expect::Review] | [Expect::Ignore] => {}
        [Expect::Review, Expect::Ignore] => {}
        [] => return Err("`expect` is empty".into()),
        _ => {
            return Err(
                "`expect` may list several classes only as [\"review\", \"ignore\"]".into(),
            );
        }
    }
    let mut asks = Vec::with_capacity(e.asks.len());
    for (j, a) in e.asks.into_iter().enumerate() {
        let kind: RequestKind = a.kind.parse().map_err(|m| format!("asks[{j}]: {m}"))?;
        if kind == RequestKind::Unknown {
            return Err(format!("asks[{j}]: `unknown` is not a kind one can ask"));
        }
        let target = a.target.trim().to_owned();
        if target.is_empty() {
            return Err(format!("asks[{j}]: `target` is empty"));
        }
        if kind != RequestKind::NewAccount && !target.contains('@') {
            return Err(format!(
                "asks[{j}]: the target of {kind} must be an account address, not `{target}`",
                kind = kind.as_str()
            ));
        }
        asks.push(Ask { kind, target });
    }
    if expect == [Expect::Act] && asks.is_empty() {
        return Err("`expect = \"act\"` needs the `asks` it expects".into());
    }
    match (&e.reason, expect.as_slice()) {
        (None, [Expect::Refuse]) => {
            return Err("`expect = \"refuse\"` needs the `reason` code".into());
        }
        (Some(_), [Expect::Refuse]) | (None, _) => {}
        (Some(_), _) => return Err("`reason` is only for `expect = \"refuse\"`".into()),
    }
    Ok(Entry {
        file: e.file,
        expect,
        asks,
        reason: e.reason,
        policy: e.policy,
        note: e.note,
    })
}

/// The three classes of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Class {
    Understood,
    SentToReview,
    Wrong,
}

/// What postroom decided about one request of a message, as the eval compares it.
#[derive(Debug, Clone, Serialize)]
pub struct Got {
    pub outcome: Outcome,
    pub kind: RequestKind,
    /// The target account; for a new account, the new person's name as understood.
    pub target: Option<String>,
    pub reason: Option<String>,
}

impl Got {
    fn of(p: &Processed) -> Got {
        let target = p.understood.as_ref().and_then(|u| {
            if p.kind == RequestKind::NewAccount {
                let field = |k: &str| u.fields.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
                match (field("first_name"), field("last_name"), field("name")) {
                    (Some(f), Some(l), _) => Some(format!("{f} {l}")),
                    (_, _, Some(n)) => Some(n.to_owned()),
                    _ => u.targets.first().map(|t| t.as_written.clone()),
                }
            } else {
                u.targets.iter().find_map(|t| t.account.clone())
            }
        });
        Got {
            outcome: p.outcome,
            kind: p.kind,
            target,
            reason: p.reason.clone(),
        }
    }

    fn describe(&self) -> String {
        let mut s = format!("{} {}", self.outcome, self.kind.as_str());
        if let Some(t) = &self.target {
            let _ = write!(s, " {t}");
        }
        if let Some(r) = &self.reason {
            let _ = write!(s, " ({r})");
        }
        s
    }
}

/// Names compared as people write them: case, accents and spacing folded.
fn fold_name(s: &str) -> String {
    deunicode::deunicode(s)
        .to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn matches(ask: &Ask, got: &Got) -> bool {
    if ask.kind != got.kind {
        return false;
    }
    match &got.target {
        None => false,
        Some(t) if ask.kind == RequestKind::NewAccount => fold_name(t) == fold_name(&ask.target),
        Some(t) => t.eq_ignore_ascii_case(&ask.target),
    }
}

/// Judge one message: its class and, for a miss, why.
pub fn judge(entry: &Entry, got: &[Got]) -> (Class, Option<String>) {
    let wrong = |why: String| (Class::Wrong, Some(why));
    let review = |why: String| (Class::SentToReview, Some(why));
    if got.is_empty() {
        return wrong("postroom made no decision".into());
    }
    let allowed = |g: &Got| Expect::of(g.outcome).is_some_and(|c| entry.expect.contains(&c));
    match entry.expect.as_slice() {
        [Expect::Act] => {
            for g in got {
                match Expect::of(g.outcome) {
                    Some(Expect::Act) if !entry.asks.iter().any(|a| matches(a, g)) => {
                        return wrong(format!("acted, but not as asked: {}", g.describe()));
                    }
                    Some(Expect::Refuse) => {
                        return wrong(format!("refused a clear request: {}", g.describe()));
                    }
                    Some(Expect::Ignore) | None => {
                        return wrong(format!("a request nobody would read: {}", g.describe()));
                    }
                    Some(Expect::Act) | Some(Expect::Review) => {}
                }
            }
            let acted: Vec<&Got> = got
                .iter()
                .filter(|g| Expect::of(g.outcome) == Some(Expect::Act))
                .collect();
            let missing: Vec<&Ask> = entry
                .asks
                .iter()
                .filter(|a| !acted.iter().any(|g| matches(a, g)))
                .collect();
            if missing.is_empty() && acted.len() == got.len() {
                return (Class::Understood, None);
            }
            let reviewed: Vec<String> = got
                .iter()
                .filter(|g| g.outcome == Outcome::NeedsReview)
                .map(Got::describe)
                .collect();
            if reviewed.is_empty() {
                let names: Vec<String> = missing
                    .iter()
                    .map(|a| format!("{} {}", a.kind.as_str(), a.target))
                    .collect();
                return wrong(format!(
                    "dropped without a person seeing it: {}",
                    names.join(", ")
                ));
            }
            review(reviewed.join("; "))
        }
        [Expect::Refuse] => {
            let want = entry.reason.as_deref().unwrap_or_default();
            for g in got {
                match Expect::of(g.outcome) {
                    Some(Expect::Act) => {
                        return wrong(format!("acted where the rules refuse: {}", g.describe()));
                    }
                    Some(Expect::Refuse) if g.reason.as_deref() != Some(want) => {
                        return wrong(format!(
                            "refused for another reason than `{want}`: {}",
                            g.describe()
                        ));
                    }
                    Some(Expect::Ignore) | None => {
                        return wrong(format!("a request nobody would read: {}", g.describe()));
                    }
                    Some(Expect::Refuse) | Some(Expect::Review) => {}
                }
            }
            if got.iter().all(|g| g.outcome == Outcome::Rejected) {
                return (Class::Understood, None);
            }
            let reviewed: Vec<String> = got
                .iter()
                .filter(|g| g.outcome == Outcome::NeedsReview)
                .map(Got::describe)
                .collect();
            review(reviewed.join("; "))
        }
        _ => {
            // review, ignore, or either: never act, never refuse.
            for g in got {
                match Expect::of(g.outcome) {
                    Some(Expect::Act) => {
                        return wrong(format!(
                            "acted where nothing should be done: {}",
                            g.describe()
                        ));
                    }
                    Some(Expect::Refuse) => {
                        return wrong(format!(
                            "refused where a person should decide: {}",
                            g.describe()
                        ));
                    }
                    Some(Expect::Review) | Some(Expect::Ignore) | None => {}
                }
            }
            let Some(g) = got.iter().find(|g| !allowed(g)) else {
                return (Class::Understood, None);
            };
            if g.outcome == Outcome::NeedsReview {
                // Labelled ignore, sent to a person: safe.
                review(g.describe())
            } else {
                wrong(format!(
                    "ignored where a person should decide: {}",
                    g.describe()
                ))
            }
        }
    }
}

/// Every request postroom makes of one message, decided in a dry run. The ONE place the eval
/// calls the pipeline: when `process` returns each ask of a message as its own request, only
/// this call changes.
async fn results(
    store: &Store,
    cfg: &Config,
    raw: &[u8],
    source: &str,
) -> Result<Vec<Processed>, StoreError> {
    pipeline::process(store, cfg, raw, source, Mode::DryRun)
        .await
        .map(|p| vec![p])
}

/// One message that was not understood.
#[derive(Debug, Clone, Serialize)]
pub struct Miss {
    pub file: String,
    pub class: Class,
    pub expected: Entry,
    pub got: Vec<Got>,
    pub why: String,
}

/// The figures and every miss.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub dir: String,
    pub config: String,
    pub messages: usize,
    pub understood: usize,
    pub sent_to_review: usize,
    pub wrong: usize,
    pub understood_pct: f64,
    pub sent_to_review_pct: f64,
    pub wrong_pct: f64,
    pub misses: Vec<Miss>,
}

fn pct(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        (n as f64 * 1000.0 / of as f64).round() / 10.0
    }
}

/// The configuration a corpus is judged under: `DIR/postroom.toml` when there is one, else
/// `fallback` (`--config`); its database is never used.
pub fn config_path(dir: &Path, fallback: &Path) -> PathBuf {
    let own = dir.join("postroom.toml");
    if own.is_file() {
        own
    } else {
        fallback.to_owned()
    }
}

/// Run the whole corpus of `dir`.
pub async fn evaluate(dir: &Path, fallback_config: &Path) -> Result<Report> {
    let entries = load_manifest(dir)?;
    let config_path = config_path(dir, fallback_config);
    let mut cfg = Config::load(&config_path)?;
    let tmp = tempfile::tempdir().context("cannot make a temporary directory")?;
    cfg.database.url = format!("sqlite://{}", tmp.path().join("eval.db").display());
    let store = Store::open(&cfg.database).await?;
    let result = run_entries(&store, &cfg, dir, &entries).await;
    store.close().await;
    let (understood, misses) = result?;
    let count = |c: Class| misses.iter().filter(|m| m.class == c).count();
    let (sent_to_review, wrong) = (count(Class::SentToReview), count(Class::Wrong));
    let messages = entries.len();
    Ok(Report {
        dir: dir.display().to_string(),
        config: config_path.display().to_string(),
        messages,
        understood,
        sent_to_review,
        wrong,
        understood_pct: pct(understood, messages),
        sent_to_review_pct: pct(sent_to_review, messages),
        wrong_pct: pct(wrong, messages),
        misses,
    })
}

async fn run_entries(
    store: &Store,
    cfg: &Config,
    dir: &Path,
    entries: &[Entry],
) -> Result<(usize, Vec<Miss>)> {
    let csv = dir.join("directory.csv");
    let f = std::fs::File::open(&csv).with_context(|| format!("cannot open {}", csv.display()))?;
    crate::directory_csv::import(store, f, &csv.display().to_string())
        .await
        .with_context(|| format!("{}: the directory could not be imported", csv.display()))?;
    let mut understood = 0;
    let mut misses = Vec::new();
    for entry in entries {
        let path = dir.join(&entry.file);
        let raw =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let (got, failure) = match results(store, cfg, &raw, &format!("eval:{}", entry.file)).await
        {
            Ok(ps) => (ps.iter().map(Got::of).collect::<Vec<_>>(), None),
            Err(e) => (Vec::new(), Some(format!("postroom failed: {e}"))),
        };
        let (class, why) = match failure {
            Some(why) => (Class::Wrong, Some(why)),
            None => judge(entry, &got),
        };
        if class == Class::Understood {
            understood += 1;
        } else {
            misses.push(Miss {
                file: entry.file.clone(),
                class,
                expected: entry.clone(),
                got,
                why: why.unwrap_or_default(),
            });
        }
    }
    Ok((understood, misses))
}

fn describe_expected(e: &Entry) -> String {
    let classes: Vec<&str> = e.expect.iter().map(|x| x.as_str()).collect();
    let mut s = classes.join("/");
    for a in &e.asks {
        let _ = write!(s, " {} {}", a.kind.as_str(), a.target);
    }
    if let Some(r) = &e.reason {
        let _ = write!(s, " ({r})");
    }
    s
}

/// The report for a person.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} messages in {} (config {})",
        r.messages, r.dir, r.config
    );
    for (label, n, p) in [
        ("understood", r.understood, r.understood_pct),
        ("sent to review", r.sent_to_review, r.sent_to_review_pct),
        ("wrong", r.wrong, r.wrong_pct),
    ] {
        let _ = writeln!(out, "  {label:<15}{n:>5}  {p:>5.1}%");
    }
    for (title, class) in [
        ("wrong", Class::Wrong),
        ("sent to review", Class::SentToReview),
    ] {
        let misses: Vec<&Miss> = r.misses.iter().filter(|m| m.class == class).collect();
        if misses.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title}:");
        for m in misses {
            let got: Vec<String> = m.got.iter().map(Got::describe).collect();
            let _ = writeln!(out, "  {}", m.file);
            let _ = writeln!(out, "    expected {}", describe_expected(&m.expected));
            let _ = writeln!(out, "    got      {}", got.join("; "));
            let _ = writeln!(out, "    why      {}", m.why);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(expect: &[Expect], asks: &[(RequestKind, &str)], reason: Option<&str>) -> Entry {
        Entry {
            file: "m.eml".into(),
            expect: expect.to_vec(),
            asks: asks
                .iter()
                .map(|(k, t)| Ask {
                    kind: *k,
                    target: (*t).into(),
                })
                .collect(),
            reason: reason.map(str::to_owned),
            policy: None,
            note: None,
        }
    }

    fn got(outcome: Outcome, kind: RequestKind, target: Option<&str>, reason: Option<&str>) -> Got {
        Got {
            outcome,
            kind,
            target: target.map(str::to_owned),
            reason: reason.map(str::to_owned),
        }
    }

    const RESET: RequestKind = RequestKind::PasswordReset;

    #[test]
    fn an_action_is_judged_by_kind_and_every_target() {
        let e = entry(&[Expect::Act], &[(RESET, "a@x"), (RESET, "b@x")], None);
        let a = got(Outcome::Applied, RESET, Some("a@x"), None);
        let b = got(Outcome::Applied, RESET, Some("B@x"), None);
        assert_eq!(judge(&e, &[a.clone(), b]).0, Class::Understood);
        // One ask done, the other sent to a person: safe.
        let r = got(
            Outcome::NeedsReview,
            RequestKind::Unknown,
            None,
            Some("unknown_kind"),
        );
        assert_eq!(judge(&e, &[a.clone(), r]).0, Class::SentToReview);
        // One ask done, the other silently dropped.
        assert_eq!(judge(&e, std::slice::from_ref(&a)).0, Class::Wrong);
        // The wrong account.
        let c = got(Outcome::Applied, RESET, Some("c@x"), None);
        assert_eq!(judge(&e, &[a, c]).0, Class::Wrong);
        // Confirmation pending counts as acting.
        let e1 = entry(&[Expect::Act], &[(RequestKind::ChangeRole, "a@x")], None);
        let w = got(
            Outcome::AwaitingConfirmation,
            RequestKind::ChangeRole,
            Some("a@x"),
            None,
        );
        assert_eq!(judge(&e1, &[w]).0, Class::Understood);
    }

    #[test]
    fn new_accounts_compare_names_folded() {
        let e = entry(
            &[Expect::Act],
            &[(RequestKind::NewAccount, "Chloë Brontë")],
            None,
        );
        let g = got(
            Outcome::Applied,
            RequestKind::NewAccount,
            Some("chloe  bronte"),
            None,
        );
        assert_eq!(judge(&e, &[g]).0, Class::Understood);
        let g = got(
            Outcome::Applied,
            RequestKind::NewAccount,
            Some("Chloe Smith"),
            None,
        );
        assert_eq!(judge(&e, &[g]).0, Class::Wrong);
    }

    #[test]
    fn refusals_and_traps() {
        let e = entry(&[Expect::Refuse], &[], Some("requester_missing"));
        let ok = got(Outcome::Rejected, RESET, None, Some("requester_missing"));
        let other = got(Outcome::Rejected, RESET, None, Some("name_missing"));
        let rev = got(Outcome::NeedsReview, RESET, None, Some("unknown_account"));
        assert_eq!(judge(&e, std::slice::from_ref(&ok)).0, Class::Understood);
        assert_eq!(judge(&e, &[other]).0, Class::Wrong);
        assert_eq!(judge(&e, std::slice::from_ref(&rev)).0, Class::SentToReview);

        let trap = entry(&[Expect::Review, Expect::Ignore], &[], None);
        let ign = got(
            Outcome::Ignored,
            RequestKind::Unknown,
            None,
            Some("comment_added"),
        );
        assert_eq!(
            judge(&trap, std::slice::from_ref(&rev)).0,
            Class::Understood
        );
        assert_eq!(
            judge(&trap, std::slice::from_ref(&ign)).0,
            Class::Understood
        );
        assert_eq!(judge(&trap, std::slice::from_ref(&ok)).0, Class::Wrong);
        let acted = got(Outcome::Applied, RESET, Some("a@x"), None);
        assert_eq!(judge(&trap, &[acted]).0, Class::Wrong);

        let only_review = entry(&[Expect::Review], &[], None);
        assert_eq!(
            judge(&only_review, std::slice::from_ref(&ign)).0,
            Class::Wrong
        );
        let only_ignore = entry(&[Expect::Ignore], &[], None);
        assert_eq!(judge(&only_ignore, &[rev]).0, Class::SentToReview);
        assert_eq!(judge(&only_ignore, &[]).0, Class::Wrong);
    }
}
