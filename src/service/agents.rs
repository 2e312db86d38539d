//! Agents: the AI responders that answer numbers' inbound messages and send from an outbound number.

use std::collections::HashMap;

use super::{audit_row, Ref};
use crate::auth::Principal;
use crate::crypto::SecretBox;
use crate::db::models::{AgentChanges, AgentRow};
use crate::db::{
    self, agents, audit, is_unique_violation, phone_numbers as numbers, write_tx, Db, DbConnection,
};
use crate::domain::agent::{validate_description, validate_name, CreateAgent, UpdateAgent};
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::responder::{Responder, SecretChange, ValidResponder};
use crate::domain::search_key;
use crate::error::ApiError;

/// An agent with the numbers it uses.
#[derive(Debug, Clone)]
pub struct AgentRecord {
    pub row: AgentRow,
    pub responder: Responder,
    pub outbound_number: Option<Ref>,
    pub inbound_numbers: Vec<Ref>,
}

fn name_taken(name: &str) -> ApiError {
    ApiError::Conflict {
        code: "agent_name_taken",
        detail: format!(
            "An agent named \"{name}\" already exists in your workspace; choose another name."
        ),
    }
}

/// Reads the stored responder, with the secret shown only as present or not.
fn responder_of(row: &AgentRow) -> Result<Responder, ApiError> {
    let mut responder: Responder = serde_json::from_str(&row.responder_config).map_err(|e| {
        ApiError::Internal(format!("agent {} has an unreadable responder: {e}", row.id))
    })?;
    let has_secret = row.responder_secret_enc.is_some();
    match &mut responder {
        Responder::Openai { openai } => openai.api_key_set = has_secret,
        Responder::Webhook { webhook } => webhook.secret_set = has_secret,
        Responder::Faq { .. } => {}
    }
    Ok(responder)
}

/// Adds the numbers each agent uses: two queries, whatever the page size.
fn enrich(
    conn: &mut DbConnection,
    workspace: &str,
    rows: Vec<AgentRow>,
) -> Result<Vec<AgentRecord>, ApiError> {
    let outbound_ids: Vec<String> = rows
        .iter()
        .filter_map(|r| r.outbound_phone_number_id.clone())
        .collect();
    let outbound: HashMap<String, String> =
        numbers::display_numbers(conn, workspace, &outbound_ids)?
            .into_iter()
            .collect();
    let agent_ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    let mut inbound: HashMap<String, Vec<Ref>> = HashMap::new();
    for (agent, id, display) in numbers::inbound_numbers_of(conn, workspace, &agent_ids)? {
        inbound
            .entry(agent)
            .or_default()
            .push(Ref { id, label: display });
    }
    rows.into_iter()
        .map(|row| {
            Ok(AgentRecord {
                responder: responder_of(&row)?,
                outbound_number: row.outbound_phone_number_id.as_ref().and_then(|id| {
                    outbound.get(id).map(|d| Ref {
                        id: id.clone(),
                        label: d.clone(),
                    })
                }),
                inbound_numbers: inbound.remove(&row.id).unwrap_or_default(),
                row,
            })
        })
        .collect()
}

fn load(conn: &mut DbConnection, workspace: &str, id: &str) -> Result<AgentRecord, ApiError> {
    if !super::is_uuid(id) {
        return Err(ApiError::agent_not_found());
    }
    let row = agents::get(conn, workspace, id)?.ok_or_else(ApiError::agent_not_found)?;
    enrich(conn, workspace, vec![row])?
        .pop()
        .ok_or_else(ApiError::agent_not_found)
}

/// One page of agents; `q` matches anywhere in the name, case-insensitively.
pub async fn list(
    db: &Db,
    workspace: &str,
    q: Option<String>,
    page: PageRequest,
) -> Result<(Vec<AgentRecord>, Option<String>), ApiError> {
    let workspace = workspace.to_owned();
    let key = q.map(|q| search_key(&q)).filter(|k| !k.is_empty());
    db.run(move |conn| {
        let rows = agents::list(conn, &workspace, key.as_deref(), &page)?;
        let (rows, next) = page.finish(rows, |r| Cursor {
            key: r.name_key.clone(),
            id: r.id.clone(),
        });
        Ok((enrich(conn, &workspace, rows)?, next))
    })
    .await
}

pub async fn get(db: &Db, workspace: &str, id: &str) -> Result<AgentRecord, ApiError> {
    let (workspace, id) = (workspace.to_owned(), id.to_owned());
    db.run(move |conn| load(conn, &workspace, &id)).await
}

fn seal(secrets: &SecretBox, change: &SecretChange) -> Option<Option<String>> {
    match change {
        SecretChange::Keep => None,
        SecretChange::Set(secret) => Some(Some(secrets.encrypt(secret))),
        SecretChange::Clear => Some(None),
    }
}

fn config_json(responder: &ValidResponder) -> Result<String, ApiError> {
    serde_json::to_string(&responder.settings).map_err(|e| ApiError::Internal(e.to_string()))
}

pub async fn create(
    db: &Db,
    secrets: &SecretBox,
    caller: &Principal,
    input: CreateAgent,
) -> Result<AgentRecord, ApiError> {
    let name = validate_name(&input.name)?;
    let description = validate_description(input.description.as_deref())?;
    let responder = input.responder.validate(None)?;
    let now = db::now();
    let row = AgentRow {
        id: uuid::Uuid::new_v4().to_string(),
        workspace_id: caller.workspace_id.clone(),
        name_key: search_key(&name),
        name,
        description,
        responder_kind: responder.settings.kind().to_owned(),
        responder_config: config_json(&responder)?,
        responder_secret_enc: seal(secrets, &responder.secret).flatten(),
        outbound_phone_number_id: None,
        created_at: now,
        updated_at: now,
    };
    let caller = caller.clone();
    db.run(move |conn| {
        write_tx(conn, |conn| {
            agents::insert(conn, &row).map_err(|e| {
                if is_unique_violation(&e) {
                    name_taken(&row.name)
                } else {
                    e.into()
                }
            })?;
            let detail =
                serde_json::json!({"name": row.name, "responder_kind": row.responder_kind});
            audit::insert(
                conn,
                &audit_row(&caller, "agent.created", None, Some(&row.id), detail),
            )?;
            load(conn, &caller.workspace_id, &row.id)
        })
    })
    .await
}

pub async fn update(
    db: &Db,
    secrets: &SecretBox,
    caller: &Principal,
    id: &str,
    input: UpdateAgent,
) -> Result<AgentRecord, ApiError> {
    let name = input.name.as_deref().map(validate_name).transpose()?;
    let description = match &input.description {
        Some(d) => Some(validate_description(d.as_deref())?),
        None => None,
    };
    let (caller, id, secrets) = (caller.clone(), id.to_owned(), secrets.clone());
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let ws = caller.workspace_id.as_str();
            let current = load(conn, ws, &id)?;
            let responder = input
                .responder
                .map(|r| r.validate(Some(&current.responder)))
                .transpose()?;
            let changes = AgentChanges {
                name_key: name.as_deref().map(search_key),
                name: name.clone(),
                description,
                responder_kind: responder.as_ref().map(|r| r.settings.kind().to_owned()),
                responder_config: responder.as_ref().map(config_json).transpose()?,
                responder_secret_enc: responder.as_ref().and_then(|r| seal(&secrets, &r.secret)),
                outbound_phone_number_id: None,
                updated_at: Some(db::now()),
            };
            agents::update(conn, ws, &id, &changes).map_err(|e| {
                if is_unique_violation(&e) {
                    name_taken(name.as_deref().unwrap_or_default())
                } else {
                    e.into()
                }
            })?;
            let detail = serde_json::json!({
                "name": name,
                "description_changed": changes.description.is_some(),
                "responder_kind": changes.responder_kind,
            });
            audit::insert(
                conn,
                &audit_row(&caller, "agent.updated", None, Some(&id), detail),
            )?;
            load(conn, ws, &id)
        })
    })
    .await
}

/// Deletes the agent; the numbers it answered are left without an inbound agent, each recorded in the audit trail.
pub async fn delete(db: &Db, caller: &Principal, id: &str) -> Result<(), ApiError> {
    let (caller, id) = (caller.clone(), id.to_owned());
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let ws = caller.workspace_id.as_str();
            let agent = load(conn, ws, &id)?;
            for (number_id, display) in numbers::clear_inbound_agent(conn, ws, &id, db::now())? {
                let detail = serde_json::json!({
                    "previous_agent_id": id, "display_phone_number": display, "reason": "agent_deleted",
                });
                audit::insert(
                    conn,
                    &audit_row(&caller, "inbound_agent.cleared", Some(&number_id), Some(&id), detail),
                )?;
            }
            agents::delete(conn, ws, &id)?;
            let detail = serde_json::json!({
                "name": agent.row.name,
                "outbound_phone_number_id": agent.row.outbound_phone_number_id,
            });
            audit::insert(conn, &audit_row(&caller, "agent.deleted", None, Some(&id), detail))?;
            Ok(())
        })
    })
    .await
}

/// Picks the number the agent sends outbound messages from (only Cloud API numbers), or clears it.
/// One number may be the outbound number of many agents.
pub async fn set_outbound_number(
    db: &Db,
    caller: &Principal,
    agent_id: &str,
    number_id: Option<String>,
) -> Result<AgentRecord, ApiError> {
    let (caller, agent_id) = (caller.clone(), agent_id.to_owned());
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let ws = caller.workspace_id.as_str();
            let agent = load(conn, ws, &agent_id)?;
            let number = match &number_id {
                Some(id) => Some(super::phone_numbers::load(conn, ws, id)?),
                None => None,
            };
            if let Some(number) = &number {
                number.facts().ensure_usable_for_agents()?;
            }
            let previous = agent.row.outbound_phone_number_id.clone();
            if previous == number_id {
                return Ok(agent);
            }
            let changes = AgentChanges {
                outbound_phone_number_id: Some(number_id.clone()),
                updated_at: Some(db::now()),
                ..AgentChanges::default()
            };
            agents::update(conn, ws, &agent_id, &changes)?;
            let (action, detail) = match &number {
                Some(n) => (
                    "outbound_number.set",
                    serde_json::json!({"display_phone_number": n.row.display_phone_number, "previous_phone_number_id": previous}),
                ),
                None => ("outbound_number.cleared", serde_json::json!({"previous_phone_number_id": previous})),
            };
            let number_ref = number_id.as_deref().or(previous.as_deref());
            audit::insert(conn, &audit_row(&caller, action, number_ref, Some(&agent_id), detail))?;
            load(conn, ws, &agent_id)
        })
    })
    .await
}
