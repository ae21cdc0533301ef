//! `promtool check metrics` (from the Debian package `prometheus`) must find nothing
//! to complain about in a scrape after every metric method has been used once.
//! Fails, rather than skips, when promtool is missing.

use std::io::Write;
use std::process::{Command, Stdio};

mod common;
use std::time::Duration;

use sessions::lifecycle::{CloseReason, Closes};
use sessions::metrics::{
    Cmd, Metrics, Outcome, ProtocolErrorKind, RedisErrorKind, RedisOp, Sweep, SweepOutcome,
};
use sessions::store::Counts;

/// What this suite runs besides the service (see `common::needs`).
const NEEDS: &[common::needs::Need] = &[common::needs::Need::Promtool];

fn exercised() -> Metrics {
    let m = Metrics::new().unwrap();
    for cmd in Cmd::ALL {
        for outcome in Outcome::ALL {
            m.observe_request(*cmd, *outcome, 0.000_3);
        }
    }
    let in_flight = m.request_started();
    let conn = m.connection_opened();
    for kind in ProtocolErrorKind::ALL {
        m.protocol_error(*kind);
    }
    m.session_opened(false);
    m.session_opened(true);
    for reason in CloseReason::ALL {
        m.sessions_closed(&Closes::one(reason));
    }
    m.session_refused();
    m.session_deleted();
    m.sessions_expired(3);
    m.sessions_purged(2);
    m.set_session_counts(Counts {
        active: 4,
        total: 10,
    });
    for op in RedisOp::ALL {
        m.observe_redis(*op, 0.000_8);
        for kind in RedisErrorKind::ALL {
            m.redis_error(*op, *kind);
        }
    }
    m.set_store_up(true);
    for sweep in Sweep::ALL {
        for outcome in SweepOutcome::ALL {
            m.observe_sweep(*sweep, *outcome, Duration::from_millis(12));
        }
    }
    drop((in_flight, conn));
    m
}

#[test]
fn promtool_check_metrics_is_clean() {
    let text = exercised().render();
    assert!(
        text.contains("sessions_requests_total"),
        "render produced the metrics"
    );
    promtool_clean(&text);
}

/// A real scrape: the service started in-process, some traffic (including errors and
/// a bad line), then `GET /metrics` on its admin port, checked by promtool.
#[tokio::test]
async fn promtool_is_clean_on_a_real_scrape() {
    let app = common::spawn_app(&[]).await;
    let mut c = common::seneca::Client::connect(app.seneca_addr).await;
    let s = c
        .call(serde_json::json!({"cmd": "open_session", "user_id": "u"}))
        .await;
    c.call(serde_json::json!({"cmd": "close_session", "session_id": s["id"]}))
        .await;
    c.send(serde_json::json!({"cmd": "open_session"}), true)
        .await;
    c.reply().await;
    c.send_raw(b"{\"id\":\"x/1\",\"origin\":\"o\",\"act\":{\n")
        .await
        .unwrap();
    c.reply().await;
    let (status, body) = common::http::get(app.admin_addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("sessions_protocol_errors_total{kind=\"invalid_json\"} 1"));
    promtool_clean(&body);
}

fn promtool_clean(text: &str) {
    common::needs::check();
    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!(
            "promtool not runnable ({e}); `{}` installs it",
            common::needs::PROVISION
        ),
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics complained (status {}):\n{report}",
        out.status
    );
}
