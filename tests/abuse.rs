//! Hostile and careless clients against the real service: an endless line, absurd
//! nesting, invalid UTF-8, more connections than allowed, clients that never read
//! their replies, thousands of requests in flight on one connection, payloads at
//! their size limit, and values at the edges of JSON numbers and strings. Memory is
//! measured on the real binary (its VmRSS); the rest runs in-process.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use common::binary::Binary;
use common::seneca::{line, Client, ORIGIN};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// What this suite runs besides the service (see `common::needs`): nothing.
const NEEDS: &[common::needs::Need] = &[];

/// Resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

const MIB: u64 = 1024 * 1024;

/// The sum of a counter over all its label sets, from the binary's /metrics.
async fn counter(admin: SocketAddr, name: &str) -> f64 {
    let (_, body) = common::http::get(admin, "/metrics").await;
    body.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter(|l| l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until the service stops handling requests (the counter holds still for a
/// while), within a bound; returns the last value. Assertions on it hold whether or
/// not the wait was long enough: a service that kept reading would only show more.
async fn settled(admin: SocketAddr, name: &str) -> f64 {
    let mut last = -1.0;
    for _ in 0..100 {
        let now = counter(admin, name).await;
        if now == last {
            return now;
        }
        last = now;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    last
}

#[tokio::test]
async fn a_100_mib_line_without_newline_is_cut_off_with_memory_bounded() {
    let bin = Binary::start(&[]);
    let pid = bin.child.id();
    let mut other = Client::connect(bin.seneca_addr()).await;
    assert!(other.call(json!({"cmd": "get_sessions"})).await["data"].is_array());
    let before = rss(pid);

    let mut stream = TcpStream::connect(bin.seneca_addr()).await.unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut sent = 0u64;
    for _ in 0..100 {
        match stream.write_all(&chunk).await {
            Ok(()) => sent += chunk.len() as u64,
            Err(_) => break,
        }
    }
    let grown = rss(pid).saturating_sub(before);
    assert!(sent < 100 * MIB, "the service stopped taking the line");
    assert!(grown < 16 * MIB, "grew {grown} bytes for a 100 MiB line");
    // That connection is closed (a read ends or fails) ...
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut stream, &mut rest),
    )
    .await
    .expect("closed, not hanging");
    assert!(read.is_err() || rest.is_empty() || rest.ends_with(b"\n"));
    // ... and nobody else noticed.
    assert!(other.call(json!({"cmd": "get_sessions"})).await["data"].is_array());
    println!("100 MiB line: {sent} bytes accepted before close, RSS grew {grown} bytes");
}

#[tokio::test]
async fn json_nested_100000_levels_is_an_error_not_a_crash() {
    let app = common::spawn_app(&[
        ("SESSIONS_MAX_LINE_BYTES", "1MiB"),
        ("SESSIONS_MAX_DATA_BYTES", "64KiB"),
    ])
    .await;
    let mut c = Client::connect(app.seneca_addr).await;
    let depth = 100_000;
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        // Nested in the act, and nested inside `data` of a real command.
        for (i, wrap) in ["act", "data"].into_iter().enumerate() {
            let id = format!("deep/{i}/{}", open.len());
            let nested = format!("{}1{}", open.repeat(depth), close.repeat(depth));
            let act = if wrap == "act" {
                nested
            } else {
                format!(
                    r#"{{"role":"sessions","cmd":"open_session","user_id":"u","data":{nested}}}"#
                )
            };
            let l = format!(
                r#"{{"id":"{id}","kind":"act","origin":"{ORIGIN}","sync":true,"act":{act}}}"#
            );
            c.send_raw(format!("{l}\n").as_bytes()).await.unwrap();
            let r = c.reply().await;
            assert_eq!(r["id"], id.as_str());
            assert_eq!(r["error"]["orig"]["code"], "INVALID_DATA", "{r}");
        }
    }
    // Nesting a real client may send (well below the parser's limit) round-trips.
    let mut deep = json!("leaf");
    for _ in 0..100 {
        deep = json!([deep]);
    }
    let s = c
        .call(json!({"cmd": "open_session", "user_id": "u", "data": deep}))
        .await;
    assert_eq!(s["data"], deep);
    assert_eq!(
        c.call(json!({"cmd": "get_session_by_id", "session_id": s["id"]}))
            .await["data"],
        deep
    );
}

#[tokio::test]
async fn invalid_utf8_is_answered_or_closes_only_that_connection() {
    let app = common::spawn_app(&[]).await;
    let mut other = Client::connect(app.seneca_addr).await;
    let mut c = Client::connect(app.seneca_addr).await;
    let head = format!(r#"{{"id":"utf/1","kind":"act","origin":"{ORIGIN}","sync":true,"#);
    let cases: [&[u8]; 5] = [
        b"\"act\":{\"cmd\":\"open_session\",\"user_id\":\"\xff\"}}",
        // An overlong encoding of '/', a UTF-16 surrogate encoded as UTF-8, a
        // truncated sequence.
        b"\"act\":{\"cmd\":\"open_session\",\"user_id\":\"\xc0\xaf\"}}",
        b"\"act\":{\"cmd\":\"open_session\",\"user_id\":\"\xed\xa0\x80\"}}",
        b"\"act\":{\"cmd\":\"open_session\",\"user_id\":\"\xe2\x82\"}}",
        // A lone surrogate as a JSON escape: valid UTF-8, invalid JSON text.
        b"\"act\":{\"cmd\":\"open_session\",\"user_id\":\"\\ud800\"}}",
    ];
    for case in cases {
        let mut l = head.clone().into_bytes();
        l.extend_from_slice(case);
        l.push(b'\n');
        c.send_raw(&l).await.unwrap();
        let r = c.reply().await;
        assert_eq!(r["id"], "utf/1");
        assert_eq!(r["error"]["orig"]["code"], "INVALID_DATA", "{r}");
    }
    // The connection still works.
    assert!(c.call(json!({"cmd": "get_sessions"})).await["data"].is_array());
    // Invalid UTF-8 from nobody recognisable: that connection is closed.
    let mut g = Client::connect(app.seneca_addr).await;
    g.send_raw(b"\xff\xfe\xfd{\"act\":1}\n").await.unwrap();
    assert!(g.closed(Duration::from_secs(5)).await);
    assert!(other.call(json!({"cmd": "get_sessions"})).await["data"].is_array());
}

#[tokio::test]
async fn connections_beyond_the_maximum_wait_until_one_closes() {
    let app = common::spawn_app(&[("SESSIONS_MAX_CONNECTIONS", "8")]).await;
    let mut served = Vec::new();
    for _ in 0..8 {
        let mut c = Client::connect(app.seneca_addr).await;
        assert!(c.call(json!({"cmd": "get_sessions"})).await["data"].is_array());
        served.push(c);
    }
    // The ninth connects (the backlog takes it) but is not served yet.
    let mut waiting = Client::connect(app.seneca_addr).await;
    let id = waiting.send(json!({"cmd": "get_sessions"}), true).await;
    assert!(
        waiting
            .try_reply(Duration::from_millis(500))
            .await
            .is_none(),
        "served beyond the maximum"
    );
    // Existing clients are still served meanwhile.
    for c in &mut served {
        assert!(c.call(json!({"cmd": "get_sessions"})).await["data"].is_array());
    }
    // One leaves: the waiting one is served, its request read from the backlog.
    drop(served.pop());
    let r = waiting.reply().await;
    assert_eq!(r["id"], id.as_str());
    assert!(r["res"]["data"].is_array());
}

/// A session as large as the limits allow: data and user of 64 KiB each.
async fn large_session(c: &mut Client) -> Value {
    let big = "d".repeat(64 * 1024 - 2);
    c.call(json!({"cmd": "open_session", "user_id": "big", "data": big, "user": big}))
        .await
}

/// Writes `lines` on its own task (the service may stop reading, so writing blocks);
/// returns the reading half and the writer's handle (which yields the bytes written).
fn pipeline(
    stream: TcpStream,
    lines: Vec<String>,
) -> (
    tokio::net::tcp::OwnedReadHalf,
    tokio::task::JoinHandle<usize>,
) {
    let (r, mut w) = stream.into_split();
    let writer = tokio::spawn(async move {
        let mut written = 0;
        for l in lines {
            if w.write_all(l.as_bytes()).await.is_err() {
                break;
            }
            written += l.len();
        }
        let _ = w.flush().await;
        // Keep the write half open until the replies have been read.
        tokio::time::sleep(Duration::from_secs(3600)).await;
        drop(w);
        written
    });
    (r, writer)
}

/// Reads `n` reply lines; returns their ids.
async fn read_replies(r: tokio::net::tcp::OwnedReadHalf, n: usize) -> HashSet<String> {
    let mut r = BufReader::with_capacity(1 << 20, r);
    let mut ids = HashSet::new();
    let mut buf = String::new();
    for _ in 0..n {
        buf.clear();
        let got = tokio::time::timeout(Duration::from_secs(30), r.read_line(&mut buf))
            .await
            .expect("replies keep coming")
            .expect("read");
        assert!(got > 0, "connection ended after {} replies", ids.len());
        let v: Value = serde_json::from_str(&buf).expect("reply is JSON");
        assert!(v.get("error").is_none(), "{}", &buf[..buf.len().min(500)]);
        assert!(
            ids.insert(v["id"].as_str().unwrap().to_string()),
            "one reply per id"
        );
    }
    ids
}

#[tokio::test]
async fn a_client_that_never_reads_replies_cannot_grow_memory() {
    // Default limits: what a deployment gets.
    let bin = Binary::start(&[]);
    let pid = bin.child.id();
    let mut c = Client::connect(bin.seneca_addr()).await;
    let s = large_session(&mut c).await;
    let before = rss(pid);

    // 3,000 reads of a 128 KiB session: 384 MiB of replies if they were all kept.
    let n = 3000;
    let lines: Vec<String> = (0..n)
        .map(|i| {
            line(
                &format!("never/{i}"),
                &json!({"cmd": "get_session_by_id", "session_id": s["id"]}),
                true,
            )
        })
        .collect();
    let stream = TcpStream::connect(bin.seneca_addr()).await.unwrap();
    let (reader, writer) = pipeline(stream, lines);
    let handled = settled(bin.admin_addr(), "sessions_requests_total").await;
    let grown = rss(pid).saturating_sub(before);
    assert!(
        handled < (n + 1) as f64,
        "the service stopped reading the connection"
    );
    assert!(grown < 64 * MIB, "grew {grown} bytes for unread replies");
    // Everybody else is served meanwhile, large sessions included.
    let mut other = Client::connect(bin.seneca_addr()).await;
    let got = other
        .call(json!({"cmd": "get_session_by_id", "session_id": s["id"]}))
        .await;
    assert_eq!(got["data"], s["data"]);
    // Once the client reads, every request is answered.
    let ids = read_replies(reader, n).await;
    assert_eq!(ids.len(), n);
    writer.abort();
    println!("non-reading client: {handled} requests handled while unread, RSS grew {grown} bytes");
}

#[tokio::test]
async fn bad_lines_from_a_client_that_never_reads_stay_bounded() {
    let bin = Binary::start(&[]);
    let pid = bin.child.id();
    let mut other = Client::connect(bin.seneca_addr()).await;
    assert!(other.call(json!({"cmd": "get_sessions"})).await["data"].is_array());
    let before = rss(pid);
    // Each bad line is answered with an error of about a kilobyte: 300,000 of them
    // would be 300 MiB if replies piled up.
    let bad = format!("{{\"id\":\"bad/1\",\"origin\":\"{ORIGIN}\",\"act\":{{\n");
    let lines = vec![bad; 300_000];
    let stream = TcpStream::connect(bin.seneca_addr()).await.unwrap();
    let (reader, writer) = pipeline(stream, lines);
    let seen = settled(bin.admin_addr(), "sessions_protocol_errors_total").await;
    let grown = rss(pid).saturating_sub(before);
    assert!(
        seen < 300_000.0,
        "the service stopped reading the connection"
    );
    assert!(
        grown < 64 * MIB,
        "grew {grown} bytes for unread error replies"
    );
    assert!(other.call(json!({"cmd": "get_sessions"})).await["data"].is_array());
    drop(reader);
    writer.abort();
    println!("non-reading client of bad lines: {seen} answered while unread, RSS grew {grown}");
}

#[tokio::test]
async fn ten_thousand_requests_in_flight_on_one_connection_are_all_answered() {
    let bin = Binary::start(&[("SESSIONS_MAX_IN_FLIGHT", "16")]);
    let mut c = Client::connect(bin.seneca_addr()).await;
    let s = c
        .call(json!({"cmd": "open_session", "user_id": "u", "data": "x".repeat(8 * 1024)}))
        .await;
    // 10,000 requests padded to 4 KiB: more than socket buffers hold, so the writer
    // must wait for the service, which reads only as it answers.
    let n = 10_000;
    let pad = "p".repeat(4096);
    let lines: Vec<String> = (0..n)
        .map(|i| {
            line(
                &format!("many/{i}"),
                &json!({"cmd": "get_session_by_id", "session_id": s["id"], "pad": pad}),
                true,
            )
        })
        .collect();
    let total: usize = lines.iter().map(String::len).sum();
    let stream = TcpStream::connect(bin.seneca_addr()).await.unwrap();
    let (reader, writer) = pipeline(stream, lines);
    let handled = settled(bin.admin_addr(), "sessions_requests_total").await;
    assert!(
        handled < n as f64,
        "{handled} handled before any reply was read"
    );
    assert!(
        !writer.is_finished(),
        "all {total} bytes taken while unread"
    );
    let ids = read_replies(reader, n).await;
    assert_eq!(ids.len(), n);
    writer.abort();
    println!("10,000 in flight: {handled} handled before the client read");
}

#[tokio::test]
async fn data_at_the_limit_passes_one_byte_over_is_data_too_large() {
    let app = common::spawn_app(&[
        ("SESSIONS_MAX_DATA_BYTES", "1024"),
        ("SESSIONS_MAX_LINE_BYTES", "4096"),
    ])
    .await;
    let mut c = Client::connect(app.seneca_addr).await;
    // A JSON string of n characters is n + 2 bytes.
    let at = "a".repeat(1022);
    let over = "a".repeat(1023);
    let s = c
        .call(json!({"cmd": "open_session", "user_id": "u", "data": at, "user": at}))
        .await;
    assert_eq!(s["data"], at.as_str());
    for (field, act) in [
        (
            "data",
            json!({"cmd": "open_session", "user_id": "u", "data": over}),
        ),
        (
            "user",
            json!({"cmd": "open_session", "user_id": "u", "user": over}),
        ),
        (
            "data",
            json!({"cmd": "store_session_data", "session_id": s["id"], "data": over}),
        ),
        (
            "user",
            json!({"cmd": "update_session_user", "session_id": s["id"], "user": over}),
        ),
    ] {
        let id = c.send(act, true).await;
        let r = c.reply().await;
        assert_eq!(r["id"], id.as_str());
        assert_eq!(r["error"]["orig"]["code"], "DATA_TOO_LARGE", "{r}");
        assert_eq!(r["error"]["orig"]["status"], 413);
        assert_eq!(r["error"]["orig"]["details"]["field"], field);
        assert_eq!(r["error"]["orig"]["details"]["size"], 1025);
    }
    // Measured as compact JSON: an object at exactly the limit passes too.
    let obj = json!({"k": "b".repeat(1024 - 8)});
    assert_eq!(serde_json::to_string(&obj).unwrap().len(), 1024);
    let r = c
        .call(json!({"cmd": "store_session_data", "session_id": s["id"], "data": obj}))
        .await;
    assert_eq!(r["data"], obj);

    // A request line of exactly the line limit is read; one byte more is not.
    let sized = |target: usize, id: &str| {
        let base = line(id, &json!({"cmd": "get_sessions", "pad": ""}), true);
        let pad = "p".repeat(target + 1 - base.len());
        line(id, &json!({"cmd": "get_sessions", "pad": pad}), true)
    };
    let exact = sized(4096, "line/at");
    assert_eq!(exact.len(), 4097, "4096 bytes and the newline");
    c.send_raw(exact.as_bytes()).await.unwrap();
    let r = c.reply().await;
    assert_eq!(r["id"], "line/at");
    assert!(r["res"]["data"].is_array(), "{r}");
    let long = sized(4097, "line/over");
    c.send_raw(long.as_bytes()).await.unwrap();
    let r = c.reply().await;
    assert_eq!(r["id"], "line/over");
    assert_eq!(r["error"]["orig"]["code"], "DATA_TOO_LARGE");
    assert_eq!(r["error"]["orig"]["status"], 413);
    // Its command is recognisable from its start: the error names the action, as a
    // command's own DATA_TOO_LARGE does.
    assert_eq!(
        r["error"]["message"],
        "seneca: Action cmd:get_sessions,role:sessions failed: request line is longer than 4096 bytes."
    );
}

/// A connection read as raw text, for replies whose exact bytes matter.
struct Raw {
    r: BufReader<tokio::net::tcp::OwnedReadHalf>,
    w: tokio::net::tcp::OwnedWriteHalf,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let (r, w) = TcpStream::connect(addr).await.unwrap().into_split();
        Raw {
            r: BufReader::new(r),
            w,
        }
    }

    async fn ask(&mut self, line: &str) -> String {
        self.w
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        let mut buf = String::new();
        tokio::time::timeout(Duration::from_secs(10), self.r.read_line(&mut buf))
            .await
            .expect("a reply")
            .unwrap();
        buf
    }
}

#[tokio::test]
async fn numbers_at_the_edges_round_trip_exactly() {
    let app = common::spawn_app(&[]).await;
    let mut raw = Raw::connect(app.seneca_addr).await;
    // Written as JSON.stringify writes them (Number.MAX_VALUE is `...e+308`).
    let edges = r#"{"max":1.7976931348623157e+308,"tiny":5e-324,"imin":-9223372036854775808,"imax":9223372036854775807,"umax":18446744073709551615,"neg":-0.0,"frac":0.1}"#;
    let reply = raw
        .ask(&format!(
            r#"{{"id":"num/1","kind":"act","origin":"{ORIGIN}","sync":true,"act":{{"role":"sessions","version":1,"cmd":"open_session","user_id":"u","data":{edges},"user":{edges}}}}}"#
        ))
        .await;
    // The reply carries the numbers in exactly the text a client sent.
    assert!(
        reply.contains(&format!(r#""user":{edges},"data":{edges}"#)),
        "{reply}"
    );
    let s: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(s["res"]["data"]["max"].as_f64(), Some(f64::MAX));
    assert_eq!(s["res"]["data"]["tiny"].as_f64(), Some(5e-324));
    assert_eq!(s["res"]["data"]["imin"].as_i64(), Some(i64::MIN));
    assert_eq!(s["res"]["data"]["umax"].as_u64(), Some(u64::MAX));
    let id = s["res"]["id"].as_str().unwrap().to_string();
    let reply = raw
        .ask(&format!(
            r#"{{"id":"num/2","kind":"act","origin":"{ORIGIN}","sync":true,"act":{{"role":"sessions","cmd":"get_session_by_id","session_id":"{id}"}}}}"#
        ))
        .await;
    assert!(reply.contains(&format!(r#""data":{edges}"#)), "{reply}");
    // The same numbers written without the `+` are the same numbers.
    let plain = edges.replace("e+308", "e308");
    let reply = raw
        .ask(&format!(
            r#"{{"id":"num/4","kind":"act","origin":"{ORIGIN}","sync":true,"act":{{"role":"sessions","cmd":"store_session_data","session_id":"{id}","data":{plain}}}}}"#
        ))
        .await;
    let r: Value = serde_json::from_str(&reply).unwrap();
    let want: Value = serde_json::from_str(edges).unwrap();
    assert_eq!(r["res"]["data"], want);

    // Past f64: not JSON a client can send, refused cleanly.
    let reply = raw
        .ask(&format!(
            r#"{{"id":"num/3","kind":"act","origin":"{ORIGIN}","sync":true,"act":{{"cmd":"open_session","role":"sessions","user_id":"u","data":1e309}}}}"#
        ))
        .await;
    let r: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(r["id"], "num/3");
    assert_eq!(r["error"]["orig"]["code"], "INVALID_DATA");

    // Edge numbers where the service reads them: paging and dates.
    let mut c = Client::connect(app.seneca_addr).await;
    for paging in [
        json!({"skip": -9223372036854775808i64, "take": 18446744073709551615u64}),
        json!({"skip": 9223372036854775807i64, "take": -9223372036854775808i64}),
        json!({"skip": 1.7976931348623157e308, "take": 1.7976931348623157e308}),
        json!({"skip": "18446744073709551615", "take": "-1"}),
    ] {
        let filter =
            json!({"from_time": -9223372036854775808i64, "to_time": 9223372036854775807i64});
        let r = c
            .call(json!({"cmd": "get_sessions", "paging": paging, "filter": filter}))
            .await;
        assert!(r["data"].is_array(), "{r}");
    }
    let id = c
        .send(
            json!({"cmd": "get_sessions", "paging": {"take": 5e-324}}),
            true,
        )
        .await;
    let r = c.reply().await;
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["error"]["orig"]["code"], "INVALID_DATA");
    assert_eq!(r["error"]["orig"]["details"]["field"], "paging.take");
}

#[tokio::test]
async fn strings_with_nul_and_emoji_round_trip_exactly() {
    let app = common::spawn_app(&[]).await;
    let mut c = Client::connect(app.seneca_addr).await;
    let odd = "nul:\u{0}|emoji:😀👩‍👩‍👧|rtl:\u{202e}|ls:\u{2028}|bom:\u{feff}|ctl:\u{1}\u{1f}|q:\"\\/";
    let data = json!({"s": odd, odd: [odd, {"k": odd}]});
    let s = c
        .call(json!({"cmd": "open_session", "user_id": odd, "user_name": odd, "address": odd, "client": odd, "data": data, "user": data}))
        .await;
    for key in ["user_id", "user_name", "address", "client"] {
        assert_eq!(s[key], odd, "{key}");
    }
    assert_eq!(s["data"], data);
    assert_eq!(s["user"], data);
    let data2 = json!([odd, "\u{0}", "😀"]);
    let stored = c
        .call(json!({"cmd": "store_session_data", "session_id": s["id"], "data": data2}))
        .await;
    assert_eq!(stored["data"], data2);
    let got = c
        .call(json!({"cmd": "get_session_by_id", "session_id": s["id"]}))
        .await;
    assert_eq!(got["data"], data2);
    assert_eq!(got["user"], data);
    assert_eq!(got["user_id"], odd);
    // And the user's sessions are found by that user id.
    let page = c
        .call(json!({"cmd": "get_sessions", "filter": {"user_id": odd}, "paging": {"total": true}}))
        .await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["data"][0]["id"], s["id"]);
}
