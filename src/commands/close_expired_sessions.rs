//! close_expired_sessions: runs one expiry and retention sweep now; returns null.

use super::{CommandError, Context, Output};
use crate::model::now_ms;
use crate::store::Store;

pub(super) async fn run(ctx: &Context) -> Result<Output, CommandError> {
    let now = now_ms();
    let idle = ctx.sweep.idle_timeout.as_millis() as i64;
    let batch = ctx.sweep.batch;
    let store = &ctx.store;
    for bucket in 0..store.buckets() {
        loop {
            let n = ctx
                .call(store.expire_bucket(bucket, now - idle, now, batch))
                .await?;
            ctx.events.expired(n);
            if (n as usize) < batch {
                break;
            }
        }
        if let Some(retention) = ctx.sweep.retention {
            let keep = retention.as_millis() as i64;
            loop {
                let n = ctx
                    .call(store.purge_bucket(bucket, now - keep, batch))
                    .await?;
                ctx.events.purged(n);
                if (n as usize) < batch {
                    break;
                }
            }
        }
    }
    Ok(Output::Null)
}
