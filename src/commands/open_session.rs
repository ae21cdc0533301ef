//! open_session: a new session for a user, or the live one of the same user,
//! address and client (reuse), with request_time set to now. A session past its
//! lifetime is never reused. A new session that would take the user past the
//! per-user cap closes the user's least recently used sessions (reason `evicted`) or
//! is refused with SESSION_LIMIT, as configured.

use super::args::Args;
use super::{CommandError, Context, Output};
use crate::lifecycle::{CloseReason, Closes};
use crate::store::{OpenRequest, Store};

pub(super) async fn run(ctx: &Context, args: &Args<'_>) -> Result<Output, CommandError> {
    let req = OpenRequest {
        user_id: args.required_str("user_id")?,
        user_name: args.optional_str("user_name")?,
        address: args.optional_str("address")?,
        client: args.optional_str("client")?,
        user: args.json("user")?,
        data: args.json("data")?,
        reuse: ctx.reuse,
        at: ctx.at(),
        cap: ctx.cap,
    };
    let opened = match ctx.call(ctx.store.open(req)).await {
        Ok(opened) => opened,
        Err(e) => {
            if matches!(e, CommandError::SessionLimit { .. }) {
                ctx.metrics.session_refused();
            }
            return Err(e);
        }
    };
    ctx.metrics.session_opened(opened.reused);
    if opened.evicted > 0 {
        let mut evicted = Closes::default();
        evicted.add(CloseReason::Evicted, opened.evicted);
        ctx.metrics.sessions_closed(&evicted);
        tracing::info!(
            evicted = opened.evicted,
            limit = ctx.cap.max,
            "sessions closed to keep a user within the per-user cap"
        );
    }
    Ok(Output::Session(opened.session))
}
