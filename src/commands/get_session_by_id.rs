//! get_session_by_id: the session, or null for an unknown id. Reads never change
//! request_time. A session past its lifetime reads closed at the instant it expired,
//! whether or not a sweep has closed it (judged on the fields read: no extra call).

use super::args::Args;
use super::{CommandError, Context, Output};
use crate::store::Store;

pub(super) async fn run(ctx: &Context, args: &Args<'_>) -> Result<Output, CommandError> {
    let id = args.required_str("session_id")?;
    let at = ctx.at();
    let session = ctx.call(ctx.store.get(&id)).await?;
    Ok(session.map(|s| at.present(s)).into())
}
