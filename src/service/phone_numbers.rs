//! The phone-number table and inbound-agent assignment.

use std::collections::HashMap;

use chrono::NaiveDateTime;

use super::{audit_row, AgentRef, AuditDetail, ServiceError};
use crate::auth::Principal;
use crate::db::models::{PhoneNumberRow, QualityEventRow, RegistrationAttemptRow};
use crate::db::phone_numbers::Beside;
use crate::db::{self, agents, audit, phone_numbers as numbers, registration, write_tx, Db};
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::phone_number::{NumberFacts, PhoneNumberFilter};
use crate::domain::registration::{window_start, CallInWindow, WindowUse};
use crate::domain::{
    AccountStatus, AgentId, AuditAction, BlockedReason, NumberSort, PhoneNumberId,
    RegistrationState, WorkspaceId,
};
use crate::meta::codes::REGISTRATION_BLOCKED;
use crate::meta::ErrorClass;

/// Where a number stands with Register, as the Actions column needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationStatus {
    pub state: RegistrationState,
    pub window: WindowUse,
    pub blocked_reason: Option<BlockedReason>,
    /// Meta's code of the last failed call, if Meta gave one.
    pub last_error_code: Option<i64>,
    /// Whether retrying the last failure can help; `None` unless the state is `failed`.
    pub retryable: Option<bool>,
}

/// A number with what the table shows beside it.
#[derive(Debug, Clone)]
pub struct NumberRecord {
    pub row: PhoneNumberRow,
    pub inbound_agent: Option<AgentRef>,
    pub registration: RegistrationStatus,
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

/// The register calls of the numbers in Meta's window, as the policy reads them: one query.
pub(crate) fn calls_in_window(
    conn: &mut db::DbConnection,
    ids: &[PhoneNumberId],
    now: NaiveDateTime,
) -> Result<HashMap<PhoneNumberId, Vec<CallInWindow>>, ServiceError> {
    let mut calls: HashMap<PhoneNumberId, Vec<CallInWindow>> = HashMap::new();
    for (number, at, code, unanswered) in numbers::calls_since(conn, ids, window_start(now))? {
        calls.entry(number).or_default().push(CallInWindow {
            at,
            blocked_by_meta: code == Some(REGISTRATION_BLOCKED),
            unanswered,
        });
    }
    Ok(calls)
}

/// The number's records from rows read with what the table shows beside them; looks up only the
/// register calls of numbers attempted since Meta's window opened.
fn records(
    conn: &mut db::DbConnection,
    rows: Vec<(PhoneNumberRow, Beside)>,
) -> Result<Vec<NumberRecord>, ServiceError> {
    let now = db::now();
    // Every register call is made under a claim or renewal that sets the number's last attempt
    // time, so a number not attempted since the window opened has no call in it: most of a page,
    // which then costs no lookup.
    let start = window_start(now);
    let ids: Vec<PhoneNumberId> = rows
        .iter()
        .filter(|(r, _)| r.registration_last_attempt_at.is_some_and(|at| at > start))
        .map(|(r, _)| r.id)
        .collect();
    let mut calls = if ids.is_empty() {
        HashMap::new()
    } else {
        calls_in_window(conn, &ids, now)?
    };
    Ok(rows
        .into_iter()
        .map(|(mut row, beside)| {
            // A successful sync confirms every number it leaves live; it writes only those it changes.
            if row.removed_at.is_none() {
                row.last_synced_at = row.last_synced_at.max(beside.account_synced_at);
            }
            let inbound_agent = row
                .inbound_agent_id
                .zip(beside.agent_name)
                .map(|(id, name)| AgentRef { id, name });
            let facts = facts(&row);
            let window = WindowUse::of(&calls.remove(&row.id).unwrap_or_default(), now);
            let needs_reconnect = beside.account_status == AccountStatus::NeedsReconnect;
            let state =
                facts.registration_state(row.registration_state, row.registration_lease_until, now);
            let (last_error_code, retryable) = match state {
                RegistrationState::Failed => {
                    let code = row.registration_last_error_code;
                    let retryable = match code {
                        Some(code) => ErrorClass::of_code(code).retryable(),
                        None => !needs_reconnect,
                    };
                    (code, Some(retryable))
                }
                _ => (None, None),
            };
            let registration = RegistrationStatus {
                blocked_reason: facts.blocked_reason(&window, needs_reconnect),
                state,
                window,
                last_error_code,
                retryable,
            };
            NumberRecord {
                inbound_agent,
                registration,
                row,
            }
        })
        .collect())
}

/// One page of the workspace's numbers, in `sort` order.
pub async fn list(
    db: &Db,
    workspace: &WorkspaceId,
    filter: PhoneNumberFilter,
    sort: NumberSort,
    page: PageRequest,
) -> Result<(Vec<NumberRecord>, Option<String>), ServiceError> {
    let workspace = workspace.clone();
    db.run(move |conn| {
        let rows = numbers::list(conn, &workspace, &filter, sort, &page)?;
        let (rows, next) = page.finish(rows, |(r, _)| {
            Cursor::text(numbers::sort_key(r, sort), r.id)
        });
        Ok((records(conn, rows)?, next))
    })
    .await
}

/// One number, or [`ServiceError::PhoneNumberNotFound`].
pub async fn get(
    db: &Db,
    workspace: &WorkspaceId,
    id: PhoneNumberId,
) -> Result<NumberRecord, ServiceError> {
    let workspace = workspace.clone();
    db.run(move |conn| load(conn, &workspace, id)).await
}

/// The given numbers, as the table shows them: a constant number of queries, however many.
pub async fn get_many(
    db: &Db,
    workspace: &WorkspaceId,
    ids: Vec<PhoneNumberId>,
) -> Result<Vec<NumberRecord>, ServiceError> {
    let workspace = workspace.clone();
    db.run(move |conn| {
        let rows = numbers::by_ids_beside(conn, &workspace, &ids)?;
        records(conn, rows)
    })
    .await
}

pub(crate) fn load(
    conn: &mut db::DbConnection,
    workspace: &WorkspaceId,
    id: PhoneNumberId,
) -> Result<NumberRecord, ServiceError> {
    let row = numbers::get_beside(conn, workspace, id)?.ok_or(ServiceError::PhoneNumberNotFound)?;
    records(conn, vec![row])?
        .pop()
        .ok_or(ServiceError::PhoneNumberNotFound)
}

/// Sets the agent that answers the number's inbound messages, or clears it with `None`.
/// Only numbers fully on the Cloud API can get one; clearing is always allowed. Changes are audited.
pub async fn assign_inbound_agent(
    db: &Db,
    caller: &Principal,
    number_id: PhoneNumberId,
    agent_id: Option<AgentId>,
) -> Result<NumberRecord, ServiceError> {
    let caller = caller.clone();
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let ws = &caller.workspace_id;
            let number = load(conn, ws, number_id)?;
            let previous = number.row.inbound_agent_id;
            let agent = match agent_id {
                Some(id) => Some(agents::get(conn, ws, id)?.ok_or(ServiceError::AgentNotFound)?),
                None => None,
            };
            if agent.is_some() {
                number.facts().ensure_usable_for_agents()?;
            }
            if previous == agent_id {
                return Ok(number);
            }
            numbers::set_inbound_agent(conn, ws, number_id, agent_id, db::now())?;
            let detail = AuditDetail {
                display_phone_number: Some(number.row.display_phone_number.clone()),
                agent_name: agent.as_ref().map(|a| a.name.clone()),
                previous_agent_id: previous,
                ..AuditDetail::default()
            };
            let action = if agent.is_some() {
                AuditAction::InboundAgentAssigned
            } else {
                AuditAction::InboundAgentCleared
            };
            let row = audit_row(
                &caller,
                action,
                Some(number_id),
                agent_id.or(previous),
                &detail,
            );
            audit::insert(conn, &row)?;
            super::events::emit(
                conn,
                ws,
                crate::domain::EventKind::InboundAgentChanged,
                serde_json::json!({"number_id": number_id, "agent_id": agent_id}),
            )?;
            load(conn, ws, number_id)
        })
    })
    .await
}

/// The number's registration ledger, newest first.
pub async fn registration_attempts(
    db: &Db,
    workspace: &WorkspaceId,
    id: PhoneNumberId,
    page: PageRequest,
) -> Result<(Vec<RegistrationAttemptRow>, Option<String>), ServiceError> {
    let after = page.time_after()?;
    let workspace = workspace.clone();
    db.run(move |conn| {
        load(conn, &workspace, id)?;
        let rows = registration::list_attempts(conn, &workspace, id, after, &page)?;
        Ok(page.finish(rows, |r| Cursor::time(r.created_at, r.id)))
    })
    .await
}

/// The number's quality-rating history, newest first.
pub async fn quality_events(
    db: &Db,
    workspace: &WorkspaceId,
    id: PhoneNumberId,
    page: PageRequest,
) -> Result<(Vec<QualityEventRow>, Option<String>), ServiceError> {
    let after = page.time_after()?;
    let workspace = workspace.clone();
    db.run(move |conn| {
        load(conn, &workspace, id)?;
        let rows = registration::list_quality_events(conn, &workspace, id, after, &page)?;
        Ok(page.finish(rows, |r| Cursor::time(r.created_at, r.id)))
    })
    .await
}
