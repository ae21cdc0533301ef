//! Assembles the service from its configuration: the store, the command context,
//! the listener; and runs it until shutdown. Used by `main` and by tests, which
//! start a whole service on free ports in-process.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::commands::{Context, Limits, NoEvents, Sweep};
use crate::config::Config;
use crate::connection::ConnLimits;
use crate::server::{self, NoConnObserver, ServerLimits};
use crate::service::{NoObserver, Service};
use crate::store::memory::MemoryStore;
use crate::store::AnyStore;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot use the store: {0}")]
    Store(String),
}

/// A running service.
pub struct App {
    /// Where the Seneca listener really is (port 0 resolved).
    pub seneca_addr: SocketAddr,
    pub store: Arc<AnyStore>,
    shutdown: CancellationToken,
    server: JoinHandle<bool>,
}

impl App {
    /// Starts shutting down: stop accepting, drain connections.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// A token that, once cancelled, shuts the service down.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the service has stopped; true when every connection drained in time.
    pub async fn wait(self) -> bool {
        self.server.await.unwrap_or(false)
    }
}

/// Builds the store the configuration asks for.
pub fn build_store(cfg: &Config) -> Result<AnyStore, StartError> {
    match &cfg.redis_url {
        None => {
            tracing::warn!(
                "REDIS_URL is not set: using the embedded in-process store; sessions live \
                 in this process only, so run a single replica"
            );
            Ok(AnyStore::Memory(MemoryStore::new()))
        }
        Some(_) => Err(StartError::Store(
            "the Redis store is not available in this build".into(),
        )),
    }
}

/// Starts the service on the configured addresses.
pub async fn start(cfg: Config) -> Result<App, StartError> {
    let store = Arc::new(build_store(&cfg)?);
    start_with_store(cfg, store).await
}

/// Starts the service on a store built by the caller.
pub async fn start_with_store(cfg: Config, store: Arc<AnyStore>) -> Result<App, StartError> {
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let seneca_addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: cfg.listen,
        source,
    })?;
    let ctx = Context {
        store: store.clone(),
        limits: Limits {
            max_data_bytes: cfg.max_data_bytes,
            max_field_bytes: cfg.max_field_bytes,
            max_take: cfg.max_take,
        },
        reuse: cfg.reuse,
        sweep: Sweep {
            idle_timeout: cfg.idle_timeout,
            retention: cfg.retention,
            batch: cfg.sweep_batch,
        },
        request_timeout: cfg.request_timeout,
        events: Arc::new(NoEvents),
    };
    let service = Arc::new(Service {
        ctx,
        accept: Service::instance_id(),
        max_line_bytes: cfg.max_line_bytes,
        observer: Arc::new(NoObserver),
    });
    let shutdown = CancellationToken::new();
    let limits = ServerLimits {
        max_connections: cfg.max_connections,
        conn: ConnLimits {
            max_line_bytes: cfg.max_line_bytes,
            max_in_flight: cfg.max_in_flight,
        },
    };
    tracing::info!(addr = %seneca_addr, "listening for Seneca clients");
    let server = tokio::spawn(server::run(
        listener,
        service,
        limits,
        Arc::new(NoConnObserver),
        shutdown.clone(),
        cfg.shutdown_grace,
    ));
    Ok(App {
        seneca_addr,
        store,
        shutdown,
        server,
    })
}
