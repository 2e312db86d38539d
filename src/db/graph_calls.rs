//! The calls made to each WABA's management endpoints, counted against the service's budget.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::graph_calls;
use super::DbConnection;
use crate::domain::WabaId;

/// Records `calls` calls to `waba` at `now` if fewer than `per_hour - calls + 1` were made in the
/// hour before; otherwise records nothing and returns when a call is next free.
pub fn spend(
    conn: &mut DbConnection,
    waba: &WabaId,
    calls: i64,
    per_hour: i64,
    now: NaiveDateTime,
) -> QueryResult<Result<(), NaiveDateTime>> {
    let hour_ago = now - chrono::TimeDelta::hours(1);
    let mut recent: Vec<NaiveDateTime> = graph_calls::table
        .filter(graph_calls::waba_id.eq(waba))
        .filter(graph_calls::called_at.gt(hour_ago))
        .select(graph_calls::called_at)
        .order(graph_calls::called_at.asc())
        .load(conn)?;
    let used = i64::try_from(recent.len()).unwrap_or(i64::MAX);
    if used + calls > per_hour {
        // Free again when enough of the oldest calls leave the hour.
        let leaving = usize::try_from(used + calls - per_hour).unwrap_or(usize::MAX);
        recent.truncate(leaving);
        let free_at = recent.last().copied().unwrap_or(now) + chrono::TimeDelta::hours(1);
        return Ok(Err(free_at));
    }
    // One row per call (a call or two at a time; MultiConnection has no batch insert).
    for _ in 0..calls {
        diesel::insert_into(graph_calls::table)
            .values((
                graph_calls::id.eq(uuid::Uuid::new_v4().to_string()),
                graph_calls::waba_id.eq(waba.clone()),
                graph_calls::called_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(Ok(()))
}
