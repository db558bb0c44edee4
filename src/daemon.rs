//! `postroom run`: the IMAP watcher, the LMTP listener (`[lmtp]`) and the outbox worker side
//! by side until SIGTERM/SIGINT.
//!
//! The loops share one cancellation token. On a signal the watcher finishes the message in
//! hand (its transaction and move), the LMTP sessions answer the message in hand and tell the
//! MTA to come back later (421), the outbox finishes the reply in hand, and all return; a
//! second signal exits at once.

use crate::config::Config;
use crate::imap;
use crate::status::Status;
use crate::store::Store;
use crate::web;
use anyhow::{Context, Result, bail};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long the loops get to finish after a signal before the process exits anyway.
const GRACE: Duration = Duration::from_secs(4);

/// Run until a signal. The config must have `[imap]` or `[lmtp]`, and `[smtp]`; the store is
/// migrated.
pub async fn run(cfg: &Config, store: &Store) -> Result<()> {
    let missing: Vec<&str> = [
        ("[imap]", cfg.imap.is_empty() && cfg.lmtp.is_none()),
        ("[smtp]", cfg.smtp.is_none()),
    ]
    .into_iter()
    .filter_map(|(section, missing)| missing.then_some(section))
    .collect();
    if !missing.is_empty() {
        bail!(
            "`postroom run` needs the {} section{} in the config: the inbox to watch (or [lmtp], the MTA \
             delivering to postroom) and the server that sends replies (config/postroom.example.toml documents \
             every key)",
            missing.join(" and "),
            if missing.len() > 1 { "s" } else { "" }
        );
    }
    let Some(smtp_cfg) = &cfg.smtp else {
        bail!("`postroom run` needs [imap] and [smtp]");
    };
    // A config a watcher could never use (unreadable ca_file) stops here, not in a loop.
    for imap_cfg in &cfg.imap {
        imap::connect::Tls::from_config(imap_cfg).with_context(|| imap_cfg.key.clone())?;
    }
    if let Some(warning) = crate::trust::startup_warning(&cfg.trust) {
        // Loud on purpose: to the log and straight to the terminal.
        tracing::warn!("{warning}");
        eprintln!("postroom: WARNING: {warning}");
    }

    let shutdown = CancellationToken::new();
    let wake = Arc::new(Notify::new());
    let shared = Arc::new(cfg.clone());
    let status = Status::new();
    status.set_outbox_wake(wake.clone());
    // The token sources are built by the watchers and the outbox worker from the config's
    // `auth` sections, their failures counted on this status (`/metrics`, `/healthz`).

    // The staff page runs beside the loops; a port that cannot be had stops the start, with
    // the key to change.
    let listener = bind_web(cfg).await?;
    // So is an LMTP address that cannot be had (before anything starts).
    let lmtp_listener = match &cfg.lmtp {
        Some(l) => Some(crate::lmtp::listen::Listener::bind(l).await?),
        None => None,
    };
    // The test hook (`imap::test_hook`) counts the commits of the watcher and LMTP together.
    let hook = Arc::new(imap::test_hook::AbortAfterCommits::from_env());
    let housekeeping = tokio::spawn(housekeeping(
        store.clone(),
        shared.clone(),
        status.clone(),
        shutdown.clone(),
    ));
    let web_task = {
        let (store, cfg, shutdown, status) = (
            store.clone(),
            shared.clone(),
            shutdown.clone(),
            status.clone(),
        );
        tokio::spawn(async move {
            if let Err(e) = web::serve(store, cfg, listener, shutdown, status).await {
                tracing::error!("staff page stopped: {e:#}");
            }
        })
    };

    // Provisioning (issue 15): with a directory target, a worker pushes each decided change
    // there; intake wakes it as it wakes the reply sender, and a done job wakes the sender.
    let intake_wake = match crate::provision::Connector::build(&cfg.directory.target)
        .map_err(anyhow::Error::msg)
        .context("[directory]")?
    {
        None => wake.clone(),
        Some(connector) => {
            let jobs_wake = Arc::new(Notify::new());
            let kind = crate::desk::provision_job::Provision::new(
                connector,
                shared.clone(),
                Some(wake.clone()),
            );
            tokio::spawn(crate::jobs::worker::run(
                store.clone(),
                kind,
                jobs_wake.clone(),
                shutdown.clone(),
            ));
            fan_out(wake.clone(), jobs_wake, shutdown.clone())
        }
    };
    if let Some(every) = cfg.directory.reconcile_every {
        tokio::spawn(reconcile(
            store.clone(),
            shared.clone(),
            status.clone(),
            every,
            shutdown.clone(),
        ));
    }
    let mut watcher = if cfg.imap.is_empty() {
        // LMTP only: no inbox to watch.
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            Ok(())
        })
    } else {
        tokio::spawn(imap::watch::run(
            store.clone(),
            shared.clone(),
            intake_wake.clone(),
            shutdown.clone(),
            status.clone(),
            hook.clone(),
        ))
    };
    // LMTP (issue 18) beside the watcher: the same pipeline, the same wake-up; a message that
    // arrives both ways is applied once (the pipeline's Message-ID / hash check).
    let mut lmtp_tasks = Vec::new();
    let mut lmtp_on = None;
    if let (Some(listener), Some(policy)) = (lmtp_listener, crate::lmtp::policy(cfg)) {
        let appender = imap::append::Appender::start(shared.clone(), &status, shutdown.clone())
            .context("[imap] for filing LMTP deliveries")?
            .map(|(appender, task)| {
                lmtp_tasks.push(task);
                appender
            });
        let delivery = crate::lmtp::deliver::Delivery::new(
            store.clone(),
            shared.clone(),
            intake_wake,
            status.clone(),
            hook.clone(),
            appender,
        );
        lmtp_on = Some(listener.describe());
        lmtp_tasks.push(tokio::spawn(crate::lmtp::listen::serve(
            listener,
            Arc::new(policy),
            Arc::new(delivery),
            shutdown.clone(),
        )));
    }
    let mut outbox = tokio::spawn(crate::jobs::reply::run_outbox_counted(
        store.clone(),
        shared,
        wake,
        shutdown.clone(),
        Some(status.clone()),
    ));
    let inboxes: Vec<String> = cfg
        .imap
        .iter()
        .map(|i| format!("{}@{}:{}/{}", i.username, i.host, i.port, i.folder))
        .collect();
    if let Some(lmtp) = &lmtp_on {
        tracing::info!(
            listen = %lmtp,
            recipients = %cfg.lmtp.as_ref().map(|l| l.recipients.join(", ")).unwrap_or_default(),
            "LMTP listening"
        );
    }
    let inboxes = if inboxes.is_empty() {
        "off".to_owned()
    } else {
        inboxes.join(", ")
    };
    tracing::info!(
        imap = %inboxes,
        lmtp = %lmtp_on.as_deref().unwrap_or("off"),
        smtp = %format!("{}:{}", smtp_cfg.host, smtp_cfg.port),
        instance = crate::imap::lease::holder_id(),
        "postroom running"
    );

    let mut watcher_done = None;
    let mut outbox_done = false;
    let mut unexpected = None;
    tokio::select! {
        signal = wait_for_signal() => {
            tracing::info!("{signal}: stopping (finishing the message in hand)");
            // A second signal means "now".
            tokio::spawn(async {
                let again = wait_for_signal().await;
                eprintln!("postroom: {again} again: exiting at once");
                std::process::exit(130);
            });
        }
        r = &mut watcher => watcher_done = Some(r),
        r = &mut outbox => {
            outbox_done = true;
            // It returns only on shutdown: anything else is a bug (a panic) worth a failure.
            unexpected = Some(match r {
                Ok(()) => "the outbox worker stopped".to_owned(),
                Err(e) => format!("the outbox worker crashed: {e}"),
            });
        }
    }
    shutdown.cancel();

    let stopped = tokio::time::timeout(GRACE, async {
        let w = match watcher_done.take() {
            Some(r) => r,
            None => (&mut watcher).await,
        };
        if !outbox_done {
            let _ = (&mut outbox).await;
        }
        for task in &mut lmtp_tasks {
            let _ = task.await;
        }
        w
    })
    .await;
    match stopped {
        Err(_) => {
            watcher.abort();
            outbox.abort();
            for task in &lmtp_tasks {
                task.abort();
            }
            web_task.abort();
            housekeeping.abort();
            tracing::warn!(
                "did not stop within {GRACE:?}; exiting anyway (an unmoved message is moved on the next start)"
            );
            Ok(())
        }
        Ok(Ok(Ok(()))) => match unexpected {
            Some(why) => bail!("{why}"),
            None => {
                tracing::info!("stopped");
                Ok(())
            }
        },
        Ok(Ok(Err(e))) => Err(anyhow::Error::new(e).context("IMAP watcher")),
        Ok(Err(join)) => bail!("IMAP watcher crashed: {join}"),
    }
}

/// The first reconcile after start, then one every `every` (`[directory] reconcile_every`).
const RECONCILE_FIRST: Duration = Duration::from_secs(5);

/// Compare postroom's directory with the target's now and then, and report what differs on
/// `/metrics` and the staff page and in the log. It repairs the kinds of difference
/// `reconcile_repair` names, and only those (`provision::repair`); the rest people decide.
async fn reconcile(
    store: Store,
    cfg: Arc<Config>,
    status: Status,
    every: Duration,
    shutdown: CancellationToken,
) {
    let mut wait = RECONCILE_FIRST;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = every;
        let kinds = &cfg.directory.reconcile_repair;
        if !kinds.is_empty() {
            match crate::provision::repair::repair(
                &store,
                &cfg.directory.target,
                kinds,
                None,
                false,
                "reconcile",
            )
            .await
            {
                Ok(pass) if pass.repairs.is_empty() => {}
                Ok(pass) => tracing::warn!(
                    repaired = pass.done(),
                    not_repaired = pass.failed(),
                    "the reconcile made the directory target agree with postroom (audited as directory.repaired)"
                ),
                Err(e) => tracing::warn!("repairing the directory target failed: {e:#}"),
            }
        }
        match crate::provision::sync::diff(&store, &cfg.directory.target).await {
            Ok(differences) => {
                status.directory_drift(differences.len());
                if differences.is_empty() {
                    tracing::info!("the directory target agrees with postroom's directory");
                } else {
                    tracing::warn!(
                        differences = differences.len(),
                        "the directory target differs from postroom's directory (`postroom directory diff` lists where)"
                    );
                }
            }
            Err(e) => tracing::warn!("reconcile with the directory target failed: {e:#}"),
        }
    }
}

/// One wake-up that wakes two workers (the reply sender and the provisioning worker): the
/// watcher knows one.
fn fan_out(a: Arc<Notify>, b: Arc<Notify>, shutdown: CancellationToken) -> Arc<Notify> {
    let both = Arc::new(Notify::new());
    let heard = both.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = heard.notified() => {
                    a.notify_one();
                    b.notify_one();
                }
            }
        }
    });
    both
}

/// How often an instance writes its state for `postroom status`, and applies `[retention]`.
const HEALTH_EVERY: Duration = Duration::from_secs(10);
const RETENTION_EVERY: Duration = Duration::from_secs(24 * 3600);
/// The first continuity pass after start, then how often one runs (`src/continuity.rs`).
const CONTINUITY_FIRST: Duration = Duration::from_secs(300);
const CONTINUITY_EVERY: Duration = Duration::from_secs(3600);
/// How often waiting requests are checked against their targets (`src/deadlines.rs`).
const TARGETS_EVERY: Duration = Duration::from_secs(60);

/// Report this instance's state to the database every few seconds, and apply the retention
/// rules once a day. Failures are logged and tried again next time: never fatal.
async fn housekeeping(store: Store, cfg: Arc<Config>, status: Status, shutdown: CancellationToken) {
    let instance = format!(
        "{}:{}",
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "host".into()),
        std::process::id()
    );
    let mut next_retention = tokio::time::Instant::now() + Duration::from_secs(60);
    // A checkpoint at start (when the chain grew since the last), then every
    // `[audit] checkpoint_every`.
    let mut next_checkpoint = tokio::time::Instant::now();
    // Continuity reminders: a first pass a few minutes after start (not at once: a restart
    // loop must not become a mail loop; the per-mailbox period guards that too), then hourly.
    let mut next_continuity = tokio::time::Instant::now() + CONTINUITY_FIRST;
    let mut next_targets = tokio::time::Instant::now() + TARGETS_EVERY;
    loop {
        match store.read().await {
            Ok(mut conn) => {
                if let Err(e) =
                    crate::store::health::report(&mut conn, &instance, &status.snapshot()).await
                {
                    tracing::warn!("could not record this instance's health: {e}");
                }
            }
            Err(e) => tracing::warn!("could not record this instance's health: {e}"),
        }
        if tokio::time::Instant::now() >= next_retention {
            next_retention += RETENTION_EVERY;
            match crate::ops::retention::run(&store, &cfg, false).await {
                Ok(r) if r.raw_messages_dropped > 0 || !r.accounts_deleted.is_empty() => {
                    tracing::info!(
                        raw_messages_dropped = r.raw_messages_dropped,
                        accounts_deleted = r.accounts_deleted.len(),
                        "retention applied"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("retention failed (tried again tomorrow): {e}"),
            }
        }
        if cfg.audit.signing_key_file.is_some() && tokio::time::Instant::now() >= next_checkpoint {
            next_checkpoint = tokio::time::Instant::now() + cfg.audit.checkpoint_every;
            match crate::audit::checkpoint::scheduled(&store, &cfg).await {
                Ok(Some(cp)) => tracing::info!(
                    events = cp.events,
                    head = %cp.head,
                    at = %cp.at,
                    key = %cp.key,
                    signature = %cp.signature,
                    emailed_to = cfg.audit.checkpoint_to.as_deref().unwrap_or("(nobody)"),
                    "audit checkpoint signed"
                ),
                Ok(None) => {}
                Err(e) => tracing::warn!("audit checkpoint failed (tried again next time): {e:#}"),
            }
        }
        if tokio::time::Instant::now() >= next_continuity {
            next_continuity = tokio::time::Instant::now() + CONTINUITY_EVERY;
            match crate::continuity::remind(&store, &cfg, cfg.continuity.reminders).await {
                Ok(p) if !p.reminded.is_empty() || !p.fixed.is_empty() || !p.capped.is_empty() => {
                    tracing::info!(
                        at_risk = p.at_risk,
                        reminded = p.reminded.len(),
                        fixed = p.fixed.len(),
                        capped = p.capped.len(),
                        "continuity reminders"
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("continuity reminders failed (tried again next hour): {e}")
                }
            }
        }
        if cfg.queue.notify.is_some() && tokio::time::Instant::now() >= next_targets {
            next_targets = tokio::time::Instant::now() + TARGETS_EVERY;
            match crate::deadlines::notify_overdue(&store, &cfg).await {
                Ok(refs) if !refs.is_empty() => {
                    status.wake_outbox();
                    tracing::info!(requests = %refs.join(" "), "over target: staff notified");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!("target notices failed (tried again next minute): {e}"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(HEALTH_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Bind the staff page's address (`[web] listen`).
pub async fn bind_web(cfg: &Config) -> Result<tokio::net::TcpListener> {
    let listener = tokio::net::TcpListener::bind(cfg.web.listen)
        .await
        .with_context(|| format!("[web] listen = \"{}\": cannot listen there", cfg.web.listen))?;
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(address = %local, "staff page at http://{local}/");
    Ok(listener)
}

/// `postroom web`: the staff page alone (no IMAP watcher, no outbox worker), until a signal.
pub async fn web_only(cfg: &Config, store: &Store) -> Result<()> {
    let listener = bind_web(cfg).await?;
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(web::serve(
        store.clone(),
        Arc::new(cfg.clone()),
        listener,
        shutdown.clone(),
        Status::new(),
    ));
    let signal = wait_for_signal().await;
    tracing::info!("{signal}: stopping the staff page");
    shutdown.cancel();
    match tokio::time::timeout(GRACE, server).await {
        Ok(Ok(r)) => r,
        Ok(Err(join)) => bail!("staff page crashed: {join}"),
        Err(_) => Ok(()),
    }
}

/// Connect and migrate for `run`, waiting while the database cannot be reached (one line per
/// attempt, backoff from 1 s to 30 s) so that a daemon started during an outage, or before
/// the database at boot, comes up with it instead of exiting. Any other error (a bad URL, a
/// failed migration) ends the start.
pub async fn open_store(cfg: &Config) -> Result<Store> {
    let mut failures: u32 = 0;
    loop {
        match Store::open(&cfg.database).await {
            Ok(store) => {
                if failures > 0 {
                    tracing::info!("database reachable again");
                }
                return Ok(store);
            }
            Err(e) if e.is_unavailable() => {
                failures = failures.saturating_add(1);
                let wait = Duration::from_secs(1 << failures.saturating_sub(1).min(5))
                    .min(Duration::from_secs(30));
                tracing::warn!(
                    attempt = failures,
                    "database unavailable at start: {e}; trying again in {}s",
                    wait.as_secs()
                );
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    signal = wait_for_signal() => bail!("{signal} while waiting for the database"),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Wait for SIGTERM (service managers) or SIGINT (Ctrl-C); returns its name.
async fn wait_for_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops postroom");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
