//! Fuzzes routing and argument validation of every command: request lines (one or
//! more, `\n`-separated) run through the service against a fresh embedded store, as
//! a connection would run them. A string argument `"$S"` stands for the id of the
//! last session opened, so inputs reach sessions that exist. Checks that nothing
//! panics, that the embedded store never fails (only argument errors come back), and
//! that every reply fits the size the memory budget reserved for it.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use sessions::budget::{request_cost, PARSE_FACTOR};
use sessions::commands::{self, Context};
use sessions::config::Config;
use sessions::metrics::Metrics;
use sessions::protocol;
use sessions::service::{NoObserver, Service};
use sessions::store::memory::MemoryStore;
use sessions::store::AnyStore;

struct Fixed {
    runtime: tokio::runtime::Runtime,
    metrics: Arc<Metrics>,
    cfg: Config,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        // Small limits, so inputs reach them.
        let env: HashMap<&str, &str> = [
            ("SESSIONS_MAX_DATA_BYTES", "64"),
            ("SESSIONS_MAX_FIELD_BYTES", "32"),
            ("SESSIONS_MAX_LINE_BYTES", "4096"),
            ("SESSIONS_MAX_TAKE", "5"),
        ]
        .into_iter()
        .collect();
        Fixed {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime"),
            metrics: Arc::new(Metrics::new().expect("metrics")),
            cfg: Config::from_source(&env).expect("config"),
        }
    })
}

fn service(f: &Fixed) -> Service {
    let cfg = &f.cfg;
    Service {
        ctx: Context {
            store: Arc::new(AnyStore::Memory(MemoryStore::new())),
            limits: commands::Limits {
                max_data_bytes: cfg.max_data_bytes,
                max_field_bytes: cfg.max_field_bytes,
                max_take: cfg.max_take,
            },
            reuse: cfg.reuse,
            sweep: cfg.sweep(),
            cap: cfg.max_per_user,
            request_timeout: Duration::from_secs(60),
            metrics: f.metrics.clone(),
            clock: sessions::clock::Clock::system(),
        },
        accept: "fuzz/1/2/0.1.0/sessions".into(),
        max_line_bytes: cfg.max_line_bytes,
        observer: Arc::new(NoObserver),
    }
}

/// Replaces every string `"$S"` in the act's top level and one level down.
fn substitute(act: &mut Map<String, Value>, last: &str) {
    for v in act.values_mut() {
        match v {
            Value::String(s) if s == "$S" => *s = last.to_string(),
            Value::Object(m) => {
                for v in m.values_mut() {
                    if let Value::String(s) = v {
                        if s == "$S" {
                            *s = last.to_string();
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixed();
    let svc = service(f);
    let mut last = String::from("00112233445566778899aabbccddeeff");
    let mut opened = std::collections::HashSet::new();
    for line in data.split(|b| *b == b'\n').take(16) {
        let Ok(mut req) = protocol::parse_line(line) else {
            continue;
        };
        substitute(&mut req.act, &last);
        let act = req.act.clone();
        let sessions = commands::reply_sessions(&act, &svc.ctx.limits);
        req.sync = true;
        let Some(out) = f.runtime.block_on(svc.handle(req, 0)) else {
            panic!("a sync request is answered");
        };
        // The reply fits what the budget reserved, less the parsed request.
        let reserved =
            request_cost(line.len(), sessions, &svc.ctx.limits) - PARSE_FACTOR * line.len();
        assert!(
            out.len() <= reserved,
            "reply of {} bytes over the {reserved} reserved",
            out.len()
        );
        let reply: Value = serde_json::from_slice(&out).expect("reply is JSON");
        if let Some(err) = reply.get("error") {
            let code = &err["orig"]["code"];
            assert!(
                err["code"] == "act_not_found"
                    || code == "INVALID_DATA"
                    || code == "DATA_TOO_LARGE"
                    || code == "SESSION_CLOSED",
                "unexpected error {err}"
            );
            continue;
        }
        let res = &reply["res"];
        if let Some(page) = res.get("data").and_then(Value::as_array) {
            if res.get("total").is_some() {
                assert!(page.len() <= sessions, "page larger than its take");
            }
        }
        if act.get("cmd").and_then(Value::as_str) == Some("open_session") {
            last = res["id"]
                .as_str()
                .expect("opened session has an id")
                .to_string();
            assert_eq!(last.len(), 32);
            assert_eq!(res["user_id"], act["user_id"]);
            // A new session holds what was sent; a reused one keeps its own.
            if opened.insert(last.clone()) {
                for key in ["data", "user"] {
                    assert_eq!(res[key], act.get(key).cloned().unwrap_or(Value::Null));
                }
            }
        }
    }
});
