//! A store-level write load for failover tests (the wire-level one is `load.rs`):
//! workers that open sessions and rewrite their data while recording what Redis
//! acknowledged, and probes that tell when every bucket (so every slot) is readable
//! and writable again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::value::RawValue;
use sessions::model::{bucket_of_user, JsonText, Millis, BUCKETS};
use sessions::store::redis::RedisStore;
use sessions::store::{OpenRequest, Store, StoreError};

pub fn now() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

pub fn json(s: &str) -> JsonText {
    RawValue::from_string(s.to_owned()).unwrap()
}

pub fn open_req(user: &str, t: Millis) -> OpenRequest {
    OpenRequest {
        user_id: user.to_owned(),
        user_name: None,
        address: Some("10.0.0.1".into()),
        client: Some("failover-test".into()),
        user: None,
        data: Some(json(r#"{"v":0}"#)),
        reuse: true,
        at: super::at(t),
        cap: Default::default(),
    }
}

/// One user id per bucket, so a loop over them touches every slot the store uses.
pub fn user_per_bucket(tag: &str) -> Vec<String> {
    let mut found: Vec<Option<String>> = vec![None; usize::from(BUCKETS)];
    let mut i = 0u64;
    while found.iter().any(Option::is_none) {
        let u = format!("{tag}-{i}");
        let b = usize::from(bucket_of_user(&u));
        if found[b].is_none() {
            found[b] = Some(u);
        }
        i += 1;
    }
    found.into_iter().flatten().collect()
}

/// What a load worker knows of a session it wrote: the last `v` Redis acknowledged,
/// and the highest it attempted (an attempt that failed may still have been applied).
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub acked: u64,
    pub attempted: u64,
}

/// Asserts that every session of `written` reads back through `reader` with data
/// between what was acknowledged and what was attempted (an attempt that failed on
/// the wire may still have been applied); returns how many were checked.
pub async fn assert_acknowledged(
    reader: &RedisStore,
    written: &Mutex<HashMap<String, Written>>,
) -> usize {
    let written = written.lock().unwrap().clone();
    assert!(written.len() > 10, "the load wrote sessions");
    for (id, w) in &written {
        let got = reader
            .get(id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("acknowledged session {id} lost"));
        let v: serde_json::Value = serde_json::from_str(got.data.unwrap().get()).unwrap();
        let v = v["v"].as_u64().unwrap();
        assert!(
            (w.acked..=w.attempted).contains(&v),
            "session {id}: data v={v}, acknowledged {w:?}"
        );
    }
    written.len()
}

#[derive(Default)]
pub struct Outcomes {
    pub ok: AtomicU64,
    pub unavailable: AtomicU64,
    /// Reads right after an acknowledged write that did not see it (the write was
    /// taken by a primary that was being replaced, and lost).
    pub stale_reads: AtomicU64,
    /// Anything but Unavailable: must stay empty.
    pub other: Mutex<Vec<String>>,
    /// When the last failed call ended.
    pub last_failure: Mutex<Option<Instant>>,
}

impl Outcomes {
    pub fn record<T>(&self, r: &Result<T, StoreError>) -> bool {
        match r {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(StoreError::Unavailable(_)) => {
                self.unavailable.fetch_add(1, Ordering::Relaxed);
                *self.last_failure.lock().unwrap() = Some(Instant::now());
                false
            }
            Err(e) => {
                self.other.lock().unwrap().push(e.to_string());
                *self.last_failure.lock().unwrap() = Some(Instant::now());
                false
            }
        }
    }
}

/// Opens sessions and rewrites their data in a loop until `stop`, recording what
/// was acknowledged.
pub async fn load(
    s: Arc<RedisStore>,
    worker: usize,
    stop: Arc<AtomicBool>,
    out: Arc<Outcomes>,
    written: WrittenMap,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let user = format!("load-{worker}-{n}");
        let opened = s.open(open_req(&user, now())).await;
        if !out.record(&opened) {
            continue;
        }
        let id = opened.unwrap().session.id;
        written.lock().unwrap().insert(
            id.clone(),
            Written {
                acked: 0,
                attempted: 0,
            },
        );
        for v in 1..=3u64 {
            if let Some(w) = written.lock().unwrap().get_mut(&id) {
                w.attempted = v;
            }
            let r = s
                .store_data(
                    &id,
                    Some(json(&format!(r#"{{"v":{v}}}"#))),
                    super::at(now()),
                )
                .await;
            if out.record(&r) {
                if let Some(w) = written.lock().unwrap().get_mut(&id) {
                    w.acked = v;
                }
                let back = s.get(&id).await;
                if out.record(&back) {
                    let data = back.ok().flatten().and_then(|s| s.data);
                    if data.map(|d| d.get().to_owned()) != Some(format!(r#"{{"v":{v}}}"#)) {
                        out.stale_reads.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }
}

/// Opens one session in every bucket: succeeds only when every slot the store uses
/// takes writes.
pub async fn probe_every_bucket(s: &RedisStore, users: &[String]) -> bool {
    for u in users {
        if s.open(open_req(u, now())).await.is_err() {
            return false;
        }
    }
    true
}

/// Reads one session in every bucket: succeeds only when every slot is served.
pub async fn read_every_bucket(s: &RedisStore, ids: &[String]) -> bool {
    for id in ids {
        if !matches!(s.get(id).await, Ok(Some(_))) {
            return false;
        }
    }
    true
}

/// Sessions a load wrote, by id.
pub type WrittenMap = Arc<Mutex<HashMap<String, Written>>>;

/// A running load: its outcomes, what it wrote, its workers.
pub struct Load {
    pub out: Arc<Outcomes>,
    pub written: WrittenMap,
    pub workers: Vec<tokio::task::JoinHandle<()>>,
}

pub fn spawn_load(s: &Arc<RedisStore>, workers: usize, stop: &Arc<AtomicBool>) -> Load {
    let out = Arc::new(Outcomes::default());
    let written: WrittenMap = Arc::new(Mutex::new(HashMap::new()));
    let workers = (0..workers)
        .map(|w| {
            tokio::spawn(load(
                s.clone(),
                w,
                stop.clone(),
                out.clone(),
                written.clone(),
            ))
        })
        .collect();
    Load {
        out,
        written,
        workers,
    }
}

pub fn since(t: Instant, at: Option<Instant>) -> String {
    at.map(|a| format!("{:.2}s", a.saturating_duration_since(t).as_secs_f64()))
        .unwrap_or_else(|| "-".into())
}
