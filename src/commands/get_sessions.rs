//! get_sessions: a page of sessions matching a filter (id, user_id, active,
//! from_time inclusive and to_time exclusive on open_time), newest first. Rows show
//! sessions as of now (one past its lifetime as closed at the instant it expired), and
//! the `active` filter, `total` and paging agree with that.

use serde_json::{Map, Value};

use super::args::{bool_value, date_value, int_value, string_value, Args};
use super::{CommandError, Context, Output};
use crate::store::{ListQuery, Store};

const DEFAULT_TAKE: u64 = 100;

pub(super) async fn run(ctx: &Context, args: &Args<'_>) -> Result<Output, CommandError> {
    let q = parse(args)?;
    let page = ctx.call(ctx.store.list(&q, ctx.at())).await?;
    ctx.metrics.sessions_closed(&page.closed);
    Ok(Output::Page(page))
}

fn field<'a>(m: Option<&'a Map<String, Value>>, name: &str) -> Option<&'a Value> {
    m.and_then(|m| m.get(name)).filter(|v| !v.is_null())
}

pub(super) fn parse(args: &Args<'_>) -> Result<ListQuery, CommandError> {
    let filter = args.object("filter")?;
    let paging = args.object("paging")?;
    let max = args.limits.max_field_bytes;
    let mut q = ListQuery {
        take: DEFAULT_TAKE.min(args.limits.max_take),
        ..ListQuery::default()
    };
    if let Some(v) = field(filter, "id") {
        q.id = Some(string_value("filter.id", v, max)?);
    }
    if let Some(v) = field(filter, "user_id") {
        q.user_id = Some(string_value("filter.user_id", v, max)?);
    }
    if let Some(v) = field(filter, "active") {
        q.active = Some(bool_value("filter.active", v)?);
    }
    if let Some(v) = field(filter, "from_time") {
        q.from = Some(date_value("filter.from_time", v)?);
    }
    if let Some(v) = field(filter, "to_time") {
        q.to = Some(date_value("filter.to_time", v)?);
    }
    if let Some(v) = field(paging, "skip") {
        q.skip = int_value("paging.skip", v)?.max(0) as u64;
    }
    if let Some(v) = field(paging, "take") {
        let take = int_value("paging.take", v)?;
        // A take of 0 or less asks for nothing sensible: give the default page.
        if take > 0 {
            q.take = (take as u64).min(args.limits.max_take);
        }
    }
    if let Some(v) = field(paging, "total") {
        q.total = bool_value("paging.total", v)?;
    }
    Ok(q)
}
