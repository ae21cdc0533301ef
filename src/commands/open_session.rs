//! open_session: a new session for a user, or the active one of the same user,
//! address and client (reuse), with request_time set to now.

use super::args::Args;
use super::{CommandError, Context, Output};
use crate::model::now_ms;
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
        now: now_ms(),
    };
    let opened = ctx.call(ctx.store.open(req)).await?;
    ctx.metrics.session_opened(opened.reused);
    Ok(Output::Session(opened.session))
}
