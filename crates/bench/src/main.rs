//! `sessions-bench`: a load generator for the sessions service that speaks Seneca TCP
//! itself, shaped like a Node v8 client (no Node needed), so the client is not the
//! bottleneck. See `--help`.
//!
//! Exit status: 0 when the run completed (errors in replies are reported, not fatal),
//! 1 when setup failed (cannot connect, pool cannot be opened), 2 on bad arguments.

mod args;
mod conn;
mod cpu;
mod report;
mod run;
mod scenario;
mod setup;
mod stats;
mod wire;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Args, Format, Limit};
use crate::scenario::Cmd;

fn main() -> ExitCode {
    let args = Args::parse();
    let mix = match args.mix() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("sessions-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads as usize)
            .enable_all()
            .build()
    };
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sessions-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match runtime.block_on(run::run(&args, mix.clone())) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sessions-bench: setup failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let summary = report::summarize(&outcome.stats, outcome.elapsed);
    let mut json = summary.to_json(run::config_json(&args, &mix, outcome.pool_sessions));
    if let Some((cpu, wall)) = outcome.client_cpu {
        json["client_cpu_s"] = round3(cpu.as_secs_f64()).into();
        json["client_wall_s"] = round3(wall.as_secs_f64()).into();
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&json).unwrap_or_default();
        if let Err(e) = std::fs::write(path, text + "\n") {
            eprintln!("sessions-bench: cannot write {}: {e}", path.display());
        }
    }
    match args.format {
        Format::Json => println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        ),
        Format::Text => {
            print!("{}", summary.to_text(&title(&args, &mix)));
            if let Some((cpu, wall)) = outcome.client_cpu {
                println!(
                    "bench cpu {:.2}s over {:.2}s ({:.0}% of one core)",
                    cpu.as_secs_f64(),
                    wall.as_secs_f64(),
                    100.0 * cpu.as_secs_f64() / wall.as_secs_f64().max(1e-9)
                );
            }
        }
    }
    if summary.total.errors.total() > 0 && args.format == Format::Json {
        eprintln!(
            "sessions-bench: {} requests failed (see errors_by_code)",
            summary.total.errors.total()
        );
    }
    ExitCode::SUCCESS
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn title(args: &Args, mix: &scenario::Mix) -> String {
    let cmds: Vec<String> = Cmd::ALL
        .into_iter()
        .filter(|&c| mix.uses(c))
        .map(|c| {
            if mix.total() == mix.weight(c) {
                c.name().to_owned()
            } else {
                format!("{}={}", c.name(), mix.weight(c))
            }
        })
        .collect();
    let limit = match args.limit() {
        Limit::Duration(d) => format!("{:.1}s", d.as_secs_f64()),
        Limit::Requests(n) => format!("{n} requests"),
    };
    format!(
        "sessions-bench: {} | {} connections x {} in flight over {} address(es) | {limit}, warm-up {:.1}s, {} thread(s)",
        cmds.join(","),
        args.connections,
        args.inflight,
        args.addrs.len(),
        args.warmup.as_secs_f64(),
        args.threads
    )
}
