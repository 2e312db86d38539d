//! The registration ledger (every register call made to Meta) and the quality-rating history.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{QualityEventRow, RegistrationAttemptRow};
use super::schema::{quality_events, registration_attempts as attempts};
use super::{DbConnection, MultiBackend};
use crate::domain::page::PageRequest;

pub fn insert_attempt(conn: &mut DbConnection, row: &RegistrationAttemptRow) -> QueryResult<usize> {
    diesel::insert_into(attempts::table)
        .values(row)
        .execute(conn)
}

/// How a register call ended.
#[derive(Debug, Clone, AsChangeset)]
#[diesel(table_name = attempts, treat_none_as_null = true)]
pub struct AttemptOutcome {
    /// `succeeded` or `failed` (`pending` while the call runs, or forever if the process died in it).
    pub outcome: &'static str,
    pub meta_code: Option<i64>,
    pub meta_subcode: Option<i64>,
    pub meta_message: Option<String>,
    pub fbtrace_id: Option<String>,
}

pub fn finish_attempt(
    conn: &mut DbConnection,
    id: &str,
    outcome: &AttemptOutcome,
) -> QueryResult<usize> {
    diesel::update(attempts::table.filter(attempts::id.eq(id)))
        .set(outcome)
        .execute(conn)
}

/// Register calls for the number since `since`, oldest first.
pub fn attempts_since(
    conn: &mut DbConnection,
    phone_number_id: &str,
    since: NaiveDateTime,
) -> QueryResult<Vec<RegistrationAttemptRow>> {
    attempts::table
        .filter(attempts::phone_number_id.eq(phone_number_id))
        .filter(attempts::created_at.gt(since))
        .order((attempts::created_at.asc(), attempts::id.asc()))
        .select(RegistrationAttemptRow::as_select())
        .load(conn)
}

/// The ledger of one number, newest first.
pub fn list_attempts(
    conn: &mut DbConnection,
    workspace: &str,
    phone_number_id: &str,
    after: Option<(NaiveDateTime, String)>,
    page: &PageRequest,
) -> QueryResult<Vec<RegistrationAttemptRow>> {
    let mut query = attempts::table
        .filter(attempts::workspace_id.eq(workspace.to_owned()))
        .filter(attempts::phone_number_id.eq(phone_number_id.to_owned()))
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
    workspace: &str,
    phone_number_id: &str,
    after: Option<(NaiveDateTime, String)>,
    page: &PageRequest,
) -> QueryResult<Vec<QualityEventRow>> {
    use quality_events::dsl as q;
    let mut query = q::quality_events
        .filter(q::workspace_id.eq(workspace.to_owned()))
        .filter(q::phone_number_id.eq(phone_number_id.to_owned()))
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
