//! store_session_data: replaces a session's data; null for an unknown id,
//! SESSION_CLOSED for a closed session.

use super::args::Args;
use super::{CommandError, Context, Output};
use crate::model::now_ms;
use crate::store::Store;

pub(super) async fn run(ctx: &Context, args: &Args<'_>) -> Result<Output, CommandError> {
    let id = args.required_str("session_id")?;
    let data = args.json("data")?;
    let fut = ctx.store.store_data(&id, data, now_ms());
    Ok(ctx.call_on(&id, fut).await?.into())
}
