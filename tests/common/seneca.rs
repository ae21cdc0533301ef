//! A raw Seneca TCP client for tests: writes request lines shaped like a real
//! seneca-transport client's and reads reply lines.

use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

pub const ORIGIN: &str = "q4vv8v2egusy/1795771379897/9928/3.38.0/-";

pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    next: u64,
}

/// A request line for `act`, with the given id and sync flag.
pub fn line(id: &str, act: &Value, sync: bool) -> String {
    let mut act = act.clone();
    if let Some(m) = act.as_object_mut() {
        m.entry("role").or_insert(json!("sessions"));
        m.entry("version").or_insert(json!(1));
        m.insert("custom$".into(), json!({}));
    }
    let msg = json!({
        "id": id,
        "kind": "act",
        "origin": ORIGIN,
        "track": [ORIGIN],
        "time": {"client_sent": 1795771380098u64},
        "act": act,
        "sync": sync,
        "msg$": {"vin": 1, "sid": ORIGIN, "out": true, "mid": "x", "cid": "y", "snc": sync, "pat": ""}
    });
    format!("{msg}\n")
}

impl Client {
    pub async fn connect(addr: std::net::SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (r, w) = stream.into_split();
        Client {
            reader: BufReader::new(r),
            writer: w,
            next: 0,
        }
    }

    pub fn next_id(&mut self) -> String {
        self.next += 1;
        format!("t{:011}/{:012}", self.next, self.next)
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(bytes).await
    }

    /// Sends an act; returns its id.
    pub async fn send(&mut self, act: Value, sync: bool) -> String {
        let id = self.next_id();
        self.send_raw(line(&id, &act, sync).as_bytes())
            .await
            .expect("write");
        id
    }

    /// Reads one reply line (panics after 10 s or at end of stream).
    pub async fn reply(&mut self) -> Value {
        match self.try_reply(Duration::from_secs(10)).await {
            Some(v) => v,
            None => panic!("no reply"),
        }
    }

    /// Reads one reply line, or None at end of stream / after `wait`.
    pub async fn try_reply(&mut self, wait: Duration) -> Option<Value> {
        let mut buf = String::new();
        match tokio::time::timeout(wait, self.reader.read_line(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                assert!(buf.ends_with('\n'), "reply ends with a newline");
                Some(serde_json::from_str(&buf).expect("reply is JSON"))
            }
            _ => None,
        }
    }

    /// True once the server has closed the connection (read returns 0 or fails).
    pub async fn closed(&mut self, wait: Duration) -> bool {
        let mut buf = String::new();
        loop {
            buf.clear();
            match tokio::time::timeout(wait, self.reader.read_line(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    /// Sends an act and waits for its reply; returns `res` or panics on an error.
    pub async fn call(&mut self, act: Value) -> Value {
        let id = self.send(act, true).await;
        let r = self.reply().await;
        assert_eq!(r["id"], id.as_str());
        assert!(r.get("error").is_none(), "unexpected error {r}");
        r["res"].clone()
    }
}
