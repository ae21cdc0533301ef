//! update_session_user: replaces a session's user; null for an unknown id,
//! SESSION_CLOSED for a closed session or one past its lifetime (left for the
//! sweep to close at the instant it expired).

use super::args::Args;
use super::{CommandError, Context, Output};
use crate::store::Store;

pub(super) async fn run(ctx: &Context, args: &Args<'_>) -> Result<Output, CommandError> {
    let id = args.required_str("session_id")?;
    let user = args.json("user")?;
    let fut = ctx.store.update_user(&id, user, ctx.at());
    Ok(ctx.call_on(&id, fut).await?.into())
}
