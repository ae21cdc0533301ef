//! Setup before measuring: opens the pool of sessions through one address with plain
//! open_session requests (pipelined in batches), and collects their ids. Not measured,
//! so replies are parsed fully and any failure stops the run with a clear message.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::conn::{connect, epoch_ms, make_origin};
use crate::scenario::{Cmd, PoolSpec, Pooled, Rng};
use crate::wire::RequestWriter;

/// Requests in flight during setup.
const BATCH: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("connection to {addr} failed during setup: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{addr} closed the connection during setup")]
    Closed { addr: SocketAddr },
    #[error("{addr} did not answer open_session within {timeout:?} during setup")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("{addr} refused open_session during setup: {code}: {message}")]
    Refused {
        addr: SocketAddr,
        code: String,
        message: String,
    },
    #[error("{addr} sent an unexpected setup reply: {what}")]
    BadReply { addr: SocketAddr, what: String },
    #[error("{0}")]
    Config(String),
}

/// Opens one session per spec through `addr` and returns them in the same order.
pub async fn open_pool(
    addr: SocketAddr,
    specs: &[&PoolSpec],
    timeout: Duration,
    seed: u64,
) -> Result<Vec<Pooled>, SetupError> {
    let stream = connect(addr)
        .await
        .map_err(|source| SetupError::Connect { addr, source })?;
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd).lines();
    let mut rng = Rng::new(seed);
    let writer = RequestWriter::new(&make_origin(&mut rng));
    let mut out: Vec<Option<Pooled>> = vec![None; specs.len()];
    let mut buf = Vec::new();
    let mut seq = 0u64;
    for (chunk_no, chunk) in specs.chunks(BATCH).enumerate() {
        buf.clear();
        // message id -> index into `specs`
        let mut waiting = HashMap::with_capacity(chunk.len());
        for (i, spec) in chunk.iter().enumerate() {
            seq += 1;
            let cid = rng.next_u64();
            writer.begin(&mut buf, seq, cid, epoch_ms(), Cmd::Open.wire_name());
            buf.extend_from_slice(&spec.open_args);
            writer.end(&mut buf, seq, cid);
            let mut id = Vec::new();
            crate::wire::push_base36(&mut id, seq);
            id.push(b'/');
            crate::wire::push_base36(&mut id, cid);
            waiting.insert(
                String::from_utf8_lossy(&id).into_owned(),
                chunk_no * BATCH + i,
            );
        }
        wr.write_all(&buf)
            .await
            .map_err(|source| SetupError::Io { addr, source })?;
        while !waiting.is_empty() {
            let line = tokio::time::timeout(timeout, lines.next_line())
                .await
                .map_err(|_| SetupError::Timeout { addr, timeout })?
                .map_err(|source| SetupError::Io { addr, source })?
                .ok_or(SetupError::Closed { addr })?;
            if line.trim().is_empty() {
                continue;
            }
            let (id, session_id) = session_of(&line, writer.origin(), addr)?;
            let idx = waiting.remove(&id).ok_or_else(|| SetupError::BadReply {
                addr,
                what: format!("reply for unknown id {id}"),
            })?;
            out[idx] = Some(Pooled::new(specs[idx], &session_id));
        }
    }
    Ok(out.into_iter().flatten().collect())
}

/// Reads an open_session reply: its message id and the new session's id.
fn session_of(line: &str, origin: &str, addr: SocketAddr) -> Result<(String, String), SetupError> {
    let bad = |what: String| SetupError::BadReply { addr, what };
    let v: Value = serde_json::from_str(line).map_err(|e| bad(format!("not JSON ({e})")))?;
    let id = v["id"].as_str().ok_or_else(|| bad("no id".into()))?;
    if v["kind"] != "res" || v["origin"] != origin {
        return Err(bad(format!("wrong kind or origin in {line}")));
    }
    let err = &v["error"];
    if !(err.is_null() || err == false) {
        let code = err["orig"]["code"]
            .as_str()
            .or(err["code"].as_str())
            .unwrap_or("error");
        return Err(SetupError::Refused {
            addr,
            code: code.to_owned(),
            message: err["message"].as_str().unwrap_or("").to_owned(),
        });
    }
    let sid = v["res"]["id"]
        .as_str()
        .ok_or_else(|| bad(format!("open_session result without an id: {line}")))?;
    Ok((id.to_owned(), sid.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "abc/1/2/3.38.0/-";

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[test]
    fn reads_the_session_id() {
        let line = r#"{"id":"m/c","kind":"res","origin":"abc/1/2/3.38.0/-","res":{"id":"0123abcd","user_id":"u"}}"#;
        let (id, sid) = session_of(line, O, addr()).unwrap();
        assert_eq!((id.as_str(), sid.as_str()), ("m/c", "0123abcd"));
    }

    #[test]
    fn errors_and_odd_replies_fail_setup() {
        let line = r#"{"id":"m/c","kind":"res","origin":"abc/1/2/3.38.0/-","res":null,"error":{"code":"act_execute","orig":{"code":"INVALID_DATA"},"message":"user_id"}}"#;
        match session_of(line, O, addr()) {
            Err(SetupError::Refused { code, .. }) => assert_eq!(code, "INVALID_DATA"),
            other => panic!("{other:?}"),
        }
        for line in [
            r#"{"id":"m/c","kind":"res","origin":"abc/1/2/3.38.0/-","res":null}"#,
            r#"{"id":"m/c","kind":"res","origin":"other","res":{"id":"x"}}"#,
            "nonsense",
        ] {
            assert!(
                matches!(
                    session_of(line, O, addr()),
                    Err(SetupError::BadReply { .. })
                ),
                "{line}"
            );
        }
    }
}
