//! Graceful shutdown of the real binary: SIGTERM while a request is in flight (held
//! up by a paused Redis) — readiness turns false, the listener stops accepting, the
//! request is still answered, and the process exits 0.

mod common;

use std::time::Duration;

use common::binary::Binary;
use common::http;
use common::redis_server::RedisServer;
use common::seneca::Client;
use serde_json::json;

/// What this suite runs besides the service (see `common::needs`).
const NEEDS: &[common::needs::Need] = &[common::needs::Need::RedisServer];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_in_flight_requests_then_exits_zero() {
    let redis = RedisServer::start();
    let prefix = common::unique_prefix("shutdown");
    let mut bin = Binary::start(&[
        ("REDIS_URL", &redis.url()),
        ("SESSIONS_KEY_PREFIX", &prefix),
        ("SESSIONS_REQUEST_TIMEOUT", "10s"),
        ("SESSIONS_SHUTDOWN_GRACE", "15s"),
    ]);
    let mut ready = 0;
    for _ in 0..200 {
        ready = http::get(bin.admin_addr(), "/ready").await.0;
        if ready == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(ready, 200, "ready before the test:\n{}", bin.log_text());

    let mut c = Client::connect(bin.seneca_addr()).await;
    let s = c
        .call(json!({"cmd": "open_session", "user_id": "u", "data": {"k": 1}}))
        .await;

    // Hold every Redis command for 2 s, then put a request in flight.
    assert_eq!(redis.command("CLIENT PAUSE 2000 ALL"), "+OK");
    let id = c
        .send(
            json!({"cmd": "get_session_by_id", "session_id": s["id"]}),
            true,
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    bin.signal("TERM");

    // Draining: not ready, no new connections.
    let mut status = 0;
    for _ in 0..100 {
        status = http::get(bin.admin_addr(), "/ready").await.0;
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, 503, "not ready while draining");
    let mut refused = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(bin.seneca_addr())
            .await
            .is_err()
        {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "listener stopped accepting");

    // The request in flight is answered with its result, not an error.
    let reply = c.reply().await;
    assert_eq!(reply["id"], id.as_str());
    assert!(reply.get("error").is_none(), "{reply}");
    assert_eq!(reply["res"]["data"], json!({"k": 1}));
    assert!(c.closed(Duration::from_secs(10)).await);

    let code = tokio::task::spawn_blocking(move || {
        let code = bin.wait_exit(Duration::from_secs(20));
        (code, bin.log_text())
    })
    .await
    .unwrap();
    assert_eq!(code.0, Some(0), "exit code; log:\n{}", code.1);
}
