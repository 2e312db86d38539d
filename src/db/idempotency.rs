//! Idempotency keys: the first answer to a keyed request, per workspace and operation.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::idempotency_keys as keys;
use super::DbConnection;
use crate::domain::WorkspaceId;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = keys, treat_none_as_default_value = false)]
pub struct KeyRow {
    pub workspace_id: WorkspaceId,
    pub operation: String,
    pub idempotency_key: String,
    pub request_hash: String,
    /// Unset while the first request runs.
    pub response_status: Option<i64>,
    pub response_body: Option<String>,
    pub created_at: NaiveDateTime,
}

pub fn get(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    operation: &str,
    key: &str,
) -> QueryResult<Option<KeyRow>> {
    keys::table
        .filter(keys::workspace_id.eq(workspace))
        .filter(keys::operation.eq(operation))
        .filter(keys::idempotency_key.eq(key))
        .select(KeyRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut DbConnection, row: &KeyRow) -> QueryResult<usize> {
    diesel::insert_into(keys::table).values(row).execute(conn)
}

/// Records the answer of the request that holds the key.
pub fn finish(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    operation: &str,
    key: &str,
    status: i64,
    body: &str,
) -> QueryResult<usize> {
    diesel::update(
        keys::table
            .filter(keys::workspace_id.eq(workspace))
            .filter(keys::operation.eq(operation))
            .filter(keys::idempotency_key.eq(key)),
    )
    .set((
        keys::response_status.eq(Some(status)),
        keys::response_body.eq(Some(body)),
    ))
    .execute(conn)
}

/// Lets the key go (the answer was not final: try again later with the same key).
pub fn delete(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    operation: &str,
    key: &str,
) -> QueryResult<usize> {
    diesel::delete(
        keys::table
            .filter(keys::workspace_id.eq(workspace))
            .filter(keys::operation.eq(operation))
            .filter(keys::idempotency_key.eq(key)),
    )
    .execute(conn)
}
