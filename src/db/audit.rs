//! The audit trail: who assigned what, and when. Rows are only ever added.

use diesel::prelude::*;

use super::models::AuditEventRow;
use super::schema::audit_events;
use super::{DbConnection, MultiBackend};
use crate::domain::page::PageRequest;
use crate::domain::{AgentId, AuditEventId, PhoneNumberId, WorkspaceId};

pub fn insert(conn: &mut DbConnection, row: &AuditEventRow) -> QueryResult<usize> {
    diesel::insert_into(audit_events::table)
        .values(row)
        .execute(conn)
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub number_id: Option<PhoneNumberId>,
    pub agent_id: Option<AgentId>,
}

/// Newest first. The cursor key is the RFC 3339 time of the last event shown.
pub fn list(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    filter: &AuditFilter,
    after: Option<(chrono::NaiveDateTime, AuditEventId)>,
    page: &PageRequest,
) -> QueryResult<Vec<AuditEventRow>> {
    use audit_events::dsl as e;
    let mut query = e::audit_events
        .filter(e::workspace_id.eq(workspace.clone()))
        .select(AuditEventRow::as_select())
        .into_boxed::<MultiBackend>();
    if let Some(number) = filter.number_id {
        query = query.filter(e::number_id.eq(number));
    }
    if let Some(agent) = filter.agent_id {
        query = query.filter(e::agent_id.eq(agent));
    }
    if let Some((at, id)) = after {
        query = query.filter(
            e::created_at
                .lt(at)
                .or(e::created_at.eq(at).and(e::id.lt(id))),
        );
    }
    query
        .order((e::created_at.desc(), e::id.desc()))
        .limit(page.fetch_limit())
        .load(conn)
}
