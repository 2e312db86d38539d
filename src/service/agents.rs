//! Agents: the AI responders that answer numbers' inbound messages and send from an outbound number.

use std::collections::HashMap;

use super::{audit_row, AuditDetail, NumberRef, ServiceError};
use crate::auth::Principal;
use crate::crypto::{Sealed, SecretBox};
use crate::db::models::{AgentChanges, AgentRow};
use crate::db::{
    self, agents, audit, is_unique_violation, phone_numbers as numbers, write_tx, Db, DbConnection,
};
use crate::domain::agent::{validate_description, validate_name, CreateAgent, UpdateAgent};
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::responder::{Responder, SecretChange, UrlPolicy, ValidResponder};
use crate::domain::{search_key, AgentId, AuditAction, PhoneNumberId, WorkspaceId};

/// An agent with the numbers it uses.
#[derive(Debug, Clone)]
pub struct AgentRecord {
    pub row: AgentRow,
    pub responder: Responder,
    pub outbound_number: Option<NumberRef>,
    pub inbound_numbers: Vec<NumberRef>,
}

fn name_taken(name: &str) -> ServiceError {
    ServiceError::AgentNameTaken {
        name: name.to_owned(),
    }
}

/// Reads the stored responder, with the secret shown only as present or not.
fn responder_of(row: &AgentRow) -> Result<Responder, ServiceError> {
    let mut responder: Responder = serde_json::from_str(&row.responder_config).map_err(|e| {
        ServiceError::Internal(format!("agent {} has an unreadable responder: {e}", row.id))
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
    workspace: &WorkspaceId,
    rows: Vec<AgentRow>,
) -> Result<Vec<AgentRecord>, ServiceError> {
    let outbound_ids: Vec<PhoneNumberId> =
        rows.iter().filter_map(|r| r.outbound_number_id).collect();
    let outbound: HashMap<PhoneNumberId, String> =
        numbers::display_numbers(conn, workspace, &outbound_ids)?
            .into_iter()
            .collect();
    let agent_ids: Vec<AgentId> = rows.iter().map(|r| r.id).collect();
    let mut inbound: HashMap<AgentId, Vec<NumberRef>> = HashMap::new();
    for (agent, id, display_phone_number) in
        numbers::inbound_numbers_of(conn, workspace, &agent_ids)?
    {
        inbound.entry(agent).or_default().push(NumberRef {
            id,
            display_phone_number,
        });
    }
    rows.into_iter()
        .map(|row| {
            Ok(AgentRecord {
                responder: responder_of(&row)?,
                outbound_number: row.outbound_number_id.and_then(|id| {
                    outbound.get(&id).map(|d| NumberRef {
                        id,
                        display_phone_number: d.clone(),
                    })
                }),
                inbound_numbers: inbound.remove(&row.id).unwrap_or_default(),
                row,
            })
        })
        .collect()
}

fn load(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    id: AgentId,
) -> Result<AgentRecord, ServiceError> {
    let row = agents::get(conn, workspace, id)?.ok_or(ServiceError::AgentNotFound)?;
    enrich(conn, workspace, vec![row])?
        .pop()
        .ok_or(ServiceError::AgentNotFound)
}

/// One page of agents; `q` matches anywhere in the name, case-insensitively.
pub async fn list(
    db: &Db,
    workspace: &WorkspaceId,
    q: Option<String>,
    page: PageRequest,
) -> Result<(Vec<AgentRecord>, Option<String>), ServiceError> {
    let workspace = workspace.clone();
    if let Some(q) = &q {
        crate::domain::text::SEARCH.check(q)?;
    }
    let key = q.map(|q| search_key(&q)).filter(|k| !k.is_empty());
    db.run(move |conn| {
        let rows = agents::list(conn, &workspace, key.as_deref(), &page)?;
        let (rows, next) = page.finish(rows, |r| Cursor::text(r.name_key.clone(), r.id));
        Ok((enrich(conn, &workspace, rows)?, next))
    })
    .await
}

pub async fn get(
    db: &Db,
    workspace: &WorkspaceId,
    id: AgentId,
) -> Result<AgentRecord, ServiceError> {
    let workspace = workspace.clone();
    db.run(move |conn| load(conn, &workspace, id)).await
}

fn seal(secrets: &SecretBox, change: &SecretChange) -> Option<Option<Sealed>> {
    match change {
        SecretChange::Keep => None,
        SecretChange::Set(secret) => Some(Some(secrets.encrypt(secret.expose()))),
        SecretChange::Clear => Some(None),
    }
}

fn config_json(responder: &ValidResponder) -> Result<String, ServiceError> {
    serde_json::to_string(&responder.settings).map_err(|e| ServiceError::Internal(e.to_string()))
}

pub async fn create(
    db: &Db,
    secrets: &SecretBox,
    caller: &Principal,
    input: CreateAgent,
    urls: UrlPolicy,
) -> Result<AgentRecord, ServiceError> {
    let name = validate_name(&input.name)?;
    let description = validate_description(input.description.as_deref())?;
    // A new agent has no secret to keep: a missing one is a malformed request, not a conflict.
    let responder = input.responder.validate(None, urls).map_err(|e| match e {
        crate::domain::RuleError::SecretRequired { field } => {
            ServiceError::Invalid(format!("`{field}` is required"))
        }
        other => other.into(),
    })?;
    let now = db::now();
    let row = AgentRow {
        id: AgentId::random(),
        workspace_id: caller.workspace_id.clone(),
        name_key: search_key(&name),
        name,
        description,
        responder_kind: responder.settings.kind(),
        responder_config: config_json(&responder)?,
        responder_secret_enc: seal(secrets, &responder.secret).flatten(),
        outbound_number_id: None,
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
            let detail = AuditDetail {
                agent_name: Some(row.name.clone()),
                responder_kind: Some(row.responder_kind),
                ..AuditDetail::default()
            };
            let action = AuditAction::AgentCreated;
            audit::insert(
                conn,
                &audit_row(&caller, action, None, Some(row.id), &detail),
            )?;
            load(conn, &caller.workspace_id, row.id)
        })
    })
    .await
}

pub async fn update(
    db: &Db,
    secrets: &SecretBox,
    caller: &Principal,
    id: AgentId,
    input: UpdateAgent,
    urls: UrlPolicy,
) -> Result<AgentRecord, ServiceError> {
    let name = input.name.as_deref().map(validate_name).transpose()?;
    let description = match &input.description {
        Some(d) => Some(validate_description(d.as_deref())?),
        None => None,
    };
    let (caller, secrets) = (caller.clone(), secrets.clone());
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let ws = &caller.workspace_id;
            let current = load(conn, ws, id)?;
            let responder = input
                .responder
                .map(|r| r.validate(Some(&current.responder), urls))
                .transpose()?;
            let changes = AgentChanges {
                name_key: name.as_deref().map(search_key),
                name: name.clone(),
                description,
                responder_kind: responder.as_ref().map(|r| r.settings.kind()),
                responder_config: responder.as_ref().map(config_json).transpose()?,
                responder_secret_enc: responder.as_ref().and_then(|r| seal(&secrets, &r.secret)),
                outbound_number_id: None,
                updated_at: Some(db::now()),
            };
            agents::update(conn, ws, id, &changes).map_err(|e| {
                if is_unique_violation(&e) {
                    name_taken(name.as_deref().unwrap_or_default())
                } else {
                    e.into()
                }
            })?;
            let mut changed_fields = Vec::new();
            if name.as_ref().is_some_and(|n| *n != current.row.name) {
                changed_fields.push("name".to_owned());
            }
            if changes
                .description
                .as_ref()
                .is_some_and(|d| *d != current.row.description)
            {
                changed_fields.push("description".to_owned());
            }
            if let Some(responder) = &responder {
                changed_fields.extend(responder.changed_fields(&current.responder));
            }
            let detail = AuditDetail {
                agent_name: Some(name.clone().unwrap_or_else(|| current.row.name.clone())),
                description_changed: Some(changed_fields.iter().any(|f| f == "description")),
                responder_kind: changes.responder_kind,
                changed_fields: Some(changed_fields),
                ..AuditDetail::default()
            };
            let action = AuditAction::AgentUpdated;
            audit::insert(conn, &audit_row(&caller, action, None, Some(id), &detail))?;
            load(conn, ws, id)
        })
    })
    .await
}

/// Deletes the agent; the numbers it answered are left without an inbound agent, each recorded in the audit trail.
pub async fn delete(db: &Db, caller: &Principal, id: AgentId) -> Result<(), ServiceError> {
    let caller = caller.clone();
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let ws = &caller.workspace_id;
            let agent = load(conn, ws, id)?;
            for (number_id, display) in numbers::clear_inbound_agent(conn, ws, id, db::now())? {
                let detail = AuditDetail {
                    display_phone_number: Some(display),
                    agent_name: Some(agent.row.name.clone()),
                    previous_agent_id: Some(id),
                    reason: Some("agent_deleted".into()),
                    ..AuditDetail::default()
                };
                let action = AuditAction::InboundAgentCleared;
                let row = audit_row(&caller, action, Some(number_id), Some(id), &detail);
                audit::insert(conn, &row)?;
            }
            agents::delete(conn, ws, id)?;
            let detail = AuditDetail {
                agent_name: Some(agent.row.name.clone()),
                outbound_number_id: agent.row.outbound_number_id,
                ..AuditDetail::default()
            };
            let action = AuditAction::AgentDeleted;
            audit::insert(conn, &audit_row(&caller, action, None, Some(id), &detail))?;
            Ok(())
        })
    })
    .await
}

/// Picks the number the agent sends outbound messages from (only numbers fully on the Cloud
/// API), or clears it. One number may be the outbound number of many agents.
pub async fn set_outbound_number(
    db: &Db,
    caller: &Principal,
    agent_id: AgentId,
    number_id: Option<PhoneNumberId>,
) -> Result<AgentRecord, ServiceError> {
    let caller = caller.clone();
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let ws = &caller.workspace_id;
            let agent = load(conn, ws, agent_id)?;
            let number = match number_id {
                Some(id) => Some(super::phone_numbers::load(conn, ws, id)?),
                None => None,
            };
            if let Some(number) = &number {
                number.facts().ensure_usable_for_agents()?;
            }
            let previous = agent.row.outbound_number_id;
            if previous == number_id {
                return Ok(agent);
            }
            let changes = AgentChanges {
                outbound_number_id: Some(number_id),
                updated_at: Some(db::now()),
                ..AgentChanges::default()
            };
            agents::update(conn, ws, agent_id, &changes)?;
            let detail = AuditDetail {
                display_phone_number: number.as_ref().map(|n| n.row.display_phone_number.clone()),
                agent_name: Some(agent.row.name.clone()),
                previous_number_id: previous,
                ..AuditDetail::default()
            };
            let action = if number.is_some() {
                AuditAction::OutboundNumberSet
            } else {
                AuditAction::OutboundNumberCleared
            };
            let number_ref = number_id.or(previous);
            let row = audit_row(&caller, action, number_ref, Some(agent_id), &detail);
            audit::insert(conn, &row)?;
            super::events::emit(
                conn,
                ws,
                crate::domain::EventKind::OutboundNumberChanged,
                serde_json::json!({"agent_id": agent_id, "number_id": number_id}),
            )?;
            load(conn, ws, agent_id)
        })
    })
    .await
}
