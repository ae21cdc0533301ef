//! close_session: active=false, close_time=request_time=now, data and user cleared.
//! A session past its lifetime is closed at the instant it expired instead (reason
//! idle or absolute, not logout). Closing a closed session returns it unchanged; an
//! unknown id gives null.

use super::args::Args;
use super::{CommandError, Context, Output};
use crate::lifecycle::Closes;
use crate::store::Store;

pub(super) async fn run(ctx: &Context, args: &Args<'_>) -> Result<Output, CommandError> {
    let id = args.required_str("session_id")?;
    let closed = ctx.call_on(&id, ctx.store.close(&id, ctx.at())).await?;
    // Count only the close this call made, not a repeat on a closed session.
    if let Some(reason) = closed.as_ref().and_then(|c| c.reason) {
        ctx.metrics.sessions_closed(&Closes::one(reason));
    }
    Ok(closed.map(|c| c.session).into())
}
