//! The command line: a contract, since scripts and other tools call it exactly so.

use crate::config::{self, Config};
use crate::directory_csv;
use crate::pipeline::{self, Mode};
use crate::store::Store;
use crate::store::journal;
use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "postroom",
    version,
    about = "An email request desk for shared mailboxes"
)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        global = true,
        env = "POSTROOM_CONFIG",
        default_value = "config/postroom.toml"
    )]
    pub config: PathBuf,

    /// Log lines for people (`human`) or for log collectors (`json`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update the database schema (every command also does this on start).
    Migrate {
        /// Only list the migrations that would be applied.
        #[arg(long)]
        dry_run: bool,
    },
    /// Import or export the directory of organisations, mailboxes, accounts and memberships.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// Run request emails (.eml files) through the pipeline; prints one JSON line per file.
    Process {
        /// Run every step, write nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the audit trail as JSON lines, oldest first; or verify it, sign a checkpoint of
    /// it, make a signing key (`postroom audit verify|checkpoint|keygen`).
    #[command(args_conflicts_with_subcommands = true)]
    Audit {
        #[command(subcommand)]
        command: Option<AuditCommand>,
        /// Only events since this time: `2026-11-26`, an RFC 3339 time, or a duration ago (`24h`).
        #[arg(long)]
        since: Option<String>,
        /// At most this many events.
        #[arg(long, default_value_t = 100_000)]
        limit: i64,
    },
    /// Run the daemon: watch the IMAP folder, process each new request, send the replies;
    /// until SIGTERM or SIGINT. Needs [imap] and [smtp] in the config.
    Run,
    /// Check the IMAP and SMTP settings (connect, TLS, login, capabilities, folder); one line
    /// per check, exit status 0 only when all pass.
    Check,
    /// Serve the staff page alone (`postroom run` serves it too), at `[web] listen`.
    Web,
    /// Inbox connection, last message, queue sizes, outbox backlog, oldest waiting request.
    Status {
        /// One JSON object instead of lines for a person.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent copy of the (SQLite) database to FILE while postroom runs.
    Backup { file: PathBuf },
    /// Decide stored messages again under the current rules and directory; print the outcomes
    /// that would change (JSON lines) and a summary. Writes nothing.
    Replay {
        /// Messages received since: `2026-11-26`, an RFC 3339 time, or a duration ago (`24h`).
        #[arg(long)]
        since: String,
        /// Required: replay only ever runs as a dry run.
        #[arg(long)]
        dry_run: bool,
    },
    /// The job queue (directory provisioning): one JSON line per job, newest first, without
    /// its payload; `jobs retry ID` tries a failed job again now (audited).
    #[command(args_conflicts_with_subcommands = true)]
    Jobs {
        #[command(subcommand)]
        command: Option<JobsCommand>,
        /// Only jobs in this state: pending, done or failed.
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Shared mailboxes at risk of being lost (`[continuity]`): one JSON line each, with its
    /// risks and reminders; `continuity remind` emails the ones due a reminder now.
    #[command(args_conflicts_with_subcommands = true)]
    Continuity {
        #[command(subcommand)]
        command: Option<ContinuityCommand>,
    },
    /// Apply `[retention]`: drop old raw messages, delete long-disabled accounts.
    Retention {
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
    },
    /// Measure how well requests are understood: decide every message of a labelled corpus
    /// (DIR/manifest.toml) in a dry run against DIR/directory.csv in a throw-away database,
    /// and print understood / sent to review / wrong, then each miss.
    #[command(after_long_help = crate::ops::eval::HELP)]
    Eval {
        /// The corpus directory.
        dir: PathBuf,
        /// One JSON document instead of lines for a person.
        #[arg(long)]
        json: bool,
    },
    /// Manage the helpdesk staff who sign in to the staff page.
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Add a staff member. The password is asked for at a terminal (not echoed), or read from
    /// the first line of standard input; never from the command line.
    Add {
        name: String,
        #[arg(long, default_value = "agent")]
        role: crate::store::staff::StaffRole,
    },
    /// Stop a staff member signing in; their sessions end at once.
    Disable { name: String },
    /// Let a disabled staff member sign in again.
    Enable { name: String },
    /// Set a staff member's password (asked for like `staff add`); their sessions end.
    Password { name: String },
    /// Make a staff member an `agent` or an `admin`.
    Role {
        name: String,
        role: crate::store::staff::StaffRole,
    },
    /// Every staff member: name, role, whether disabled, when added.
    List {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the audit chain and report the first broken link (an edited, deleted or reordered
    /// event, a truncated tail), checking it against every stored checkpoint and the one
    /// given. Exit status 0 only when intact.
    Verify {
        /// A checkpoint kept outside postroom (a file, or a saved checkpoint email).
        #[arg(long, requires = "public_key")]
        checkpoint: Option<PathBuf>,
        /// The public key that signed it: 64 hex digits, or a file holding them.
        #[arg(long, requires = "checkpoint")]
        public_key: Option<String>,
        /// One JSON object instead of a line for a person.
        #[arg(long)]
        json: bool,
    },
    /// Sign a checkpoint of the chain now (`[audit] signing_key_file`), store it, email it to
    /// `[audit] checkpoint_to` if set, and print it.
    Checkpoint,
    /// Write a new Ed25519 signing key to FILE (mode 0600; never replaces a file) and print
    /// its public key.
    Keygen { file: PathBuf },
    /// A forensic report: every request of a shared mailbox (or about an account) in a
    /// period — who asked, from where, with what evidence, what changed, what was replied —
    /// stamped with the audit chain's verification.
    Report {
        /// The shared mailbox whose requests are reported.
        #[arg(long, conflicts_with = "account", required_unless_present = "account")]
        mailbox: Option<String>,
        /// The account whose requests (about it, or asked by it) are reported.
        #[arg(long)]
        account: Option<String>,
        /// From this time: `2026-03-01`, an RFC 3339 time, or a duration ago (`30d`). Default: 30 days ago.
        #[arg(long)]
        from: Option<String>,
        /// Until this time (not included); same forms. Default: now.
        #[arg(long)]
        to: Option<String>,
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
}

/// How `audit report` prints.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ReportFormat {
    Text,
    Json,
    Csv,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Try a failed job again now; its request's held reply goes out once it is done.
    Retry { id: i64 },
}

#[derive(Debug, Subcommand)]
pub enum ContinuityCommand {
    /// One pass of the reminders now (as `postroom run` does every hour): each at-risk mailbox
    /// not reminded within `remind_every` is emailed through the outbox (sent by `postroom
    /// run`); mailboxes no longer at risk stop being reminded. Prints what it did as JSON.
    Remind,
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Import a CSV file (header organisation,mailbox,account,name,role[,status]); all or nothing.
    /// With --from-target, read the `[directory]` LDAP target instead: a row per member of
    /// each mailbox group, the group's `o` its organisation.
    Import {
        #[arg(
            required_unless_present = "from_target",
            conflicts_with = "from_target"
        )]
        file: Option<PathBuf>,
        #[arg(long)]
        from_target: bool,
    },
    /// Where postroom's directory and the `[directory]` target disagree: one JSON line per
    /// difference (membership only on one side, role, account state), then a summary. Exits
    /// 1 when there is any difference. Repairs nothing.
    Diff,
    /// Make the `[directory]` target agree with postroom where they differ, for the kinds
    /// named only (memberships, roles, statuses): one JSON line per difference repaired (or
    /// refused, or with no repair), then a summary. Each attempt is audited
    /// (`directory.repaired`). Exits 1 when one was not repaired.
    Repair {
        /// What to repair: memberships, roles, statuses (one or more).
        #[arg(required = true, num_args = 1..)]
        kinds: Vec<crate::provision::config::DriftKind>,
        /// Only the differences about this account.
        #[arg(long)]
        account: Option<String>,
        /// List what would be done; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write the directory as CSV to standard output.
    Export,
    /// Who was a member or owner at a time, rebuilt from the audit trail: one JSON line per
    /// membership (mailbox, account, role, from/until and the request that changed each).
    /// A date (`2026-03-03`) means anyone with access at any moment of that day (UTC); an
    /// RFC 3339 time or a duration ago (`24h`) means that instant.
    At {
        when: String,
        /// Only this shared mailbox.
        #[arg(long)]
        mailbox: Option<String>,
    },
}

/// Run one command to completion.
pub async fn run(cli: Cli) -> Result<()> {
    // A key is made before there is a config or a database to name it in.
    if let Command::Audit {
        command: Some(AuditCommand::Keygen { file }),
        ..
    } = &cli.command
    {
        let public = crate::audit::checkpoint::keygen(file)?;
        println!("{public}");
        eprintln!(
            "wrote a signing key to {} (keep it secret); its public key is above: keep that where \
             checkpoints are checked",
            file.display()
        );
        return Ok(());
    }
    // The eval brings its own database (and may bring its own config): nothing configured is
    // opened.
    if let Command::Eval { dir, json } = &cli.command {
        return eval(dir, &cli.config, *json).await;
    }
    let cfg = Config::load(&cli.config)?;
    let store = match &cli.command {
        Command::Migrate { dry_run: true } => Store::connect(&cfg.database).await?,
        // The daemon outlives a database outage, one at its start included: it waits.
        Command::Run => {
            // Before the store: its connections' threads are then made on the one CPU too.
            crate::cpu::place_threads(cfg.runtime.cpu).map_err(anyhow::Error::msg)?;
            crate::daemon::open_store(&cfg).await?
        }
        _ => Store::open(&cfg.database).await?,
    };
    if matches!(cli.command, Command::Check | Command::Run)
        && let Some(warning) = config::exposed_secret_warning(&cli.config)
    {
        println!("⚠ {warning}");
        tracing::warn!("{warning}");
    }
    let result = dispatch(cli.command, &cfg, &store).await;
    store.close().await;
    result
}

async fn dispatch(command: Command, cfg: &Config, store: &Store) -> Result<()> {
    match command {
        Command::Migrate { dry_run } => migrate(store, dry_run).await,
        Command::Directory { command } => match command {
            DirectoryCommand::Import {
                from_target: true, ..
            } => {
                let done = crate::provision::sync::import_from_target(store, &cfg.directory.target)
                    .await?;
                println!("{}", serde_json::to_string(&done)?);
                Ok(())
            }
            DirectoryCommand::Diff => {
                let differences =
                    crate::provision::sync::diff(store, &cfg.directory.target).await?;
                for d in &differences {
                    println!("{}", serde_json::to_string(d)?);
                }
                println!(
                    "{}",
                    serde_json::json!({ "differences": differences.len() })
                );
                if !differences.is_empty() {
                    std::process::exit(1);
                }
                Ok(())
            }
            DirectoryCommand::Repair {
                kinds,
                account,
                dry_run,
            } => {
                let pass = crate::provision::repair::repair(
                    store,
                    &cfg.directory.target,
                    &kinds,
                    account.as_deref(),
                    dry_run,
                    "cli",
                )
                .await?;
                for r in &pass.repairs {
                    println!("{}", serde_json::to_string(r)?);
                }
                println!(
                    "{}",
                    serde_json::json!({
                        "repaired": pass.done(),
                        "not_repaired": pass.failed(),
                        "left_as_they_are": pass.left,
                        "dry_run": dry_run,
                    })
                );
                if pass.failed() > 0 {
                    std::process::exit(1);
                }
                Ok(())
            }
            DirectoryCommand::Import {
                file: None,
                from_target: false,
            } => bail!("give a CSV file, or --from-target"),
            DirectoryCommand::Import {
                file: Some(file),
                from_target: false,
            } => {
                let f = std::fs::File::open(&file)
                    .with_context(|| format!("cannot open {}", file.display()))?;
                let summary = directory_csv::import(store, f, &file.display().to_string())
                    .await
                    .with_context(|| format!("{}: nothing was imported", file.display()))?;
                println!("{}", serde_json::to_string(&summary)?);
                Ok(())
            }
            DirectoryCommand::Export => {
                let stdout = std::io::stdout();
                directory_csv::export(store, stdout.lock()).await?;
                Ok(())
            }
            DirectoryCommand::At { when, mailbox } => {
                directory_at(store, cfg, &when, mailbox.as_deref()).await
            }
        },
        Command::Process { dry_run, files } => process(store, cfg, &files, dry_run).await,
        Command::Audit {
            command: None,
            since,
            limit,
        } => audit(store, since.as_deref(), limit).await,
        Command::Audit {
            command: Some(command),
            ..
        } => audit_command(store, cfg, command).await,
        Command::Run => crate::daemon::run(cfg, store).await,
        Command::Check => crate::check::run(cfg, store).await,
        Command::Web => crate::daemon::web_only(cfg, store).await,
        Command::Status { json } => {
            let report = crate::ops::status::report(store).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", crate::ops::status::render(&report));
            }
            Ok(())
        }
        Command::Backup { file } => {
            let bytes = crate::ops::backup::backup(store, &file).await?;
            println!("backed up to {} ({bytes} bytes)", file.display());
            Ok(())
        }
        Command::Replay { since, dry_run } => {
            if !dry_run {
                bail!("replay only runs as a dry run: add --dry-run");
            }
            let since_ms = parse_since(&since).context("--since")?;
            let stdout = std::io::stdout();
            let mut failed = None;
            let summary = crate::ops::replay::replay(store, cfg, since_ms, |change| {
                let mut out = stdout.lock();
                if let Err(e) = serde_json::to_writer(&mut out, change)
                    .map_err(std::io::Error::from)
                    .and_then(|_| writeln!(out))
                {
                    failed.get_or_insert(e);
                }
            })
            .await?;
            if let Some(e) = failed {
                return Err(e.into());
            }
            println!("{}", serde_json::to_string(&summary)?);
            Ok(())
        }
        Command::Jobs {
            command: None,
            status,
            limit,
        } => {
            let status = match status.as_deref() {
                None => None,
                Some("pending") => Some(crate::store::jobs::JobStatus::Pending),
                Some("done") => Some(crate::store::jobs::JobStatus::Done),
                Some("failed") => Some(crate::store::jobs::JobStatus::Failed),
                Some(other) => bail!("--status `{other}`: expected pending, done or failed"),
            };
            for j in crate::ops::jobs::list(store, status, limit).await? {
                println!("{}", crate::ops::jobs::describe(&j));
            }
            Ok(())
        }
        Command::Jobs {
            command: Some(JobsCommand::Retry { id }),
            ..
        } => {
            // The operator at the command line: the Unix user, as the trail can name them.
            let actor = format!(
                "cli:{}",
                crate::text::clean(&std::env::var("USER").unwrap_or_else(|_| "operator".into()))
            );
            if !crate::ops::jobs::retry(store, id, &actor).await? {
                bail!("job {id} is not a failed job: nothing to retry");
            }
            println!("{}", serde_json::json!({ "retried": id }));
            Ok(())
        }
        Command::Continuity { command: None } => {
            let mut conn = store.read().await?;
            for a in crate::continuity::assess(&mut conn, cfg).await? {
                println!("{}", serde_json::to_string(&a)?);
            }
            Ok(())
        }
        Command::Continuity {
            command: Some(ContinuityCommand::Remind),
        } => {
            let pass = crate::continuity::remind(store, cfg, cfg.continuity.reminders).await?;
            println!("{}", serde_json::to_string(&pass)?);
            Ok(())
        }
        Command::Retention { dry_run } => {
            let report = crate::ops::retention::run(store, cfg, dry_run).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        // Handled in `run`, before any configured database is opened.
        Command::Eval { .. } => bail!("eval opens no configured database"),
        Command::Staff { command } => match command {
            StaffCommand::Add { name, role } => {
                let password = read_password(&format!("Password for {name}: "))?;
                let member = crate::store::staff::add(store, &name, role, &password).await?;
                println!("added {} ({})", member.name, member.role);
                Ok(())
            }
            StaffCommand::Disable { name } => {
                crate::store::staff::set_disabled(store, &name, true).await?;
                println!("disabled {name}; their sessions have ended");
                Ok(())
            }
            StaffCommand::Enable { name } => {
                crate::store::staff::set_disabled(store, &name, false).await?;
                println!("enabled {name}");
                Ok(())
            }
            StaffCommand::Password { name } => {
                // Refuse an unknown name before asking for a password.
                if crate::store::staff::find(store, &name).await?.is_none() {
                    bail!("no staff member called `{name}`");
                }
                let password = read_password(&format!("New password for {name}: "))?;
                crate::store::staff::set_password(store, &name, &password).await?;
                println!("set a new password for {name}; their sessions have ended");
                Ok(())
            }
            StaffCommand::Role { name, role } => {
                crate::store::staff::set_role_by(store, "cli", &name, role).await?;
                println!("{name} is now {role}");
                Ok(())
            }
            StaffCommand::List { json } => {
                let stdout = std::io::stdout();
                let mut out = stdout.lock();
                for m in crate::store::staff::list(store).await? {
                    if json {
                        writeln!(out, "{}", serde_json::to_string(&m)?)?;
                    } else {
                        writeln!(
                            out,
                            "{:<24} {:<6} {:<9} added {}",
                            m.name,
                            m.role.as_str(),
                            if m.disabled { "disabled" } else { "active" },
                            crate::store::format_ms(m.created_at)
                        )?;
                    }
                }
                Ok(())
            }
        },
    }
}

async fn migrate(store: &Store, dry_run: bool) -> Result<()> {
    if dry_run {
        let pending = store.pending_migrations().await?;
        if pending.is_empty() {
            println!("no pending migrations");
        }
        for m in pending {
            println!("pending: {m}");
        }
        return Ok(());
    }
    store.migrate().await?;
    println!("database is up to date");
    Ok(())
}

async fn process(store: &Store, cfg: &Config, files: &[PathBuf], dry_run: bool) -> Result<()> {
    let mode = if dry_run { Mode::DryRun } else { Mode::Apply };
    let stdout = std::io::stdout();
    let mut failed = 0usize;
    for file in files {
        let name = file.display().to_string();
        // One line per request: a message that asks for several things prints several.
        let limit = cfg.max_message_bytes();
        let lines = match read_bounded(file, limit) {
            Err(e) => {
                failed += 1;
                vec![json!({ "file": name, "error": format!("cannot read: {e}") })]
            }
            Ok(Read::Whole(raw)) => {
                match pipeline::process_all(store, cfg, &raw, &format!("file:{name}"), mode).await {
                    Ok(all) => {
                        let mut lines = Vec::new();
                        for p in &all {
                            let mut v = serde_json::to_value(p)?;
                            if let Some(obj) = v.as_object_mut() {
                                obj.insert("file".into(), json!(name));
                            }
                            lines.push(v);
                        }
                        lines
                    }
                    Err(e) => {
                        failed += 1;
                        vec![json!({ "file": name, "error": e.to_string() })]
                    }
                }
            }
            // Over the limit: only the header is stored, held for a person — as the IMAP
            // watcher does with mail it does not download whole (issue 13).
            Ok(Read::HeaderOnly { header, size }) => {
                let source = format!("file:{name}");
                match pipeline::process_oversized(store, cfg, &header, size, limit, &source).await {
                    Ok(p) => {
                        let mut v = serde_json::to_value(&p)?;
                        if let Some(obj) = v.as_object_mut() {
                            obj.insert("file".into(), json!(name));
                        }
                        vec![v]
                    }
                    Err(e) => {
                        failed += 1;
                        vec![json!({ "file": name, "error": e.to_string() })]
                    }
                }
            }
        };
        let mut out = stdout.lock();
        for line in lines {
            writeln!(out, "{line}")?;
        }
        out.flush()?;
    }
    if failed > 0 {
        bail!("{failed} of {} files could not be processed", files.len());
    }
    Ok(())
}

/// `postroom eval DIR`: the report, then a failure when any message is wrong (so CI holds the
/// line on precision).
async fn eval(dir: &std::path::Path, config: &std::path::Path, as_json: bool) -> Result<()> {
    let report = crate::ops::eval::evaluate(dir, config).await?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", crate::ops::eval::render(&report));
    }
    if report.wrong > 0 {
        bail!(
            "{} of {} messages decided wrongly",
            report.wrong,
            report.messages
        );
    }
    Ok(())
}

/// A message file as `process` reads it.
enum Read {
    Whole(Vec<u8>),
    /// Over `max_message_bytes`: its header only (never the whole file in memory).
    HeaderOnly {
        header: Vec<u8>,
        size: u64,
    },
}

/// The most of an oversized file read to find its header.
const HEADER_READ: u64 = 256 * 1024;

fn read_bounded(file: &std::path::Path, limit: u64) -> std::io::Result<Read> {
    use std::io::Read as _;
    let size = std::fs::metadata(file)?.len();
    if size <= limit {
        return Ok(Read::Whole(std::fs::read(file)?));
    }
    let mut head = Vec::new();
    std::fs::File::open(file)?
        .take(HEADER_READ)
        .read_to_end(&mut head)?;
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .or_else(|| head.windows(2).position(|w| w == b"\n\n").map(|i| i + 2))
        .unwrap_or(head.len());
    head.truncate(end);
    Ok(Read::HeaderOnly { header: head, size })
}

async fn audit(store: &Store, since: Option<&str>, limit: i64) -> Result<()> {
    let since_ms = match since {
        None => 0,
        Some(s) => parse_since(s).context("--since")?,
    };
    let mut conn = store.read().await?;
    let events = journal::list_audit(&mut conn, since_ms, limit).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for e in events {
        writeln!(out, "{}", serde_json::to_string(&e)?)?;
    }
    Ok(())
}

async fn directory_at(
    store: &Store,
    cfg: &Config,
    when: &str,
    mailbox: Option<&str>,
) -> Result<()> {
    let (start, end) = match chrono::NaiveDate::parse_from_str(when, "%Y-%m-%d") {
        Ok(day) => {
            let start = day
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc().timestamp_millis())
                .with_context(|| format!("`{when}` is not a day"))?;
            (start, start + 86_400_000 - 1)
        }
        Err(_) => {
            let t = parse_since(when).map_err(|_| {
                anyhow::anyhow!(
                    "`{when}`: expected a date (2026-03-03), an RFC 3339 time, or a duration ago like 24h"
                )
            })?;
            (t, t)
        }
    };
    let mailbox = mailbox.map(|m| m.trim().to_ascii_lowercase());
    let answer = {
        let mut conn = store.read().await?;
        crate::audit::as_of::memberships(&mut conn, start, end, mailbox.as_deref()).await?
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for m in &answer.memberships {
        writeln!(out, "{}", serde_json::to_string(m)?)?;
    }
    // The answer is only as good as the trail it was rebuilt from: say how that stands.
    let check = crate::audit::verify(store, cfg, None).await?;
    eprintln!("{}", check.message);
    if answer.imports_after > 0 {
        eprintln!(
            "note: {} directory import(s) since then changed the directory without itemising each membership in the \
             audit trail; memberships they changed may be shown as they are now",
            answer.imports_after
        );
    }
    Ok(())
}

async fn audit_command(store: &Store, cfg: &Config, command: AuditCommand) -> Result<()> {
    match command {
        AuditCommand::Verify {
            checkpoint,
            public_key,
            json,
        } => {
            let given = checkpoint.as_deref().zip(public_key.as_deref());
            let report = crate::audit::verify(store, cfg, given).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                println!("{}", report.message);
            }
            if !report.intact {
                bail!("the audit trail does not verify");
            }
            Ok(())
        }
        AuditCommand::Report {
            mailbox,
            account,
            from,
            to,
            format,
        } => {
            let from_ms = match from.as_deref() {
                Some(f) => parse_since(f).context("--from")?,
                None => crate::store::now_ms() - 30 * 86_400_000,
            };
            let until_ms = match to.as_deref() {
                Some(t) => parse_since(t).context("--to")?,
                None => crate::store::now_ms() + 1,
            };
            if until_ms <= from_ms {
                bail!("--to must be after --from");
            }
            let (mailbox, account) = (
                mailbox.map(|m| m.trim().to_ascii_lowercase()),
                account.map(|a| a.trim().to_ascii_lowercase()),
            );
            let who = match (&mailbox, &account) {
                (Some(m), _) => {
                    let mut conn = store.read().await?;
                    if crate::store::directory::find_mailbox(&mut conn, m)
                        .await?
                        .is_none()
                    {
                        bail!("{m} is not a registered shared mailbox");
                    }
                    crate::store::report::Subject::Mailbox(m)
                }
                (None, Some(a)) => crate::store::report::Subject::Account(a),
                (None, None) => bail!("give --mailbox or --account"),
            };
            let report = crate::audit::report::make(store, cfg, who, from_ms, until_ms).await?;
            match format {
                ReportFormat::Text => print!("{}", crate::audit::report::to_text(&report)),
                ReportFormat::Json => println!("{}", serde_json::to_string(&report)?),
                ReportFormat::Csv => print!("{}", crate::audit::report::to_csv(&report)?),
            }
            Ok(())
        }
        AuditCommand::Checkpoint => {
            let Some(path) = &cfg.audit.signing_key_file else {
                bail!(
                    "no [audit] signing_key_file in the config: make a key with `postroom audit keygen FILE`"
                );
            };
            let key = crate::audit::checkpoint::load_key(path)?;
            let cp = crate::audit::checkpoint::make(store, cfg, &key).await?;
            tracing::info!(events = cp.events, head = %cp.head, "audit checkpoint signed");
            print!("{}", cp.render());
            Ok(())
        }
        // Handled in `run`, before the config is read.
        AuditCommand::Keygen { .. } => Ok(()),
    }
}

/// A secret from the terminal without echo, or the first line of standard input when it is
/// not a terminal (scripts: `printf '%s\n' "$PW" | postroom staff add …`).
fn read_password(prompt: &str) -> Result<String> {
    use std::io::IsTerminal;
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(prompt)?;
        let again = rpassword::prompt_password("Again: ")?;
        if first != again {
            bail!("the two passwords differ; nothing was changed");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    };
    Ok(password)
}

/// `2026-11-26`, `2026-11-26T10:00:00Z`, or a duration ago (`24h`, `7d`).
pub fn parse_since(s: &str) -> Result<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        && let Some(t) = d.and_hms_opt(0, 0, 0)
    {
        return Ok(t.and_utc().timestamp_millis());
    }
    if let Ok(d) = config::parse_duration(s) {
        let ago = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        return Ok(crate::store::now_ms().saturating_sub(ago));
    }
    bail!("`{s}`: expected a date (2026-11-26), an RFC 3339 time, or a duration like 24h")
}
