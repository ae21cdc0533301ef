//! The `sessions-bench` binary against a small fake Seneca TCP server started in the
//! test: the server answers by a fixed rule (some errors, some replies never sent,
//! one connection dropped) and tallies what it did; the bench's JSON report must
//! show exactly those numbers, and every request line must have the v8 client shape.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the fake server misbehaves.
#[derive(Clone, Copy, Default)]
struct Rules {
    /// Close the connection (without answering) on the get request with this number.
    close_on_get: Option<u64>,
    /// Answer every request (no timeouts), for runs whose length must not depend on them.
    no_drops: bool,
}

/// What the fake server saw and did.
#[derive(Default)]
struct Tally {
    /// Requests received per cmd.
    received: BTreeMap<String, u64>,
    /// Success replies sent per cmd.
    ok: BTreeMap<String, u64>,
    /// Error replies sent, by cmd then code.
    errors: BTreeMap<String, BTreeMap<String, u64>>,
    /// Requests deliberately never answered, per cmd.
    dropped: BTreeMap<String, u64>,
    /// Replies sent with a wrong origin (a v8 client drops them).
    bad_origin: u64,
    /// Request lines that were not shaped like a v8 client's.
    shape_errors: Vec<String>,
    ids: HashSet<String>,
    connections: u64,
}

type Shared = Arc<Mutex<Tally>>;

async fn start_fake(rules: Rules) -> (SocketAddr, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let tally: Shared = Arc::default();
    let t = tally.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            t.lock().unwrap().connections += 1;
            tokio::spawn(serve(sock, t.clone(), rules));
        }
    });
    (addr, tally)
}

const SHAPE: [&str; 8] = [
    "id", "kind", "origin", "track", "time", "act", "sync", "msg$",
];

fn check_shape(v: &Value) -> Result<(), String> {
    let keys: Vec<&str> = v
        .as_object()
        .ok_or("not an object")?
        .keys()
        .map(String::as_str)
        .collect();
    if keys != SHAPE {
        return Err(format!("keys {keys:?}"));
    }
    let id = v["id"].as_str().ok_or("id")?;
    let (mid, cid) = id.split_once('/').ok_or("id without /")?;
    let b36 = |s: &str| {
        s.len() == 12
            && s.bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
    };
    if !b36(mid) || !b36(cid) {
        return Err(format!("id {id}"));
    }
    let origin = v["origin"].as_str().ok_or("origin")?;
    let parts: Vec<&str> = origin.split('/').collect();
    if parts.len() != 5 || !b36(parts[0]) || parts[3] != "3.38.0" {
        return Err(format!("origin {origin}"));
    }
    let act = &v["act"];
    let ok = v["kind"] == "act"
        && v["track"] == json!([origin])
        && v["time"]["client_sent"].as_u64().is_some()
        && v["sync"] == true
        && act["role"] == "sessions"
        && act["version"] == 1
        && act["cmd"].is_string()
        && act["custom$"] == json!({})
        && v["msg$"]
            == json!({"vin":1,"sid":origin,"out":true,"mid":mid,"cid":cid,"snc":true,"pat":""});
    let act_keys: Vec<&str> = act
        .as_object()
        .ok_or("act")?
        .keys()
        .map(String::as_str)
        .collect();
    let act_order =
        act_keys[..3] == ["role", "version", "cmd"] && act_keys.last() == Some(&"custom$");
    if ok && act_order {
        Ok(())
    } else {
        Err(format!("fields of {v}"))
    }
}

fn reply(req: &Value, res: Value, error: Option<Value>) -> String {
    let mut r = json!({
        "id": req["id"], "kind": "res", "origin": req["origin"],
        "accept": "fakeserver01/1/1/3.38.0/-", "track": req["track"],
        "time": {"client_sent": req["time"]["client_sent"], "listen_recv": 1, "listen_sent": 2},
        "sync": true, "res": res,
    });
    if let Some(e) = error {
        r["error"] = e;
    }
    let mut s = r.to_string();
    s.push('\n');
    s
}

/// The Node shape of an application error (PROTOCOL.md §4).
fn app_error(cmd: &str, code: &str, status: u16) -> Value {
    json!({
        "code": "act_execute", "seneca": true, "eraro": true, "package": "seneca", "name": "Error",
        "message": format!("seneca: Action cmd:{cmd},role:sessions failed: {code}."),
        "orig": {"code": code, "status": status, "category": "x", "message": code},
        "details": {"message": code, "plugin": {}},
    })
}

async fn serve(sock: TcpStream, tally: Shared, rules: Rules) {
    let (rd, mut wr) = sock.into_split();
    let mut lines = BufReader::new(rd).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let req: Value = serde_json::from_str(&line).unwrap();
        let cmd = req["act"]["cmd"].as_str().unwrap_or("?").to_owned();
        let mut out = String::new();
        {
            let mut t = tally.lock().unwrap();
            if let Err(e) = check_shape(&req) {
                t.shape_errors.push(e);
            }
            if !t.ids.insert(req["id"].as_str().unwrap_or("").to_owned()) {
                t.shape_errors.push(format!("duplicate id {}", req["id"]));
            }
            let n = *t.received.get(&cmd).unwrap_or(&0);
            *t.received.entry(cmd.clone()).or_default() += 1;
            let err = |t: &mut Tally, code: &str| {
                *t.errors
                    .entry(cmd.clone())
                    .or_default()
                    .entry(code.to_owned())
                    .or_default() += 1;
            };
            match cmd.as_str() {
                "open_session" => {
                    let sid = format!("{:032x}", n + 1);
                    out = reply(
                        &req,
                        json!({"id": sid, "user_id": req["act"]["user_id"], "active": true}),
                        None,
                    );
                }
                "get_session_by_id" if rules.close_on_get == Some(n) => {
                    *t.dropped.entry(cmd.clone()).or_default() += 1;
                    drop(t);
                    return; // closes the connection with requests unanswered
                }
                "get_session_by_id" if n % 10 == 3 => {
                    err(&mut t, "STORE_UNAVAILABLE");
                    out = reply(
                        &req,
                        Value::Null,
                        Some(app_error(&cmd, "STORE_UNAVAILABLE", 503)),
                    );
                }
                "get_session_by_id" if n % 10 == 7 && !rules.no_drops => {
                    *t.dropped.entry(cmd.clone()).or_default() += 1;
                }
                "get_session_by_id" if n % 20 == 9 => {
                    err(&mut t, "act_not_found");
                    let e = json!({"code": "act_not_found", "orig": null, "seneca": true,
                                   "message": "seneca: No matching action pattern found"});
                    out = reply(&req, Value::Null, Some(e));
                }
                "get_session_by_id" if n % 20 == 19 => {
                    t.bad_origin += 1;
                    let mut wrong = req.clone();
                    wrong["origin"] = json!("someoneelse0/1/1/3.38.0/-");
                    out = reply(&wrong, json!({"id": "x"}), None);
                }
                "get_session_by_id" => {
                    *t.ok.entry(cmd.clone()).or_default() += 1;
                    out = reply(
                        &req,
                        json!({"id": req["act"]["session_id"], "active": true}),
                        None,
                    );
                    if n == 0 {
                        // One line no reader can use, and one reply nobody waits for.
                        out.insert_str(0, "this is not json\n");
                        out.push_str(&reply(&req, Value::Null, None));
                    }
                }
                "store_session_data" if n % 4 == 1 => {
                    err(&mut t, "SESSION_CLOSED");
                    out = reply(
                        &req,
                        Value::Null,
                        Some(app_error(&cmd, "SESSION_CLOSED", 409)),
                    );
                }
                "get_sessions" => {
                    *t.ok.entry(cmd.clone()).or_default() += 1;
                    out = reply(&req, json!({"data": [], "total": null}), None);
                }
                _ => {
                    *t.ok.entry(cmd.clone()).or_default() += 1;
                    out = reply(&req, json!({"id": "s", "data": req["act"]["data"]}), None);
                }
            }
        }
        if !out.is_empty() && wr.write_all(out.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn bench(args: &[&str]) -> (std::process::Output, Value) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sessions-bench"))
        .args(args)
        .args(["--format", "json", "--quiet"])
        .output()
        .await
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out, report)
}

fn count(map: &BTreeMap<String, u64>, key: &str) -> u64 {
    map.get(key).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_counts_errors_by_code_and_timeouts() {
    let (addr, tally) = start_fake(Rules::default()).await;
    let a = addr.to_string();
    let (out, r) = bench(&[
        "--addr",
        &a,
        "--scenario",
        "get",
        "-n",
        "200",
        "-c",
        "3",
        "-k",
        "8",
        "--warmup",
        "0s",
        "--timeout",
        "2s",
        "--pool-sessions",
        "6",
        "--pool-users",
        "2",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = tally.lock().unwrap();
    assert!(
        t.shape_errors.is_empty(),
        "{:?}",
        &t.shape_errors[..t.shape_errors.len().min(3)]
    );
    assert_eq!(
        count(&t.received, "open_session"),
        6,
        "setup opens the pool"
    );
    assert_eq!(count(&t.received, "get_session_by_id"), 200);

    let get = &r["commands"]["get"];
    assert_eq!(get["requests"], 200);
    assert_eq!(get["ok"], count(&t.ok, "get_session_by_id"));
    assert_eq!(get["ok"], 140);
    let errors = &get["errors_by_code"];
    let server_errors = &t.errors["get_session_by_id"];
    assert_eq!(
        errors["STORE_UNAVAILABLE"],
        server_errors["STORE_UNAVAILABLE"]
    );
    assert_eq!(errors["STORE_UNAVAILABLE"], 20);
    assert_eq!(errors["act_not_found"], 10);
    assert_eq!(errors["timeout"], count(&t.dropped, "get_session_by_id"));
    assert_eq!(errors["timeout"], 20);
    assert_eq!(errors["bad_reply"], t.bad_origin);
    assert_eq!(get["errors"], 60);
    assert_eq!(r["total"]["requests"], 200);
    assert_eq!(r["unreadable_lines"], 1);
    assert_eq!(r["unmatched_replies"], 1);
    assert_eq!(r["disconnects"], 0);
    assert!(get["latency_us"]["p50"].as_u64().unwrap() >= 1);
    assert!(get["req_per_s"].as_f64().unwrap() > 0.0);
    assert!(r["commands"]["open"].is_null(), "setup is not measured");
    assert!(r["client_cpu_s"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mix_is_counted_per_command() {
    let (addr, tally) = start_fake(Rules::default()).await;
    let a = addr.to_string();
    let (out, r) = bench(&[
        "--addr",
        &a,
        "--mix",
        "store=40,open=30,list=30",
        "-n",
        "300",
        "-c",
        "2",
        "-k",
        "4",
        "--warmup",
        "0s",
        "--pool-sessions",
        "5",
        "--data-size",
        "100",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = tally.lock().unwrap();
    assert!(
        t.shape_errors.is_empty(),
        "{:?}",
        &t.shape_errors[..t.shape_errors.len().min(3)]
    );
    let c = &r["commands"];
    let stores = count(&t.received, "store_session_data");
    let opens = count(&t.received, "open_session") - 5;
    let lists = count(&t.received, "get_sessions");
    assert_eq!(stores + opens + lists, 300);
    assert!(stores > 0 && opens > 0 && lists > 0);
    assert_eq!(c["store"]["requests"], stores);
    assert_eq!(c["open"]["requests"], opens);
    assert_eq!(c["list"]["requests"], lists);
    assert_eq!(
        c["store"]["errors_by_code"]["SESSION_CLOSED"],
        t.errors["store_session_data"]["SESSION_CLOSED"]
    );
    assert_eq!(c["store"]["ok"], count(&t.ok, "store_session_data"));
    assert_eq!(c["list"]["ok"], lists);
    assert_eq!(r["total"]["requests"], 300);
    assert!(c["get"].is_null());
    assert_eq!(
        r["config"]["mix"],
        json!({"open": 30, "store": 40, "list": 30})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_is_counted_and_the_run_goes_on() {
    let (addr, tally) = start_fake(Rules {
        close_on_get: Some(40),
        no_drops: true,
    })
    .await;
    let a = addr.to_string();
    let (out, r) = bench(&[
        "--addr",
        &a,
        "-n",
        "300",
        "-c",
        "1",
        "-k",
        "4",
        "--warmup",
        "0s",
        "--timeout",
        "2s",
        "--pool-sessions",
        "3",
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = tally.lock().unwrap();
    let get = &r["commands"]["get"];
    assert_eq!(get["requests"], 300);
    assert!(
        get["errors_by_code"]["disconnected"].as_u64().unwrap() >= 1,
        "{get}"
    );
    assert_eq!(r["disconnects"], 1);
    // setup + the first connection + the reconnection
    assert_eq!(t.connections, 3);
    assert!(get["ok"].as_u64().unwrap() <= count(&t.ok, "get_session_by_id"));
    assert!(
        get["ok"].as_u64().unwrap() > 150,
        "load went on after reconnecting: {get}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_listening_is_a_setup_failure() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let a = format!("127.0.0.1:{port}");
    let (out, _) = bench(&["--addr", &a, "-n", "10"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot connect"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_mode_stops_by_itself_and_text_shows_errors() {
    let (addr, _tally) = start_fake(Rules {
        no_drops: true,
        ..Rules::default()
    })
    .await;
    let a = addr.to_string();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_sessions-bench"))
        .args([
            "--addr",
            &a,
            "-d",
            "300ms",
            "--warmup",
            "100ms",
            "--timeout",
            "500ms",
            "-q",
        ])
        .args(["--pool-sessions", "4", "-c", "2", "-k", "2"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\nget "), "{text}");
    assert!(text.contains("errors by code"), "{text}");
    assert!(text.contains("STORE_UNAVAILABLE"), "{text}");
}
