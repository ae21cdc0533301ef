//! Measures what a connection pool costs against the store's multiplexed connections:
//! HGETALL of a session-sized hash, either through a deadpool-redis checkout per
//! command (`pool.get().await`, which runs its recycle check, a PING round trip,
//! before handing the connection out) or through a few multiplexed connections shared
//! round-robin, as the Redis store does. Used for docs/benchmarks.md.
//!
//! Usage: cargo run --release --example redis_pool -- redis://127.0.0.1:PORT [SECS]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_redis::{Config, PoolConfig, Runtime};
use redis::aio::ConnectionManager;

const KEY: &str = "poolbench:{00}:s:0123456789abcdef0123456789abcdef";
const CONCURRENCY: [usize; 3] = [1, 16, 64];
/// Multiplexed connections, as SESSIONS_REDIS_CONNECTIONS defaults to.
const MULTIPLEXED: usize = 4;

#[derive(Clone)]
enum Via {
    Pool(deadpool_redis::Pool),
    Multiplexed(Arc<Vec<ConnectionManager>>),
}

async fn one(via: &Via, n: u64) -> redis::RedisResult<()> {
    let mut cmd = redis::cmd("HGETALL");
    cmd.arg(KEY);
    let fields: Vec<String> = match via {
        Via::Pool(pool) => {
            let mut conn = pool
                .get()
                .await
                .map_err(|e| redis::RedisError::from(std::io::Error::other(e.to_string())))?;
            cmd.query_async(&mut conn).await?
        }
        Via::Multiplexed(conns) => {
            let mut conn = conns[n as usize % conns.len()].clone();
            cmd.query_async(&mut conn).await?
        }
    };
    assert_eq!(fields.len(), 24, "the hash has 12 fields");
    Ok(())
}

/// Runs `concurrency` loops for `secs`; returns commands per second.
async fn measure(via: Via, concurrency: usize, secs: f64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let via = via.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let mut n = i as u64;
                while Instant::now() < until {
                    one(&via, n).await.expect("HGETALL failed");
                    n += 1;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task panicked");
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> redis::RedisResult<()> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);

    let client = redis::Client::open(url.as_str())?;
    let mut conns = Vec::new();
    for _ in 0..MULTIPLEXED {
        conns.push(ConnectionManager::new(client.clone()).await?);
    }
    let mut setup = conns[0].clone();
    redis::cmd("HSET")
        .arg(KEY)
        .arg(&[
            ("id", "0123456789abcdef0123456789abcdef"),
            ("user_id", "bench-user-42"),
            ("user_name", "Bench User 42"),
            ("active", "1"),
            ("open_time", "1795771380098"),
            ("request_time", "1795771380098"),
            ("close_time", ""),
            ("address", "10.0.0.42"),
            ("client", "sessions-bench"),
            ("user", "{\"name\":\"Bench User 42\",\"roles\":[\"user\"]}"),
            ("data", "{\"cart\":[1,2,3],\"theme\":\"dark\"}"),
            ("rk", "bench-user-42\u{1f}10.0.0.42\u{1f}sessions-bench"),
        ])
        .query_async::<()>(&mut setup)
        .await?;
    let multiplexed = Via::Multiplexed(Arc::new(conns));

    println!("| in flight | multiplexed ({MULTIPLEXED} conns) HGETALL/s | deadpool checkout + HGETALL /s | pool / multiplexed |");
    println!("|---:|---:|---:|---:|");
    for c in CONCURRENCY {
        let mut cfg = Config::from_url(url.clone());
        // One connection per task: the pool's best case (no waiting for a slot).
        cfg.pool = Some(PoolConfig::new(c));
        let pool = cfg
            .create_pool(Some(Runtime::Tokio1))
            .map_err(|e| redis::RedisError::from(std::io::Error::other(e.to_string())))?;
        // Warm both: the pool opens its connections, the multiplexed ones settle.
        measure(Via::Pool(pool.clone()), c, 0.5).await;
        measure(multiplexed.clone(), c, 0.5).await;
        let m = measure(multiplexed.clone(), c, secs).await;
        let p = measure(Via::Pool(pool), c, secs).await;
        println!("| {c} | {m:.0} | {p:.0} | {:.0}% |", 100.0 * p / m);
    }
    Ok(())
}
