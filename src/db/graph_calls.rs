//! The calls made to each WABA's management endpoints, counted against the service's budget.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{graph_calls, waba_usage};
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
    // Calls that left the hour count for nothing: the table keeps about an hour per WABA.
    diesel::delete(graph_calls::table)
        .filter(graph_calls::waba_id.eq(waba))
        .filter(graph_calls::called_at.le(hour_ago))
        .execute(conn)?;
    let recent = graph_calls::table
        .filter(graph_calls::waba_id.eq(waba))
        .filter(graph_calls::called_at.gt(hour_ago));
    let used: i64 = recent.count().get_result(conn)?;
    if used + calls > per_hour {
        // Free again when enough of the oldest calls leave the hour.
        let leaving = (used + calls - per_hour).min(used).max(1);
        let last_leaving: Option<NaiveDateTime> = recent
            .select(graph_calls::called_at)
            .order(graph_calls::called_at.asc())
            .offset(leaving - 1)
            .first(conn)
            .optional()?;
        return Ok(Err(
            last_leaving.unwrap_or(now) + chrono::TimeDelta::hours(1)
        ));
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

/// The `limit` WABAs that made the most calls since `since`, with how many.
pub fn busiest(
    conn: &mut DbConnection,
    since: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<(WabaId, i64)>> {
    graph_calls::table
        .filter(graph_calls::called_at.gt(since))
        .group_by(graph_calls::waba_id)
        .select((graph_calls::waba_id, diesel::dsl::count_star()))
        .order((diesel::dsl::count_star().desc(), graph_calls::waba_id))
        .limit(limit)
        .load(conn)
}

/// Deletes calls made at or before `before`, every WABA's.
pub fn delete_before(conn: &mut DbConnection, before: NaiveDateTime) -> QueryResult<usize> {
    diesel::delete(graph_calls::table.filter(graph_calls::called_at.le(before))).execute(conn)
}

/// What Meta last said about a WABA's use of its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageReport {
    pub used_percent: i64,
    pub regain_at: Option<NaiveDateTime>,
    pub reported_at: NaiveDateTime,
}

/// The WABA's last usage report, if any.
pub fn usage(conn: &mut DbConnection, waba: &WabaId) -> QueryResult<Option<UsageReport>> {
    let row: Option<(i64, Option<NaiveDateTime>, NaiveDateTime)> = waba_usage::table
        .filter(waba_usage::waba_id.eq(waba))
        .select((
            waba_usage::used_percent,
            waba_usage::regain_at,
            waba_usage::reported_at,
        ))
        .first(conn)
        .optional()?;
    Ok(
        row.map(|(used_percent, regain_at, reported_at)| UsageReport {
            used_percent,
            regain_at,
            reported_at,
        }),
    )
}

/// Replaces the WABA's usage report.
pub fn set_usage(conn: &mut DbConnection, waba: &WabaId, report: &UsageReport) -> QueryResult<()> {
    let values = (
        waba_usage::used_percent.eq(report.used_percent),
        waba_usage::regain_at.eq(report.regain_at),
        waba_usage::reported_at.eq(report.reported_at),
    );
    let updated = diesel::update(waba_usage::table.filter(waba_usage::waba_id.eq(waba)))
        .set(values)
        .execute(conn)?;
    if updated == 0 {
        diesel::insert_into(waba_usage::table)
            .values((waba_usage::waba_id.eq(waba), values.0, values.1, values.2))
            .execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use diesel_migrations::MigrationHarness;

    use super::*;
    use crate::db::SQLITE_MIGRATIONS;

    fn rows(conn: &mut DbConnection, waba: &WabaId) -> i64 {
        graph_calls::table
            .filter(graph_calls::waba_id.eq(waba))
            .count()
            .get_result(conn)
            .unwrap()
    }

    #[test]
    fn the_budget_is_a_sliding_hour_and_calls_that_left_it_are_deleted() {
        let mut sqlite = diesel::SqliteConnection::establish(":memory:").unwrap();
        sqlite.run_pending_migrations(SQLITE_MIGRATIONS).unwrap();
        let conn = &mut DbConnection::Sqlite(sqlite);
        let (waba, other) = (WabaId::from("1"), WabaId::from("2"));
        let t0 = chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc();
        let minutes = |m| t0 + chrono::TimeDelta::minutes(m);

        assert_eq!(spend(conn, &waba, 3, 5, t0).unwrap(), Ok(()));
        assert_eq!(spend(conn, &other, 1, 5, t0).unwrap(), Ok(()));
        assert_eq!(spend(conn, &waba, 2, 5, minutes(10)).unwrap(), Ok(()));
        // Full: free again when the oldest call leaves the hour.
        assert_eq!(
            spend(conn, &waba, 1, 5, minutes(30)).unwrap(),
            Err(minutes(60))
        );
        assert_eq!(rows(conn, &waba), 5, "a refusal records nothing");
        // An hour on, the first three calls are gone from the table as well as from the count.
        assert_eq!(spend(conn, &waba, 3, 5, minutes(61)).unwrap(), Ok(()));
        assert_eq!(rows(conn, &waba), 5);
        assert_eq!(rows(conn, &other), 1, "another WABA's calls are its own");
    }
}
