//! delete_session and delete_session_by_id (the name existing clients use): removes
//! the session and every index entry for it; returns what was deleted (as of now: one
//! past its lifetime shows closed at the instant it expired), or null.

use super::args::Args;
use super::{CommandError, Context, Output};
use crate::store::Store;

pub(super) async fn run(ctx: &Context, args: &Args<'_>) -> Result<Output, CommandError> {
    let id = args.required_str("session_id")?;
    let at = ctx.at();
    let deleted = ctx.call_on(&id, ctx.store.delete(&id)).await?;
    if deleted.is_some() {
        ctx.metrics.session_deleted();
    }
    Ok(deleted.map(|s| at.present(s)).into())
}
