//! get_session_by_id: the session, or null for an unknown id. Reads never change
//! request_time.

use super::args::Args;
use super::{CommandError, Context, Output};
use crate::store::Store;

pub(super) async fn run(ctx: &Context, args: &Args<'_>) -> Result<Output, CommandError> {
    let id = args.required_str("session_id")?;
    Ok(ctx.call(ctx.store.get(&id)).await?.into())
}
