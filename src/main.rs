//! The `sessions` binary: the command line ([`sessions::cli`]), then configuration,
//! logging, start, run until SIGTERM/SIGINT. `sessions check` runs the Redis
//! consistency check instead ([`sessions_check`], a crate of its own).

use std::process::ExitCode;

use sessions::cli::{self, Action};
use sessions::config::Config;

/// mimalloc instead of the system allocator: every request allocates and frees its
/// line, act, reply and futures on whichever worker thread runs it, and glibc's malloc
/// spent 14 % of the service's CPU on that (arena locks included); see
/// docs/benchmarks.md for the before/after.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match cli::parse(std::env::args_os()) {
        Action::Serve => serve(),
        Action::Check(args) => sessions_check::main(&args),
        Action::Exit(code) => ExitCode::from(code),
    }
}

/// Reads the configuration, sets up logging and runs the service until a signal.
fn serve() -> ExitCode {
    let cfg = match Config::from_env() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("sessions: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = sessions::telemetry::init(cfg.log_format, Some(&cfg.log_filter)) {
        eprintln!("sessions: {e}");
        return ExitCode::from(2);
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cfg.worker_threads {
        builder.worker_threads(n);
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sessions: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cfg))
}

async fn run(cfg: Config) -> ExitCode {
    let app = match sessions::app::start(cfg).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    wait_for_signal().await;
    tracing::info!("signal received: not ready, draining connections");
    app.shutdown();
    if app.wait().await {
        tracing::info!("stopped");
    } else {
        tracing::warn!("stopped with connections still open after the grace period");
    }
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
