//! One benchmark run from start to end: setup of the session pool, connecting,
//! warm-up, the measured phase, draining, progress lines, and merging what every
//! connection measured.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::args::{Args, Limit};
use crate::conn::{self, ConnSpec, Shared};
use crate::scenario::{pool_specs, Mix, Rng, Scenario};
use crate::setup::{open_pool, SetupError};
use crate::stats::{ConnStats, Progress};

/// What a finished run hands to the report.
pub struct Outcome {
    pub stats: ConnStats,
    /// From the start of measuring to the last measured reply.
    pub elapsed: Duration,
    pub pool_sessions: usize,
    /// CPU the bench used from the first request to the end, with that wall time.
    pub client_cpu: Option<(Duration, Duration)>,
}

pub async fn run(args: &Args, mix: Mix) -> Result<Outcome, SetupError> {
    let seed = seed();
    let mut rng = Rng::new(seed);
    let run_tag = run_tag(&mut rng);
    let addrs = &args.addrs;
    if addrs.is_empty() {
        return Err(SetupError::Config("no --addr given".into()));
    }

    // Setup: each address opens the sessions that its connections will use.
    let needs_pool = Scenario::needs_pool(&mix, args.distinct_users);
    let pool_size = if needs_pool { args.pool_sessions } else { 0 };
    if needs_pool && (pool_size as usize) < addrs.len() {
        return Err(SetupError::Config(format!(
            "this scenario needs at least one pooled session per address (--pool-sessions >= {})",
            addrs.len()
        )));
    }
    let specs = pool_specs(&run_tag, pool_size, args.pool_users);
    let t0 = Instant::now();
    let mut pools = Vec::with_capacity(addrs.len());
    for (a, &addr) in addrs.iter().enumerate() {
        let mine: Vec<_> = specs.iter().skip(a).step_by(addrs.len()).collect();
        pools.push(open_pool(addr, &mine, args.timeout, rng.next_u64()).await?);
    }
    if pool_size > 0 && !args.quiet {
        eprintln!(
            "setup: opened {pool_size} sessions for {} users in {:.0} ms",
            args.pool_users.min(pool_size),
            t0.elapsed().as_secs_f64() * 1000.0
        );
    }
    let mut scenario = Scenario::new(
        mix,
        pools,
        &run_tag,
        args.pool_users,
        args.data_size,
        args.list_take,
        args.distinct_users,
    );
    if args.list_active {
        scenario.filter_active();
    }

    // Every connection is up before the clock starts.
    let mut streams = Vec::with_capacity(args.connections as usize);
    for i in 0..args.connections as usize {
        let addr = addrs[i % addrs.len()];
        let s = conn::connect(addr)
            .await
            .map_err(|source| SetupError::Connect { addr, source })?;
        streams.push((i, addr, s));
    }

    let cpu_before = crate::cpu::process_cpu();
    let start = Instant::now();
    let measure_start = start + args.warmup;
    let (send_end, tickets) = match args.limit() {
        Limit::Duration(d) => (Some(measure_start + d), None),
        Limit::Requests(n) => (None, Some(AtomicU64::new(n))),
    };
    let shared = Arc::new(Shared {
        scenario,
        inflight: args.inflight as usize,
        timeout: args.timeout,
        measure_start,
        send_end,
        tickets,
        stop: AtomicBool::new(false),
        show: args.show,
        progress: Progress::default(),
    });

    let progress = (!args.quiet).then(|| tokio::spawn(report_progress(shared.clone(), start)));
    let on_ctrl_c = tokio::spawn(stop_on_ctrl_c(shared.clone()));
    let tasks: Vec<_> = streams
        .into_iter()
        .map(|(index, addr, stream)| {
            let spec = ConnSpec {
                index,
                addr_index: index % addrs.len(),
                addr,
                seed: rng.next_u64(),
            };
            tokio::spawn(conn::run(shared.clone(), spec, stream))
        })
        .collect();
    let mut stats = ConnStats::default();
    for t in tasks {
        match t.await {
            Ok(s) => stats.merge(&s),
            // A connection task cannot panic by design; say so loudly if it does.
            Err(e) => eprintln!("a connection task failed: {e}"),
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    on_ctrl_c.abort();
    let client_cpu = cpu_before
        .zip(crate::cpu::process_cpu())
        .map(|(b, a)| (a.saturating_sub(b), start.elapsed()));
    let end = stats
        .last_reply
        .filter(|&t| t > measure_start)
        .unwrap_or_else(Instant::now);
    Ok(Outcome {
        elapsed: end.saturating_duration_since(measure_start),
        stats,
        pool_sessions: pool_size as usize,
        client_cpu,
    })
}

/// Prints one line a second on stderr: phase, rate over the last second, totals.
async fn report_progress(shared: Arc<Shared>, start: Instant) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (mut last_n, mut last_t) = (0u64, Instant::now());
    loop {
        tick.tick().await;
        let now = Instant::now();
        let (n, errors) = shared.progress.snapshot();
        let rate = (n - last_n) as f64 / now.duration_since(last_t).as_secs_f64().max(1e-9);
        let phase = if now < shared.measure_start {
            "warmup"
        } else if shared.send_end.is_some_and(|e| now >= e)
            || shared.stop.load(Ordering::Relaxed)
            || shared
                .tickets
                .as_ref()
                .is_some_and(|t| t.load(Ordering::Relaxed) == 0)
        {
            "drain"
        } else {
            "run"
        };
        eprintln!(
            "[{:>6.1}s] {phase:<6} {rate:>10.0} req/s  done {n}  errors {errors}",
            now.duration_since(start).as_secs_f64()
        );
        (last_n, last_t) = (n, now);
    }
}

async fn stop_on_ctrl_c(shared: Arc<Shared>) {
    if tokio::signal::ctrl_c().await.is_ok() {
        eprintln!("interrupted: finishing requests in flight");
        shared.stop.store(true, Ordering::Relaxed);
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    t ^ (u64::from(std::process::id()) << 32)
}

/// 8 base36 characters naming this run's users, so runs do not share users.
fn run_tag(rng: &mut Rng) -> String {
    let mut b = Vec::with_capacity(12);
    crate::wire::push_base36(&mut b, rng.next_u64());
    String::from_utf8_lossy(&b[4..]).into_owned()
}

/// The run's settings, for the JSON report.
pub fn config_json(args: &Args, mix: &Mix, pool_sessions: usize) -> serde_json::Value {
    let addrs: Vec<String> = args.addrs.iter().map(SocketAddr::to_string).collect();
    let mut weights = serde_json::Map::new();
    for c in crate::scenario::Cmd::ALL {
        if mix.uses(c) {
            weights.insert(c.name().to_owned(), mix.weight(c).into());
        }
    }
    serde_json::json!({
        "addrs": addrs,
        "connections": args.connections,
        "inflight_per_connection": args.inflight,
        "mix": weights,
        "duration_s": match args.limit() { Limit::Duration(d) => Some(d.as_secs_f64()), _ => None },
        "requests": match args.limit() { Limit::Requests(n) => Some(n), _ => None },
        "warmup_s": args.warmup.as_secs_f64(),
        "timeout_s": args.timeout.as_secs_f64(),
        "threads": args.threads,
        "pool_sessions": pool_sessions,
        "pool_users": args.pool_users,
        "data_size": args.data_size,
        "distinct_users": args.distinct_users,
        "list_take": args.list_take,
        "list_active": args.list_active,
    })
}
