//! The admin port and the drain, on the service started in-process: probes,
//! metrics after real traffic, readiness false while draining, in-flight requests
//! answered before the connection closes.

mod common;

use std::time::Duration;

use common::http;
use common::seneca::Client;
use serde_json::json;

/// What this suite runs besides the service (see `common::needs`): nothing.
const NEEDS: &[common::needs::Need] = &[];

#[tokio::test]
async fn probes_and_metrics() {
    let app = common::spawn_app(&[]).await;
    assert_eq!(http::get(app.admin_addr, "/live").await.0, 200);
    // Readiness needs the store check to have run once.
    let mut ready = 0;
    for _ in 0..100 {
        ready = http::get(app.admin_addr, "/ready").await.0;
        if ready == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ready, 200);
    let mut c = Client::connect(app.seneca_addr).await;
    let s = c.call(json!({"cmd": "open_session", "user_id": "u"})).await;
    c.call(json!({"cmd": "open_session", "user_id": "u"})).await;
    c.call(json!({"cmd": "close_session", "session_id": s["id"]}))
        .await;
    c.send(json!({"cmd": "nope"}), true).await;
    c.reply().await;
    let (status, body) = http::get(app.admin_addr, "/metrics").await;
    assert_eq!(status, 200);
    for series in [
        r#"sessions_requests_total{cmd="open_session",outcome="ok"} 2"#,
        r#"sessions_requests_total{cmd="unknown",outcome="not_found"} 1"#,
        "sessions_sessions_opened_total 1",
        "sessions_sessions_reused_total 1",
        r#"sessions_sessions_closed_total{reason="logout"} 1"#,
        "sessions_connections_open 1",
    ] {
        assert!(body.lines().any(|l| l == series), "{series} in\n{body}");
    }
    assert!(body.contains("sessions_build_info{"));
    assert!(body.contains("sessions_request_duration_seconds_bucket{cmd=\"open_session\""));
}

#[tokio::test]
async fn draining_reports_not_ready_and_closes_connections() {
    let app = common::spawn_app(&[]).await;
    let mut c = Client::connect(app.seneca_addr).await;
    c.call(json!({"cmd": "open_session", "user_id": "u"})).await;
    let admin = app.admin_addr;
    let seneca = app.seneca_addr;
    app.health.set_draining();
    let (status, body) = http::get(admin, "/ready").await;
    assert_eq!(status, 503);
    assert!(body.contains("draining"));
    assert_eq!(http::get(admin, "/live").await.0, 200);
    app.shutdown();
    assert!(
        c.closed(Duration::from_secs(10)).await,
        "idle connection closed by the drain"
    );
    assert!(app.wait().await, "drained within the grace period");
    assert!(
        tokio::net::TcpStream::connect(seneca).await.is_err(),
        "listener closed"
    );
}
