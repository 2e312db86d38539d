//! The live stream's events: written inside the transaction that made the change, read in id
//! order by every instance. On PostgreSQL each writer takes one transaction-scoped advisory lock
//! before it inserts, so ids become visible in the order they were handed out and a reader that
//! has seen id N never later finds a smaller one (SQLite writers are serialized anyway).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::events;
use super::DbConnection;
use crate::domain::{EventKind, WorkspaceId};

/// An event as stored.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: i64,
    pub workspace_id: WorkspaceId,
    pub kind: EventKind,
    /// The event's JSON (`domain::event::EventData`).
    pub data: String,
    pub created_at: NaiveDateTime,
}

/// The advisory lock that orders event writers on PostgreSQL (any constant will do).
const EVENT_WRITERS_LOCK: i64 = 0x6576_656e_7473;

/// Records an event of `workspace`. Call it late in the transaction: on PostgreSQL the writers of
/// events queue from here until they commit.
pub fn emit(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    kind: EventKind,
    data: &serde_json::Value,
    now: NaiveDateTime,
) -> QueryResult<()> {
    emit_many(conn, &[(workspace.clone(), kind, data.clone())], now)
}

/// Rows per INSERT of events.
const INSERT_CHUNK: usize = 500;

/// Records several events, in order: the lock once, then multi-row inserts.
pub fn emit_many(
    conn: &mut DbConnection,
    rows: &[(WorkspaceId, EventKind, serde_json::Value)],
    now: NaiveDateTime,
) -> QueryResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query(format!(
            "SELECT pg_advisory_xact_lock({EVENT_WRITERS_LOCK})"
        ))
        .execute(pg)?;
    }
    let values: Vec<_> = rows
        .iter()
        .map(|(workspace, kind, data)| {
            (
                events::workspace_id.eq(workspace),
                events::kind.eq(*kind),
                events::data.eq(data.to_string()),
                events::created_at.eq(now),
            )
        })
        .collect();
    match conn {
        // Multi-row statements: one round trip per chunk.
        DbConnection::Postgresql(pg) => {
            for chunk in values.chunks(INSERT_CHUNK) {
                diesel::insert_into(events::table)
                    .values(chunk)
                    .execute(pg)?;
            }
        }
        // In-process: one cached statement, row by row.
        DbConnection::Sqlite(sqlite) => {
            for row in values {
                diesel::insert_into(events::table)
                    .values(row)
                    .execute(sqlite)?;
            }
        }
    }
    Ok(())
}

/// Every workspace's events after `after`, oldest first (what an instance broadcasts).
pub fn after(conn: &mut DbConnection, after: i64, limit: i64) -> QueryResult<Vec<EventRow>> {
    events::table
        .filter(events::id.gt(after))
        .order(events::id.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)
}

/// The workspace's events after `after`, oldest first (a client catching up).
pub fn of_workspace_after(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    after: i64,
    limit: i64,
) -> QueryResult<Vec<EventRow>> {
    events::table
        .filter(events::workspace_id.eq(workspace))
        .filter(events::id.gt(after))
        .order(events::id.asc())
        .limit(limit)
        .select(EventRow::as_select())
        .load(conn)
}

/// The smallest and largest ids stored.
pub fn bounds(conn: &mut DbConnection) -> QueryResult<(Option<i64>, Option<i64>)> {
    events::table
        .select((diesel::dsl::min(events::id), diesel::dsl::max(events::id)))
        .first(conn)
}

/// Deletes up to `limit` events older than `before`; returns how many went.
pub fn delete_before(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    let old: Vec<i64> = events::table
        .filter(events::created_at.lt(before))
        .order(events::id.asc())
        .select(events::id)
        .limit(limit)
        .load(conn)?;
    diesel::delete(events::table.filter(events::id.eq_any(old))).execute(conn)
}
