//! The Seneca wire protocol as the service speaks it: envelopes, concurrency on one
//! connection, fire-and-forget, tolerated framing, bad and over-long lines — over a
//! real TCP connection to the service started in-process.

mod common;

use std::time::Duration;

use common::seneca::{line, Client, ORIGIN};
use serde_json::{json, Value};

/// What this suite runs besides the service (see `common::needs`): nothing.
const NEEDS: &[common::needs::Need] = &[];

#[tokio::test]
async fn replies_echo_the_envelope() {
    let app = common::spawn_app(&[]).await;
    let mut c = Client::connect(app.seneca_addr).await;
    let id = c
        .send(
            json!({"cmd": "open_session", "user_id": "u1", "data": {"k": 1}}),
            true,
        )
        .await;
    let r = c.reply().await;
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["kind"], "res");
    assert_eq!(r["origin"], ORIGIN);
    assert_eq!(r["track"], json!([ORIGIN]));
    assert_eq!(r["sync"], true);
    assert_eq!(r["time"]["client_sent"], 1795771380098u64);
    assert!(r["time"]["listen_recv"].is_u64());
    assert!(r["time"]["listen_sent"].is_u64());
    assert!(r["accept"].is_string());
    assert_eq!(r["res"]["user_id"], "u1");
    assert!(r.get("error").is_none());
    // Null results are `res: null`, never a primitive.
    let r = c.call(json!({"cmd": "close_expired_sessions"})).await;
    assert!(r.is_null());
    let r = c
        .call(json!({"cmd": "get_session_by_id", "session_id": "00112233445566778899aabbccddeeff"}))
        .await;
    assert!(r.is_null());
}

#[tokio::test]
async fn many_requests_in_flight_on_one_connection() {
    let app = common::spawn_app(&[]).await;
    let mut c = Client::connect(app.seneca_addr).await;
    // Open 300 sessions in one burst: every reply carries its own request's user.
    let mut burst = String::new();
    let mut expect = std::collections::HashMap::new();
    for i in 0..300 {
        let id = c.next_id();
        burst.push_str(&line(
            &id,
            &json!({"cmd": "open_session", "user_id": format!("user-{i}")}),
            true,
        ));
        expect.insert(id, format!("user-{i}"));
    }
    c.send_raw(burst.as_bytes()).await.unwrap();
    for _ in 0..300 {
        let r = c.reply().await;
        let id = r["id"].as_str().unwrap().to_string();
        let user = expect.remove(&id).expect("a reply per request, once");
        assert_eq!(r["res"]["user_id"], user.as_str());
    }
    assert!(expect.is_empty());
}

#[tokio::test]
async fn fire_and_forget_gets_no_reply_but_runs() {
    let app = common::spawn_app(&[]).await;
    let mut c = Client::connect(app.seneca_addr).await;
    let s = c.call(json!({"cmd": "open_session", "user_id": "u"})).await;
    let ff = c
        .send(
            json!({"cmd": "store_session_data", "session_id": s["id"], "data": "marker"}),
            false,
        )
        .await;
    let mut seen = false;
    for _ in 0..100 {
        let id = c
            .send(
                json!({"cmd": "get_session_by_id", "session_id": s["id"]}),
                true,
            )
            .await;
        let r = c.reply().await;
        assert_eq!(
            r["id"],
            id.as_str(),
            "no reply for the fire-and-forget act {ff}"
        );
        if r["res"]["data"] == "marker" {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen, "fire-and-forget act was executed");
    // Without a sync field at all, there is no reply either (as a Node server does).
    let mut raw: Value = serde_json::from_str(&line(
        "nosync/1",
        &json!({"cmd": "close_expired_sessions"}),
        true,
    ))
    .unwrap();
    raw.as_object_mut().unwrap().remove("sync");
    c.send_raw(format!("{raw}\n").as_bytes()).await.unwrap();
    let id = c.send(json!({"cmd": "close_expired_sessions"}), true).await;
    assert_eq!(c.reply().await["id"], id.as_str());
}

#[tokio::test]
async fn crlf_and_blank_lines_are_tolerated() {
    let app = common::spawn_app(&[]).await;
    let mut c = Client::connect(app.seneca_addr).await;
    let l = line("crlf/1", &json!({"cmd": "get_sessions"}), true);
    let framed = format!("\r\n\n   \n{}\r\n\r\n", l.trim_end());
    c.send_raw(framed.as_bytes()).await.unwrap();
    let r = c.reply().await;
    assert_eq!(r["id"], "crlf/1");
    assert_eq!(r["res"]["data"], json!([]));
}

#[tokio::test]
async fn unknown_patterns_get_act_not_found() {
    let app = common::spawn_app(&[]).await;
    let mut c = Client::connect(app.seneca_addr).await;
    for act in [
        json!({"cmd": "no_such_cmd"}),
        json!({"cmd": "get_sessions", "version": 2}),
        json!({"cmd": "get_sessions", "role": "users"}),
    ] {
        let id = c.send(act, true).await;
        let r = c.reply().await;
        assert_eq!(r["id"], id.as_str());
        assert!(r["res"].is_null());
        assert_eq!(r["error"]["code"], "act_not_found");
        assert_eq!(r["error"]["seneca"], true);
    }
}

#[tokio::test]
async fn application_errors_are_node_shaped() {
    let app = common::spawn_app(&[]).await;
    let mut c = Client::connect(app.seneca_addr).await;
    let id = c
        .send(
            json!({"cmd": "open_session", "correlation_id": "corr-9"}),
            true,
        )
        .await;
    let r = c.reply().await;
    assert_eq!(r["id"], id.as_str());
    let e = &r["error"];
    assert_eq!(e["seneca"], true);
    assert_eq!(e["code"], "act_execute");
    assert_eq!(
        e["message"],
        "seneca: Action cmd:open_session,role:sessions failed: user_id is required."
    );
    assert_eq!(e["orig"]["code"], "INVALID_DATA");
    assert_eq!(e["orig"]["status"], 400);
    assert_eq!(e["orig"]["category"], "BadRequest");
    assert_eq!(e["orig"]["correlation_id"], "corr-9");
}

#[tokio::test]
async fn over_long_line_is_answered_and_the_connection_resyncs() {
    let app = common::spawn_app(&[
        ("SESSIONS_MAX_LINE_BYTES", "4096"),
        ("SESSIONS_MAX_DATA_BYTES", "1024"),
    ])
    .await;
    let mut c = Client::connect(app.seneca_addr).await;
    let big = line(
        "big/1",
        &json!({"cmd": "open_session", "user_id": "u", "data": "x".repeat(10_000)}),
        true,
    );
    c.send_raw(big.as_bytes()).await.unwrap();
    let r = c.reply().await;
    assert_eq!(r["id"], "big/1");
    assert_eq!(r["origin"], ORIGIN);
    assert_eq!(r["error"]["orig"]["code"], "DATA_TOO_LARGE");
    // The same connection goes on working.
    let res = c.call(json!({"cmd": "get_sessions"})).await;
    assert_eq!(res["data"], json!([]));
}

#[tokio::test]
async fn endless_line_closes_only_that_connection() {
    let app = common::spawn_app(&[
        ("SESSIONS_MAX_LINE_BYTES", "4096"),
        ("SESSIONS_MAX_DATA_BYTES", "1024"),
    ])
    .await;
    let mut other = Client::connect(app.seneca_addr).await;
    let mut c = Client::connect(app.seneca_addr).await;
    let chunk = vec![b'x'; 8192];
    let mut closed_while_writing = false;
    for _ in 0..64 {
        if c.send_raw(&chunk).await.is_err() {
            closed_while_writing = true;
            break;
        }
    }
    assert!(
        closed_while_writing || c.closed(Duration::from_secs(5)).await,
        "abusive connection closed"
    );
    let res = other.call(json!({"cmd": "get_sessions"})).await;
    assert!(res["data"].is_array());
}

#[tokio::test]
async fn unparsable_lines() {
    let app = common::spawn_app(&[]).await;
    let mut other = Client::connect(app.seneca_addr).await;
    // Recognisable sender: answered, connection kept.
    let mut c = Client::connect(app.seneca_addr).await;
    c.send_raw(
        format!("{{\"id\":\"bad/1\",\"kind\":\"act\",\"origin\":\"{ORIGIN}\",\"act\":{{\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    let r = c.reply().await;
    assert_eq!(r["id"], "bad/1");
    assert_eq!(r["error"]["orig"]["code"], "INVALID_DATA");
    assert_eq!(
        c.call(json!({"cmd": "get_sessions"})).await["data"],
        json!([])
    );
    // Invalid UTF-8 with a recognisable sender: answered too.
    let mut bytes =
        format!("{{\"id\":\"bad/2\",\"origin\":\"{ORIGIN}\",\"sync\":true,\"act\":\"").into_bytes();
    bytes.extend_from_slice(b"\xff\xfe\"}\n");
    c.send_raw(&bytes).await.unwrap();
    assert_eq!(c.reply().await["id"], "bad/2");
    // Deeply nested JSON: an error, not a crash.
    let deep = format!(
        "{{\"id\":\"deep/1\",\"origin\":\"{ORIGIN}\",\"sync\":true,\"act\":{}{}}}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    c.send_raw(deep.as_bytes()).await.unwrap();
    assert_eq!(c.reply().await["id"], "deep/1");
    // Unrecognisable garbage: nothing to answer, so that connection is closed.
    let mut g = Client::connect(app.seneca_addr).await;
    g.send_raw(b"this is not json\n").await.unwrap();
    assert!(g.closed(Duration::from_secs(5)).await);
    // Nobody else noticed.
    assert_eq!(
        other.call(json!({"cmd": "get_sessions"})).await["data"],
        json!([])
    );
    assert_eq!(
        c.call(json!({"cmd": "get_sessions"})).await["data"],
        json!([])
    );
}
