//! Use cases: each runs the rules of `domain` against rows from `db`, in one transaction where it
//! writes, on the blocking pool. Handlers call these and only translate HTTP.

pub mod accounts;
pub mod agents;
pub mod audit;
pub mod phone_numbers;
pub mod registration;
pub mod sync;

use crate::auth::Principal;
use crate::db::models::AuditEventRow;

/// A short reference to another resource, as lists and items embed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub id: String,
    pub label: String,
}

/// Builds an audit row for `caller`.
pub(crate) fn audit_row(
    caller: &Principal,
    action: &str,
    phone_number_id: Option<&str>,
    agent_id: Option<&str>,
    detail: serde_json::Value,
) -> AuditEventRow {
    AuditEventRow {
        id: uuid::Uuid::new_v4().to_string(),
        workspace_id: caller.workspace_id.clone(),
        actor: caller.subject.clone(),
        action: action.to_owned(),
        phone_number_id: phone_number_id.map(str::to_owned),
        agent_id: agent_id.map(str::to_owned),
        detail: detail.to_string(),
        created_at: crate::db::now(),
    }
}

/// Our ids are UUIDs; anything else cannot name a row, so it is simply not found.
pub(crate) fn is_uuid(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok()
}
