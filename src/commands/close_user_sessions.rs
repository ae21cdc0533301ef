//! close_user_sessions: closes every active session of a user but, optionally, the
//! one to keep (`except_session_id`, e.g. the session that just changed the
//! password), in one atomic step; answers `{closed: n}`.
//!
//! Each live session is closed as close_session closes it (reason `revoked`); `n`
//! counts those. A session that had already expired but was not closed for good yet
//! is closed at the instant it expired (reason `idle` or `absolute`), the kept one
//! included, and is not counted in `n`: it was not live, so nothing was revoked. An
//! unknown user gives `{closed: 0}`.

use super::args::Args;
use super::{CommandError, Context, Output};
use crate::lifecycle::CloseReason;
use crate::store::Store;

pub(super) async fn run(ctx: &Context, args: &Args<'_>) -> Result<Output, CommandError> {
    let user_id = args.required_str("user_id")?;
    let except = args.optional_str("except_session_id")?;
    let fut = ctx.store.close_user(&user_id, except.as_deref(), ctx.at());
    let closed = ctx.call(fut).await?;
    ctx.metrics.sessions_closed(&closed);
    let revoked = closed.get(CloseReason::Revoked);
    // A security event worth a line; user ids and session ids stay out of logs.
    tracing::info!(
        revoked,
        expired = closed.expired(),
        kept = except.is_some(),
        "user sessions closed"
    );
    Ok(Output::Closed(revoked))
}
