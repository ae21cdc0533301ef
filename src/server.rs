//! The Seneca TCP listener: accepts connections up to the configured maximum
//! (beyond it new clients wait in the listen backlog), serves each on its own task,
//! and drains on shutdown: stop accepting, let connections answer what they have
//! read, and wait for them up to the grace period.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::connection::{self, ConnLimits};
use crate::service::Service;

/// Watches connections come and go, for metrics.
pub trait ConnObserver: Send + Sync {
    fn opened(&self) {}
    fn closed(&self, _reason: connection::CloseReason) {}
}

/// Ignores connection events.
pub struct NoConnObserver;
impl ConnObserver for NoConnObserver {}

pub struct ServerLimits {
    pub max_connections: usize,
    pub conn: ConnLimits,
}

/// Runs the accept loop until `shutdown` fires, then drains. Returns whether every
/// connection finished within `grace`.
pub async fn run(
    listener: TcpListener,
    service: Arc<Service>,
    limits: ServerLimits,
    observer: Arc<dyn ConnObserver>,
    shutdown: CancellationToken,
    grace: Duration,
) -> bool {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let tracker = TaskTracker::new();
    loop {
        // Take a slot before accepting: at the limit, clients queue in the backlog
        // and existing connections keep being served.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually out of file descriptors: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = service.clone();
        let observer = observer.clone();
        let shutdown = shutdown.clone();
        let conn_limits = limits.conn;
        tracker.spawn(async move {
            observer.opened();
            tracing::info!(peer = %peer, "connection opened");
            let reason = connection::serve(stream, service, conn_limits, shutdown).await;
            tracing::info!(peer = %peer, reason = reason.label(), "connection closed");
            observer.closed(reason);
            drop(permit);
        });
    }
    drop(listener);
    tracker.close();
    tokio::time::timeout(grace, tracker.wait()).await.is_ok()
}
