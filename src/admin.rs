//! The admin HTTP port: `GET /metrics` (Prometheus text), `GET /live` and `GET /ready`,
//! plus the [`Health`] flags readiness is computed from and the background task that
//! keeps the store flag current.
//!
//! Readiness means "send me traffic": the Seneca listener is up, the store answered
//! its last health check, and the process is not draining. Liveness means only "the
//! process answers HTTP"; it never looks at the store, so a Redis outage makes pods
//! unready instead of getting them restarted.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::metrics::Metrics;
use crate::store::Store;

/// Why the process is not ready, in the order they are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotReady {
    /// Shutting down: finishing in-flight requests, taking no new ones.
    Draining,
    /// The Seneca TCP listener is not accepting.
    NotListening,
    /// The store did not answer its last health check in time.
    StoreDown,
}

impl NotReady {
    /// The short reason `/ready` answers with.
    pub fn reason(self) -> &'static str {
        match self {
            NotReady::Draining => "draining",
            NotReady::NotListening => "seneca listener not up",
            NotReady::StoreDown => "store not answering",
        }
    }
}

#[derive(Debug, Default)]
struct Flags {
    listening: AtomicBool,
    draining: AtomicBool,
    store_ok: AtomicBool,
}

/// The flags readiness is computed from. Cheap to clone; clones share the flags.
/// Starts not ready: not listening, store not yet checked.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<Flags>);

impl Health {
    pub fn new() -> Health {
        Health::default()
    }

    /// Whether the Seneca listener is accepting connections.
    pub fn set_listening(&self, up: bool) {
        self.0.listening.store(up, Ordering::Release);
    }

    /// Marks the process as draining; there is no way back (shutdown has begun).
    pub fn set_draining(&self) {
        self.0.draining.store(true, Ordering::Release);
    }

    /// Whether the store answered its last health check.
    pub fn set_store_ok(&self, ok: bool) {
        self.0.store_ok.store(ok, Ordering::Release);
    }

    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::Acquire)
    }

    /// `Ok` when ready, else the first reason it is not.
    pub fn readiness(&self) -> Result<(), NotReady> {
        if self.is_draining() {
            Err(NotReady::Draining)
        } else if !self.0.listening.load(Ordering::Acquire) {
            Err(NotReady::NotListening)
        } else if !self.0.store_ok.load(Ordering::Acquire) {
            Err(NotReady::StoreDown)
        } else {
            Ok(())
        }
    }

    pub fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }
}

/// Pings the store every `interval` (the first time at once), each ping bounded by
/// `interval` as its timeout, and keeps `health`'s store flag and the
/// `sessions_store_up` gauge current. Logs only when the state changes. Runs until
/// the task is dropped or aborted.
pub async fn watch_store<S: Store>(
    store: Arc<S>,
    health: Health,
    metrics: Arc<Metrics>,
    interval: Duration,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_ok: Option<bool> = None;
    loop {
        ticker.tick().await;
        let (ok, why) = match tokio::time::timeout(interval, store.ping()).await {
            Ok(Ok(())) => (true, String::new()),
            Ok(Err(e)) => (false, e.to_string()),
            Err(_) => (false, format!("no answer within {interval:?}")),
        };
        health.set_store_ok(ok);
        metrics.set_store_up(ok);
        if was_ok != Some(ok) {
            if ok {
                tracing::info!("store answering");
            } else {
                tracing::warn!(reason = %why, "store not answering; reporting not ready");
            }
            was_ok = Some(ok);
        }
    }
}

#[derive(Clone)]
struct AdminState {
    health: Health,
    metrics: Arc<Metrics>,
}

/// The admin routes, for embedding or testing without a socket.
pub fn router(health: Health, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/live", get(live_handler))
        .route("/ready", get(ready_handler))
        .with_state(AdminState { health, metrics })
}

/// Serves the admin routes on `listener` until `shutdown` completes, then finishes
/// the requests under way and returns.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Health,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(health, metrics))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_handler(State(st): State<AdminState>) -> Response {
    // Rendering walks every series; off the async workers so a slow scrape never
    // delays request handling on the same runtime.
    let metrics = st.metrics.clone();
    match tokio::task::spawn_blocking(move || metrics.render()).await {
        Ok(body) => ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics rendering failed\n",
        )
            .into_response(),
    }
}

async fn live_handler() -> &'static str {
    "live\n"
}

async fn ready_handler(State(st): State<AdminState>) -> Response {
    match st.health.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", why.reason()),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Faulty;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A plain HTTP/1.1 GET over a real socket: (status, headers, body).
    async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.unwrap();
        let text = String::from_utf8(buf).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_ascii_lowercase(), body.to_owned())
    }

    async fn start() -> (
        std::net::SocketAddr,
        Health,
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health = Health::new();
        let metrics = Arc::new(Metrics::new().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, health.clone(), metrics, async {
            let _ = rx.await;
        }));
        (addr, health, tx, task)
    }

    #[tokio::test]
    async fn ready_follows_every_flag() {
        let (addr, health, stop, task) = start().await;

        assert_eq!(http_get(addr, "/live").await.0, 200);
        let (status, _, body) = http_get(addr, "/ready").await;
        assert_eq!(
            (status, body.as_str()),
            (503, "not ready: seneca listener not up\n")
        );

        health.set_listening(true);
        let (status, _, body) = http_get(addr, "/ready").await;
        assert_eq!(
            (status, body.as_str()),
            (503, "not ready: store not answering\n")
        );

        health.set_store_ok(true);
        assert_eq!(http_get(addr, "/ready").await.0, 200);

        health.set_store_ok(false);
        assert_eq!(http_get(addr, "/ready").await.0, 503);
        health.set_store_ok(true);

        health.set_draining();
        let (status, _, body) = http_get(addr, "/ready").await;
        assert_eq!((status, body.as_str()), (503, "not ready: draining\n"));
        assert_eq!(
            http_get(addr, "/live").await.0,
            200,
            "draining is still live"
        );

        assert_eq!(http_get(addr, "/nope").await.0, 404);

        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
        assert!(
            tokio::net::TcpStream::connect(addr).await.is_err(),
            "listener closed after shutdown"
        );
    }

    #[tokio::test]
    async fn metrics_endpoint_serves_text_format() {
        let (addr, _health, stop, task) = start().await;
        let (status, head, body) = http_get(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            head.contains("content-type: text/plain; version=0.0.4"),
            "{head}"
        );
        assert!(body.contains("# TYPE sessions_requests_total counter"));
        assert!(body.contains("sessions_build_info"));
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }

    /// Waits (bounded) until the store flag reaches `want`.
    async fn until_store_ok(health: &Health, want: bool) {
        for _ in 0..500 {
            if (health.readiness() != Err(NotReady::StoreDown)) == want {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("store flag never became {want}");
    }

    #[tokio::test]
    async fn watch_store_tracks_ping_errors_and_hangs() {
        let store = Arc::new(Faulty::default());
        let health = Health::new();
        health.set_listening(true);
        let metrics = Arc::new(Metrics::new().unwrap());
        let task = tokio::spawn(watch_store(
            store.clone(),
            health.clone(),
            metrics.clone(),
            Duration::from_millis(20),
        ));

        until_store_ok(&health, true).await;
        assert!(metrics.render().contains("\nsessions_store_up 1\n"));

        store.set_down(true);
        until_store_ok(&health, false).await;
        assert!(metrics.render().contains("\nsessions_store_up 0\n"));

        store.set_down(false);
        until_store_ok(&health, true).await;

        // A ping that never answers must count as down, not block the watcher.
        store.set_hang(true);
        until_store_ok(&health, false).await;

        task.abort();
    }
}
