//! postroom's entry point: read the command line, set up logging and TLS, run the command.

use clap::Parser;
use postroom::cli::{self, Cli, LogFormat};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    // rustls panics at run time when two crypto providers are compiled in and none is chosen.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let runtime = match runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("postroom: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("postroom: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One worker thread unless `TOKIO_WORKER_THREADS` asks for more. postroom waits (on the
/// mail servers, on its one database writer) far more than it computes, and what it computes
/// is microseconds per message; on a small machine shared with the mail servers a second
/// worker cost more in cross-thread wake-ups than it gave (README, Performance). Blocking work
/// (password hashing, the OAuth token fetch) runs on tokio's blocking pool either way.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    let workers = match std::env::var("TOKIO_WORKER_THREADS") {
        Err(_) => 1,
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("TOKIO_WORKER_THREADS={v:?} is not a positive number"))?,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the async runtime: {e}"))
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("POSTROOM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: a log written to a file or the journal stays plain text
    // that `grep key=value` finds.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
