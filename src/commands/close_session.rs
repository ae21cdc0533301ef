//! close_session: active=false, close_time=request_time=now, data and user cleared.
//! Closing a closed session returns it unchanged; an unknown id gives null.

use super::args::Args;
use super::{CommandError, Context, Output};
use crate::model::now_ms;
use crate::store::Store;

pub(super) async fn run(ctx: &Context, args: &Args<'_>) -> Result<Output, CommandError> {
    let id = args.required_str("session_id")?;
    let now = now_ms();
    let closed = ctx.call_on(&id, ctx.store.close(&id, now)).await?;
    // Count only the close this call made, not a repeat on a closed session.
    if closed.as_ref().is_some_and(|s| s.close_time == Some(now)) {
        ctx.metrics.session_closed();
    }
    Ok(closed.into())
}
