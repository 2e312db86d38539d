//! The registration ledger (every register call made to Meta) and the quality-rating history.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{QualityEventRow, RegistrationAttemptRow};
use super::schema::{quality_events, registration_attempts as attempts};
use super::{DbConnection, MultiBackend};
use crate::domain::page::PageRequest;
use crate::domain::{AttemptId, AttemptOutcome, PhoneNumberId, QualityEventId, WorkspaceId};

pub fn insert_attempt(conn: &mut DbConnection, row: &RegistrationAttemptRow) -> QueryResult<usize> {
    diesel::insert_into(attempts::table)
        .values(row)
        .execute(conn)
}

/// How a register call ended.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = attempts, treat_none_as_null = true)]
pub struct AttemptFinish {
    /// `succeeded` or `failed` (`pending` while the call runs, or forever if the process died in it).
    pub outcome: AttemptOutcome,
    pub meta_code: Option<i64>,
    pub meta_subcode: Option<i64>,
    pub meta_message: Option<String>,
    pub fbtrace_id: Option<String>,
    pub meta_unavailable: bool,
}

pub fn finish_attempt(
    conn: &mut DbConnection,
    id: AttemptId,
    outcome: &AttemptFinish,
) -> QueryResult<usize> {
    diesel::update(attempts::table.filter(attempts::id.eq(id)))
        .set(outcome)
        .execute(conn)
}

/// The ledger of one number, newest first.
pub fn list_attempts(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    number_id: PhoneNumberId,
    after: Option<(NaiveDateTime, AttemptId)>,
    page: &PageRequest,
) -> QueryResult<Vec<RegistrationAttemptRow>> {
    let mut query = attempts::table
        .filter(attempts::workspace_id.eq(workspace.clone()))
        .filter(attempts::number_id.eq(number_id))
        .select(RegistrationAttemptRow::as_select())
        .into_boxed::<MultiBackend>();
    if let Some((at, id)) = after {
        query = query.filter(
            attempts::created_at
                .lt(at)
                .or(attempts::created_at.eq(at).and(attempts::id.lt(id))),
        );
    }
    query
        .order((attempts::created_at.desc(), attempts::id.desc()))
        .limit(page.fetch_limit())
        .load(conn)
}

pub fn insert_quality_event(conn: &mut DbConnection, row: &QualityEventRow) -> QueryResult<usize> {
    diesel::insert_into(quality_events::table)
        .values(row)
        .execute(conn)
}

/// Quality history of one number, newest first.
pub fn list_quality_events(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    number_id: PhoneNumberId,
    after: Option<(NaiveDateTime, QualityEventId)>,
    page: &PageRequest,
) -> QueryResult<Vec<QualityEventRow>> {
    use quality_events::dsl as q;
    let mut query = q::quality_events
        .filter(q::workspace_id.eq(workspace.clone()))
        .filter(q::number_id.eq(number_id))
        .select(QualityEventRow::as_select())
        .into_boxed::<MultiBackend>();
    if let Some((at, id)) = after {
        query = query.filter(
            q::created_at
                .lt(at)
                .or(q::created_at.eq(at).and(q::id.lt(id))),
        );
    }
    query
        .order((q::created_at.desc(), q::id.desc()))
        .limit(page.fetch_limit())
        .load(conn)
}
