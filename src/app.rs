//! Assembles the service from its configuration — the store, metrics, the command
//! context, the Seneca listener, the admin HTTP port, the sweeper and the gauges —
//! and runs it until shutdown. Used by `main` and by tests, which start a whole
//! service on free ports in-process.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Health};
use crate::clock::Clock;
use crate::commands::{Context, Limits};
use crate::config::Config;
use crate::connection::ConnLimits;
use crate::instrumented::Instrumented;
use crate::metrics::Metrics;
use crate::observe::MetricsObserver;
use crate::server::{self, ServerLimits};
use crate::service::Service;
use crate::store::memory::MemoryStore;
use crate::store::redis::{split_urls, RedisOptions, RedisStore, TlsPem};
use crate::store::AnyStore;
use crate::telemetry::mask_url;
use crate::{gauges, sweeper};

/// How often readiness checks the store.
const STORE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

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
    #[error("cannot set up metrics: {0}")]
    Metrics(String),
}

/// A running service.
pub struct App {
    /// Where the Seneca listener really is (port 0 resolved).
    pub seneca_addr: SocketAddr,
    /// Where the admin HTTP listener really is.
    pub admin_addr: SocketAddr,
    pub store: Arc<AnyStore>,
    pub metrics: Arc<Metrics>,
    pub health: Health,
    shutdown: CancellationToken,
    server: JoinHandle<bool>,
    background: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl App {
    /// Starts shutting down: report not ready, stop accepting, drain connections.
    pub fn shutdown(&self) {
        self.health.set_draining();
        self.shutdown.cancel();
    }

    /// Waits until the service has stopped; true when every connection drained in
    /// time. The admin port answers (not ready) until the drain is over.
    pub async fn wait(self) -> bool {
        let drained = self.server.await.unwrap_or(false);
        self.health.set_listening(false);
        self.background.cancel();
        for t in self.tasks {
            t.abort();
            let _ = t.await;
        }
        drained
    }
}

/// Builds the store the configuration asks for.
pub fn build_store(cfg: &Config, metrics: &Arc<Metrics>) -> Result<AnyStore, StartError> {
    match redis_options(cfg)? {
        None => {
            tracing::warn!(
                "REDIS_URL is not set: using the embedded in-process store; sessions live \
                 in this process only, so run a single replica"
            );
            Ok(AnyStore::Memory(MemoryStore::new()))
        }
        Some(opts) => {
            let urls: Vec<String> = split_urls(&opts.url).map(mask_url).collect();
            tracing::info!(
                url = %urls.join(","),
                topology = ?opts.topology,
                prefix = %opts.prefix,
                "using Redis"
            );
            let store =
                RedisStore::new(opts).map_err(|e| StartError::Store(mask_url(&e.to_string())))?;
            Ok(AnyStore::Redis(Instrumented::new(store, metrics.clone())))
        }
    }
}

/// How to reach Redis as the configuration says (the TLS files read), or `None`
/// when no `REDIS_URL` is set.
pub fn redis_options(cfg: &Config) -> Result<Option<RedisOptions>, StartError> {
    let Some(url) = &cfg.redis_url else {
        return Ok(None);
    };
    Ok(Some(RedisOptions {
        url: url.clone(),
        prefix: cfg.key_prefix.clone(),
        timeout: cfg.request_timeout,
        connections: cfg.redis_connections,
        topology: cfg.redis_topology.clone(),
        auth: cfg.redis_auth.clone(),
        sentinel_auth: cfg.redis_sentinel_auth.clone(),
        tls: tls_files(cfg)?,
        wait_replicas: cfg.redis_wait_replicas,
    }))
}

/// Reads the TLS files the configuration names.
fn tls_files(cfg: &Config) -> Result<TlsPem, StartError> {
    let read = |path: &Option<std::path::PathBuf>| -> Result<Option<Vec<u8>>, StartError> {
        path.as_ref()
            .map(|p| {
                std::fs::read(p)
                    .map_err(|e| StartError::Store(format!("cannot read {}: {e}", p.display())))
            })
            .transpose()
    };
    Ok(TlsPem {
        ca: read(&cfg.redis_ca_file)?,
        client_cert: read(&cfg.redis_client_cert_file)?,
        client_key: read(&cfg.redis_client_key_file)?,
    })
}

/// Starts the service on the configured addresses.
pub async fn start(cfg: Config) -> Result<App, StartError> {
    let metrics = Arc::new(Metrics::new().map_err(|e| StartError::Metrics(e.to_string()))?);
    let store = Arc::new(build_store(&cfg, &metrics)?);
    start_with(cfg, store, metrics).await
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok((listener, local))
}

/// Starts the service on a store and metrics built by the caller.
pub async fn start_with(
    cfg: Config,
    store: Arc<AnyStore>,
    metrics: Arc<Metrics>,
) -> Result<App, StartError> {
    let (listener, seneca_addr) = bind(cfg.listen).await?;
    let (admin_listener, admin_addr) = bind(cfg.admin_listen).await?;
    let health = Health::new();
    let shutdown = CancellationToken::new();
    let background = CancellationToken::new();
    let observer = Arc::new(MetricsObserver(metrics.clone()));

    let ctx = Context {
        store: store.clone(),
        limits: Limits {
            max_data_bytes: cfg.max_data_bytes,
            max_field_bytes: cfg.max_field_bytes,
            max_take: cfg.max_take,
        },
        reuse: cfg.reuse,
        sweep: cfg.sweep(),
        cap: cfg.max_per_user,
        request_timeout: cfg.request_timeout,
        metrics: metrics.clone(),
        clock: Clock::system(),
    };
    let service = Arc::new(Service {
        ctx,
        accept: Service::instance_id(),
        max_line_bytes: cfg.max_line_bytes,
        observer: observer.clone(),
    });
    let limits = ServerLimits {
        max_connections: cfg.max_connections,
        max_memory: cfg.max_request_memory,
        conn: ConnLimits {
            max_line_bytes: cfg.max_line_bytes,
            max_in_flight: cfg.max_in_flight,
            max_memory: cfg.max_conn_request_memory,
        },
    };

    let mut tasks = Vec::new();
    tasks.push(tokio::spawn({
        let (health, metrics, stop) = (health.clone(), metrics.clone(), background.clone());
        async move {
            if let Err(e) =
                admin::serve(admin_listener, health, metrics, stop.cancelled_owned()).await
            {
                tracing::error!(error = %e, "admin server failed");
            }
        }
    }));
    tasks.push(tokio::spawn(admin::watch_store(
        store.clone(),
        health.clone(),
        metrics.clone(),
        STORE_CHECK_INTERVAL,
    )));
    tasks.push(tokio::spawn(gauges::refresh_counts(
        store.clone(),
        metrics.clone(),
        gauges::DEFAULT_INTERVAL,
        background.clone().cancelled_owned(),
    )));
    tasks.push(tokio::spawn(sweeper::run(
        store.clone(),
        cfg.sweep(),
        metrics.clone(),
        shutdown.clone().cancelled_owned(),
    )));

    tracing::info!(addr = %seneca_addr, admin = %admin_addr, "listening for Seneca clients");
    health.set_listening(true);
    let server = tokio::spawn(server::run(
        listener,
        service,
        limits,
        observer,
        shutdown.clone(),
        cfg.shutdown_grace,
    ));
    Ok(App {
        seneca_addr,
        admin_addr,
        store,
        metrics,
        health,
        shutdown,
        server,
        background,
        tasks,
    })
}
