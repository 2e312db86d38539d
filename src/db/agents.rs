//! Agent rows.

use diesel::prelude::*;

use super::models::{AgentChanges, AgentRow};
use super::phone_numbers::contains_pattern;
use super::schema::agents;
use super::{DbConnection, MultiBackend};
use crate::domain::page::PageRequest;
use crate::domain::{AgentId, WorkspaceId};

/// One page of a workspace's agents, by folded name then id; `name_key` narrows to names containing it.
pub fn list(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    name_key: Option<&str>,
    page: &PageRequest,
) -> QueryResult<Vec<AgentRow>> {
    use agents::dsl as a;
    let mut query = a::agents
        .filter(a::workspace_id.eq(workspace.clone()))
        .select(AgentRow::as_select())
        .into_boxed::<MultiBackend>();
    if let Some(key) = name_key {
        query = query.filter(a::name_key.like(contains_pattern(key)).escape('\\'));
    }
    if let Some(after) = &page.after {
        query = query.filter(
            a::name_key.gt(after.key.clone()).or(a::name_key
                .eq(after.key.clone())
                .and(a::id.gt(after.id.clone()))),
        );
    }
    query
        .order((a::name_key.asc(), a::id.asc()))
        .limit(page.fetch_limit())
        .load(conn)
}

pub fn get(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    id: AgentId,
) -> QueryResult<Option<AgentRow>> {
    agents::table
        .filter(agents::workspace_id.eq(workspace))
        .filter(agents::id.eq(id))
        .select(AgentRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert(conn: &mut DbConnection, row: &AgentRow) -> QueryResult<usize> {
    diesel::insert_into(agents::table).values(row).execute(conn)
}

pub fn update(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    id: AgentId,
    changes: &AgentChanges,
) -> QueryResult<usize> {
    diesel::update(
        agents::table
            .filter(agents::workspace_id.eq(workspace))
            .filter(agents::id.eq(id)),
    )
    .set(changes)
    .execute(conn)
}

pub fn delete(conn: &mut DbConnection, workspace: &WorkspaceId, id: AgentId) -> QueryResult<usize> {
    diesel::delete(
        agents::table
            .filter(agents::workspace_id.eq(workspace))
            .filter(agents::id.eq(id)),
    )
    .execute(conn)
}

/// Clears the outbound number of every agent sending from one of the account's numbers; returns
/// `(agent, its name, the number it sent from)` for each.
pub fn clear_outbound_in_account(
    conn: &mut DbConnection,
    account_id: crate::domain::AccountId,
    now: chrono::NaiveDateTime,
) -> QueryResult<Vec<(AgentId, String, crate::domain::PhoneNumberId)>> {
    use super::schema::phone_numbers;
    let of_account = phone_numbers::table
        .filter(phone_numbers::whatsapp_account_id.eq(account_id))
        .select(phone_numbers::id.nullable());
    let cleared: Vec<(AgentId, String, Option<crate::domain::PhoneNumberId>)> = agents::table
        .filter(agents::outbound_number_id.eq_any(of_account))
        .select((agents::id, agents::name, agents::outbound_number_id))
        .load(conn)?;
    let ids: Vec<AgentId> = cleared.iter().map(|(id, _, _)| *id).collect();
    if !ids.is_empty() {
        diesel::update(agents::table.filter(agents::id.eq_any(&ids)))
            .set((
                agents::outbound_number_id.eq(None::<crate::domain::PhoneNumberId>),
                agents::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    Ok(cleared
        .into_iter()
        .filter_map(|(id, name, number)| Some((id, name, number?)))
        .collect())
}
