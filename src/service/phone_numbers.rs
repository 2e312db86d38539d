//! The phone-number table and inbound-agent assignment.

use std::collections::HashMap;

use chrono::NaiveDateTime;

use super::{audit_row, Ref};
use crate::auth::Principal;
use crate::db::models::{PhoneNumberRow, QualityEventRow, RegistrationAttemptRow};
use crate::db::{self, agents, audit, phone_numbers as numbers, registration, write_tx, Db};
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::phone_number::{NumberFacts, PhoneNumberFilter, RegistrationState};
use crate::error::ApiError;

/// Meta's moving window for register calls (10 per number in 72 hours).
pub const REGISTRATION_WINDOW_HOURS: i64 = 72;

/// A number with what the table shows beside it.
#[derive(Debug, Clone)]
pub struct NumberRecord {
    pub row: PhoneNumberRow,
    pub inbound_agent: Option<Ref>,
    pub attempts_in_window: i64,
    pub registration_state: RegistrationState,
}

impl NumberRecord {
    pub fn facts(&self) -> NumberFacts<'_> {
        facts(&self.row)
    }
}

/// The rule-relevant facts of a row.
pub fn facts(row: &PhoneNumberRow) -> NumberFacts<'_> {
    NumberFacts {
        display: &row.display_phone_number,
        platform_type: &row.platform_type,
        throughput_level: row.throughput_level.as_deref(),
        is_on_biz_app: row.is_on_biz_app,
        removed: row.removed_at.is_some(),
    }
}

/// Adds agent names and attempt counts to rows: a constant number of queries, whatever the page size.
fn enrich(
    conn: &mut db::DbConnection,
    workspace: &str,
    rows: Vec<PhoneNumberRow>,
) -> Result<Vec<NumberRecord>, ApiError> {
    let now = db::now();
    let agent_ids: Vec<String> = rows
        .iter()
        .filter_map(|r| r.inbound_agent_id.clone())
        .collect();
    let names: HashMap<String, String> = agents::names(conn, workspace, &agent_ids)?
        .into_iter()
        .collect();
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let attempts = numbers::attempts_since(conn, &ids, window_start(now))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let inbound_agent = row.inbound_agent_id.as_ref().and_then(|id| {
                names.get(id).map(|name| Ref {
                    id: id.clone(),
                    label: name.clone(),
                })
            });
            let registration_state = facts(&row).registration_state(
                &row.registration_state,
                row.registration_lease_until,
                now,
            );
            NumberRecord {
                attempts_in_window: attempts.get(&row.id).copied().unwrap_or(0),
                inbound_agent,
                registration_state,
                row,
            }
        })
        .collect())
}

/// Start of the register-call window ending at `now`.
pub fn window_start(now: NaiveDateTime) -> NaiveDateTime {
    now - chrono::TimeDelta::hours(REGISTRATION_WINDOW_HOURS)
}

/// One page of the workspace's numbers.
pub async fn list(
    db: &Db,
    workspace: &str,
    filter: PhoneNumberFilter,
    page: PageRequest,
) -> Result<(Vec<NumberRecord>, Option<String>), ApiError> {
    let workspace = workspace.to_owned();
    db.run(move |conn| {
        let rows = numbers::list(conn, &workspace, &filter, &page)?;
        let (rows, next) = page.finish(rows, |r| Cursor {
            key: r.display_digits.clone(),
            id: r.id.clone(),
        });
        Ok((enrich(conn, &workspace, rows)?, next))
    })
    .await
}

/// One number, or 404 `phone_number_not_found`.
pub async fn get(db: &Db, workspace: &str, id: &str) -> Result<NumberRecord, ApiError> {
    let (workspace, id) = (workspace.to_owned(), id.to_owned());
    db.run(move |conn| load(conn, &workspace, &id)).await
}

pub(crate) fn load(
    conn: &mut db::DbConnection,
    workspace: &str,
    id: &str,
) -> Result<NumberRecord, ApiError> {
    if !super::is_uuid(id) {
        return Err(ApiError::phone_number_not_found());
    }
    let row = numbers::get(conn, workspace, id)?.ok_or_else(ApiError::phone_number_not_found)?;
    enrich(conn, workspace, vec![row])?
        .pop()
        .ok_or_else(ApiError::phone_number_not_found)
}

/// Sets the agent that answers the number's inbound messages, or clears it with `None`.
/// Only Cloud API numbers can get one; clearing is always allowed. Changes are audited.
pub async fn assign_inbound_agent(
    db: &Db,
    caller: &Principal,
    number_id: &str,
    agent_id: Option<String>,
) -> Result<NumberRecord, ApiError> {
    let (caller, number_id) = (caller.clone(), number_id.to_owned());
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let ws = caller.workspace_id.as_str();
            let number = load(conn, ws, &number_id)?;
            let previous = number.row.inbound_agent_id.clone();
            let agent = match &agent_id {
                Some(id) if super::is_uuid(id) => Some(agents::get(conn, ws, id)?.ok_or_else(ApiError::agent_not_found)?),
                Some(_) => return Err(ApiError::agent_not_found()),
                None => None,
            };
            if agent.is_some() {
                number.facts().ensure_usable_for_agents()?;
            }
            if previous == agent_id {
                return Ok(number);
            }
            numbers::set_inbound_agent(conn, ws, &number_id, agent_id.as_deref(), db::now())?;
            let (action, detail) = match &agent {
                Some(a) => (
                    "inbound_agent.assigned",
                    serde_json::json!({"agent_name": a.name, "previous_agent_id": previous, "display_phone_number": number.row.display_phone_number}),
                ),
                None => (
                    "inbound_agent.cleared",
                    serde_json::json!({"previous_agent_id": previous, "display_phone_number": number.row.display_phone_number}),
                ),
            };
            let agent_ref = agent_id.as_deref().or(previous.as_deref());
            audit::insert(conn, &audit_row(&caller, action, Some(&number_id), agent_ref, detail))?;
            load(conn, ws, &number_id)
        })
    })
    .await
}

/// The number's registration ledger, newest first.
pub async fn registration_attempts(
    db: &Db,
    workspace: &str,
    id: &str,
    page: PageRequest,
) -> Result<(Vec<RegistrationAttemptRow>, Option<String>), ApiError> {
    let after = page.time_after()?;
    let (workspace, id) = (workspace.to_owned(), id.to_owned());
    db.run(move |conn| {
        load(conn, &workspace, &id)?;
        let rows = registration::list_attempts(conn, &workspace, &id, after, &page)?;
        Ok(page.finish(rows, |r| PageRequest::time_cursor(r.created_at, &r.id)))
    })
    .await
}

/// The number's quality-rating history, newest first.
pub async fn quality_events(
    db: &Db,
    workspace: &str,
    id: &str,
    page: PageRequest,
) -> Result<(Vec<QualityEventRow>, Option<String>), ApiError> {
    let after = page.time_after()?;
    let (workspace, id) = (workspace.to_owned(), id.to_owned());
    db.run(move |conn| {
        load(conn, &workspace, &id)?;
        let rows = registration::list_quality_events(conn, &workspace, &id, after, &page)?;
        Ok(page.finish(rows, |r| PageRequest::time_cursor(r.created_at, &r.id)))
    })
    .await
}
