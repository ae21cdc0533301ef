//! close_expired_sessions: runs one expiry and retention sweep now; returns null.
//! The sweep is the same one every replica runs on its interval (bounded work per
//! bucket); each of its store calls is bounded by the store's own timeout.

use super::{CommandError, Context, Output};
use crate::store::StoreError;
use crate::sweeper;

pub(super) async fn run(ctx: &Context) -> Result<Output, CommandError> {
    match sweeper::sweep_once(
        ctx.store.as_ref(),
        &ctx.sweep,
        ctx.clock.now(),
        &ctx.metrics,
    )
    .await
    {
        Ok(report) => {
            tracing::info!(
                expired = report.expired,
                purged = report.purged,
                "sweep run by close_expired_sessions"
            );
            Ok(Output::Null)
        }
        Err(StoreError::Unavailable(e)) => {
            tracing::warn!(error = %e, "sweep failed: store unavailable");
            Err(CommandError::StoreUnavailable)
        }
        Err(e) => {
            tracing::error!(error = %e, "sweep failed");
            Err(CommandError::Internal)
        }
    }
}
