//! Several replicas: three processes of the built binary share one redis-server,
//! with HAProxy (TCP mode, round robin, health check on `/ready`) in front, driven by
//! the real npm Seneca client (`tests/compat/replicas.js`, seneca 3.38 +
//! seneca-transport 8). Any replica answers any command; identical opens racing
//! through every replica give one session; a session opened through one replica is
//! closed through another. Each replica's own metrics show it took part. After each
//! test `sessions check` finds the dataset consistent.
//!
//! Needs haproxy, node and npm on PATH; fails (never skips) without them.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use common::fleet::{self, Fleet};
use common::haproxy::HaProxy;
use common::node;
use common::redis_server::RedisServer;

/// What this suite runs besides the service (see `common::needs`).
const NEEDS: &[common::needs::Need] = &[
    common::needs::Need::RedisServer,
    common::needs::Need::Haproxy,
    common::needs::Need::Node,
];

/// One fleet at a time: the tests count requests per replica, and the machine is small.
static SERIAL: Mutex<()> = Mutex::new(());

const COMMANDS: [&str; 10] = [
    "get_sessions",
    "get_session_by_id",
    "open_session",
    "store_session_data",
    "update_session_user",
    "close_session",
    "close_expired_sessions",
    "delete_session",
    "delete_session_by_id",
    "close_user_sessions",
];

struct Setup {
    redis: RedisServer,
    prefix: String,
    fleet: Fleet,
    lb: HaProxy,
}

fn setup(name: &str) -> Setup {
    let redis = RedisServer::start();
    let prefix = common::unique_prefix(name);
    let fleet = Fleet::start(3, &redis.url(), &prefix, &[]);
    let lb = HaProxy::start(&fleet.backends());
    lb.wait_all_up(Duration::from_secs(15));
    Setup {
        redis,
        prefix,
        fleet,
        lb,
    }
}

fn ok_series(cmd: &str) -> String {
    format!("sessions_requests_total{{cmd=\"{cmd}\",outcome=\"ok\"}}")
}

/// `series` on every replica.
fn per_replica(fleet: &Fleet, series: &str) -> Vec<f64> {
    (0..fleet.replicas.len())
        .map(|i| {
            fleet
                .metric(i, series)
                .unwrap_or_else(|| panic!("replica {i} has no {series}"))
        })
        .collect()
}

/// Runs one phase of replicas.js and asserts it ran at least `min_checks` checks and
/// none failed.
fn phase(s: &Setup, name: &str, ports: &[u16], min_checks: u32) {
    let dir = node::client_dir("v8");
    let mut args = vec![
        dir.display().to_string(),
        name.to_string(),
        "127.0.0.1".to_string(),
    ];
    args.extend(ports.iter().map(|p| p.to_string()));
    let run = node::run_script("replicas.js", &args);
    println!("{}", run.stdout);
    let failures: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.starts_with("FAIL"))
        .collect();
    assert!(
        run.success && run.failed == 0,
        "phase {name}: {} passed, {} failed:\n{}\n{}\n--- haproxy ---\n{}\n{}",
        run.passed,
        run.failed,
        failures.join("\n"),
        run.stderr,
        s.lb.log_text(),
        s.fleet.logs()
    );
    assert!(
        run.passed >= min_checks,
        "phase {name}: only {} checks ran",
        run.passed
    );
}

#[test]
fn every_command_works_whichever_replica_answers() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup("replicas-commands");
    let before: Vec<Vec<f64>> = COMMANDS
        .iter()
        .map(|c| per_replica(&s.fleet, &ok_series(c)))
        .collect();

    phase(&s, "commands", &[s.lb.port], 6 * 25);

    // Six clients, two per replica: every replica answered every command.
    for (c, cmd) in COMMANDS.iter().enumerate() {
        let after = per_replica(&s.fleet, &ok_series(cmd));
        for (i, a) in after.iter().enumerate() {
            let served = a - before[c][i];
            assert!(
                served >= 1.0,
                "replica {i} answered no {cmd} (the balancer did not spread the clients?)"
            );
        }
    }
    fleet::assert_consistent(&s.redis.url(), &s.prefix);
}

#[test]
fn fifty_concurrent_identical_opens_give_one_session() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup("replicas-race");
    let opens = ok_series("open_session");
    let before_opens = per_replica(&s.fleet, &opens);
    let before_new = per_replica(&s.fleet, "sessions_sessions_opened_total");
    let before_reused = per_replica(&s.fleet, "sessions_sessions_reused_total");

    phase(&s, "race", &[s.lb.port], 3);

    let delta = |after: Vec<f64>, before: &[f64]| -> Vec<f64> {
        after.iter().zip(before).map(|(a, b)| a - b).collect()
    };
    let served = delta(per_replica(&s.fleet, &opens), &before_opens);
    let created = delta(
        per_replica(&s.fleet, "sessions_sessions_opened_total"),
        &before_new,
    );
    let reused = delta(
        per_replica(&s.fleet, "sessions_sessions_reused_total"),
        &before_reused,
    );
    println!("open_session per replica: {served:?}; created {created:?}; reused {reused:?}");
    assert_eq!(served.iter().sum::<f64>(), 50.0, "{served:?}");
    assert!(
        served.iter().all(|n| *n >= 1.0),
        "every replica took part in the race: {served:?}"
    );
    assert_eq!(created.iter().sum::<f64>(), 1.0, "one session created");
    assert_eq!(
        reused.iter().sum::<f64>(),
        49.0,
        "every other open reused it"
    );
    fleet::assert_consistent(&s.redis.url(), &s.prefix);
}

#[test]
fn a_session_opened_on_one_replica_is_closed_on_another() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let s = setup("replicas-handoff");
    let ports: Vec<u16> = s.fleet.replicas.iter().map(|r| r.port).collect();
    let closes = per_replica(&s.fleet, &ok_series("close_session"));

    phase(&s, "handoff", &ports, 10);

    let after = per_replica(&s.fleet, &ok_series("close_session"));
    assert_eq!(
        after[1] - closes[1],
        1.0,
        "replica 1 closed the session replica 0 opened"
    );
    assert_eq!(after[0] - closes[0], 0.0);
    fleet::assert_consistent(&s.redis.url(), &s.prefix);
}
