//! Fuzzes the Seneca message format: any line through `protocol::parse_line` and
//! `protocol::identify`, then every kind of reply written for it. Every reply must be
//! exactly one JSON object on one `\n`-terminated line that echoes the request's id,
//! origin, track and client_sent, and a session's `data` and `user` must come back
//! exactly as sent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::value::{to_raw_value, RawValue};
use serde_json::{Map, Value};
use sessions::commands::{CommandError, Output};
use sessions::model::Session;
use sessions::protocol::{self, Echo, Failure, ProtocolErrorKind, ReplyMeta};

const META: ReplyMeta<'static> = ReplyMeta {
    accept: "fuzz/1/2/0.1.0/sessions",
    listen_recv: 1,
    listen_sent: 2,
};

/// Parses a reply line and checks the envelope around what it echoes.
fn reply(out: &[u8], echo: &Echo) -> Map<String, Value> {
    assert_eq!(out.last(), Some(&b'\n'), "a reply ends with a newline");
    assert_eq!(
        out.iter().filter(|b| **b == b'\n').count(),
        1,
        "a reply is one line"
    );
    let v: Value = serde_json::from_slice(out).expect("a reply is JSON");
    let Value::Object(m) = v else {
        panic!("a reply is an object");
    };
    assert_eq!(m["kind"], "res");
    assert_eq!(m["sync"], true);
    let same = |key: &str, raw: &Option<Box<RawValue>>| match raw {
        Some(raw) => {
            let want: Value = serde_json::from_str(raw.get()).expect("echo is JSON");
            assert_eq!(m.get(key), Some(&want), "{key} echoed");
        }
        None => assert!(m.get(key).is_none()),
    };
    same("id", &echo.id);
    same("origin", &echo.origin);
    same("track", &echo.track);
    match &echo.client_sent {
        Some(raw) => {
            let want: Value = serde_json::from_str(raw.get()).expect("echo is JSON");
            assert_eq!(m["time"]["client_sent"], want);
        }
        None => assert!(m["time"].get("client_sent").is_none()),
    }
    m
}

fn string(act: &Map<String, Value>, key: &str) -> Option<String> {
    act.get(key).and_then(Value::as_str).map(str::to_string)
}

fn session_from(act: &Map<String, Value>) -> Session {
    let raw = |key: &str| act.get(key).and_then(|v| to_raw_value(v).ok());
    Session {
        id: "00112233445566778899aabbccddeeff".into(),
        user_id: string(act, "user_id").unwrap_or_default(),
        user_name: string(act, "user_name"),
        active: true,
        open_time: act.get("open_time").and_then(Value::as_i64).unwrap_or(0),
        request_time: 0,
        close_time: None,
        address: string(act, "address"),
        client: string(act, "client"),
        user: raw("user"),
        data: raw("data"),
    }
}

fuzz_target!(|data: &[u8]| {
    // The sender recogniser sees any bytes (the start of over-long lines).
    if let Some(echo) = protocol::identify(data) {
        let mut out = Vec::new();
        let failure = Failure::Protocol {
            kind: ProtocolErrorKind::LineTooLong,
            max_line_bytes: 4096,
            cmd: protocol::identify_cmd(data),
        };
        protocol::write_error(&mut out, &echo, &META, &failure);
        reply(&out, &echo);
    }
    match protocol::parse_line(data) {
        Ok(req) => {
            // Success with a session built from the act: data and user round-trip.
            let session = session_from(&req.act);
            let mut out = Vec::new();
            protocol::write_ok(&mut out, &req.echo, &META, &Output::Session(session));
            let m = reply(&out, &req.echo);
            for key in ["data", "user"] {
                let sent = req.act.get(key).cloned().unwrap_or(Value::Null);
                assert_eq!(m["res"][key], sent, "{key} round-trips");
            }
            for key in ["user_id", "user_name", "address", "client"] {
                if let Some(s) = string(&req.act, key) {
                    assert_eq!(m["res"][key], s, "{key} round-trips");
                }
            }
            // Not found, and a command error carrying the act's correlation id.
            let mut out = Vec::new();
            let failure = Failure::NotFound { act: &req.act };
            protocol::write_error(&mut out, &req.echo, &META, &failure);
            let m = reply(&out, &req.echo);
            assert_eq!(m["error"]["code"], "act_not_found");
            let error = CommandError::invalid("user_id", "user_id is required");
            let mut out = Vec::new();
            let failure = Failure::Command {
                cmd: "open_session",
                error: &error,
                correlation_id: sessions::commands::correlation_id(&req.act),
            };
            protocol::write_error(&mut out, &req.echo, &META, &failure);
            let m = reply(&out, &req.echo);
            assert_eq!(m["error"]["orig"]["code"], "INVALID_DATA");
        }
        Err(bad) => {
            if let Some(echo) = bad.echo {
                let mut out = Vec::new();
                let failure = Failure::Protocol {
                    kind: bad.kind,
                    max_line_bytes: 4096,
                    cmd: bad.cmd,
                };
                protocol::write_error(&mut out, &echo, &META, &failure);
                reply(&out, &echo);
            }
        }
    }
});
