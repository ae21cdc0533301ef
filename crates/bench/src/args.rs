//! Command-line options of `sessions-bench` and the small parsers behind them
//! (durations like `10s`, command mixes like `get=80,store=10`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::scenario::{Cmd, Mix};

/// Load generator for the sessions service, speaking Seneca TCP like a Node v8 client.
#[derive(Debug, Parser)]
#[command(name = "sessions-bench", version)]
pub struct Args {
    /// Server address; repeat for several replicas (connections go round-robin).
    #[arg(long = "addr", default_value = "127.0.0.1:8807")]
    pub addrs: Vec<SocketAddr>,

    /// TCP connections in total.
    #[arg(short = 'c', long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: u32,

    /// Requests in flight on each connection (pipelined, matched by id).
    #[arg(short = 'k', long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub inflight: u32,

    /// What to send: get, open, store, list, or mix (see --mix).
    #[arg(short = 's', long, value_enum, default_value_t = ScenarioArg::Get)]
    pub scenario: ScenarioArg,

    /// Command ratios for the mix scenario, e.g. get=80,store=10,open=5,list=5.
    /// Giving --mix selects the mix scenario.
    #[arg(long, value_parser = parse_mix)]
    pub mix: Option<Mix>,

    /// Measured run length (default 10s unless --requests is given).
    #[arg(short = 'd', long, value_parser = parse_duration, conflicts_with = "requests")]
    pub duration: Option<Duration>,

    /// Measured run length as a number of requests, over all connections.
    #[arg(short = 'n', long, value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,

    /// Load sent before measuring starts; its requests are not recorded.
    #[arg(short = 'w', long, value_parser = parse_duration, default_value = "1s")]
    pub warmup: Duration,

    /// A request without a reply after this long is counted as `timeout`.
    #[arg(short = 't', long, value_parser = parse_duration, default_value = "5s")]
    pub timeout: Duration,

    /// Tokio worker threads (1 runs everything on one thread).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub threads: u32,

    /// Sessions opened during setup (not measured), spread over the addresses.
    #[arg(long, default_value_t = 1000)]
    pub pool_sessions: u32,

    /// Distinct users owning the pooled sessions.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub pool_users: u32,

    /// Size in bytes of the `data` JSON sent by store_session_data.
    #[arg(long, default_value_t = 256)]
    pub data_size: usize,

    /// open_session with a new user on every request, instead of re-opening the
    /// pooled users' sessions (which the server reuses).
    #[arg(long)]
    pub distinct_users: bool,

    /// paging.take sent with get_sessions.
    #[arg(long, default_value_t = 10)]
    pub list_take: u32,

    /// get_sessions also filters on `active: true` (the service first makes the
    /// expiry of the user's bucket exact: what that costs).
    #[arg(long)]
    pub list_active: bool,

    /// Report format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also write the JSON report to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// Print the first N request and reply lines of the first connection on stderr
    /// (warm-up included), to see what goes over the wire.
    #[arg(long, default_value_t = 0)]
    pub show: u32,

    /// No progress lines on stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioArg {
    Get,
    Open,
    Store,
    List,
    Mix,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// How long the measured part lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Duration(Duration),
    Requests(u64),
}

impl Args {
    pub fn limit(&self) -> Limit {
        match (self.requests, self.duration) {
            (Some(n), _) => Limit::Requests(n),
            (None, Some(d)) => Limit::Duration(d),
            (None, None) => Limit::Duration(Duration::from_secs(10)),
        }
    }

    /// The command mix to run: a single command, or the --mix ratios.
    pub fn mix(&self) -> Result<Mix, String> {
        match (self.scenario, &self.mix) {
            (_, Some(m)) => Ok(m.clone()),
            (ScenarioArg::Mix, None) => Err("--scenario mix needs --mix get=..,store=..".into()),
            (ScenarioArg::Get, None) => Ok(Mix::single(Cmd::Get)),
            (ScenarioArg::Open, None) => Ok(Mix::single(Cmd::Open)),
            (ScenarioArg::Store, None) => Ok(Mix::single(Cmd::Store)),
            (ScenarioArg::List, None) => Ok(Mix::single(Cmd::List)),
        }
    }
}

/// Parses `10s`, `500ms`, `2m`, `1h`, `250us` or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (try 10s, 500ms, 2m)"))?;
    let secs = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("unknown duration unit `{other}` in `{s}`")),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}` is out of range"))
}

/// Parses `get=80,store=10,open=5,list=5` (command names as in --scenario).
pub fn parse_mix(s: &str) -> Result<Mix, String> {
    let mut weights = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, w) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}`: expected name=weight"))?;
        let cmd = Cmd::from_name(name.trim())
            .ok_or_else(|| format!("unknown command `{name}` (get, open, store, list)"))?;
        let w: u32 = w
            .trim()
            .parse()
            .map_err(|_| format!("`{part}`: weight must be a whole number"))?;
        if weights.iter().any(|&(c, _)| c == cmd) {
            return Err(format!("`{name}` given twice"));
        }
        weights.push((cmd, w));
    }
    Mix::new(weights)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn mixes() {
        let m = parse_mix("get=80,store=10,open=5,list=5").unwrap();
        assert_eq!(m.total(), 100);
        assert_eq!(m.weight(Cmd::Get), 80);
        assert_eq!(m.weight(Cmd::List), 5);
        assert!(parse_mix("get=80,get=1").is_err());
        assert!(parse_mix("fly=1").is_err());
        assert!(parse_mix("get").is_err());
        assert!(parse_mix("get=-1").is_err());
        assert!(parse_mix("get=0").is_err());
        assert!(parse_mix("").is_err());
    }

    #[test]
    fn requests_and_duration_exclude_each_other() {
        let a = Args::try_parse_from(["b", "-n", "5"]).unwrap();
        assert_eq!(a.limit(), Limit::Requests(5));
        let a = Args::try_parse_from(["b"]).unwrap();
        assert_eq!(a.limit(), Limit::Duration(Duration::from_secs(10)));
        assert!(Args::try_parse_from(["b", "-n", "5", "-d", "1s"]).is_err());
        assert!(Args::try_parse_from(["b", "--scenario", "mix"])
            .unwrap()
            .mix()
            .is_err());
    }
}
