//! Use cases: each runs the rules of `domain` against rows from `db`, in one transaction where it
//! writes, on the database threads (`Db::run`). They return [`ServiceError`]; handlers call these
//! and only translate HTTP.

pub mod accounts;
pub mod agents;
pub mod audit;
pub mod budget;
pub mod conversations;
pub mod error;
pub mod events;
pub mod idempotency;
pub mod inbound;
pub mod outbound;
pub mod phone_numbers;
pub mod register_all;
pub mod registration;
pub mod responders;
pub mod sync;
pub mod webhook_fields;

pub use error::ServiceError;

use crate::auth::Principal;
use crate::db::models::AuditEventRow;
use crate::domain::{AgentId, AuditAction, AuditEventId, PhoneNumberId};

/// A number as other resources show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRef {
    pub id: PhoneNumberId,
    pub display_phone_number: String,
}

/// An agent as other resources show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRef {
    pub id: AgentId,
    pub name: String,
}

/// The particulars of an audit entry: names and values at the time, never a secret.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct AuditDetail {
    /// The number's display form at the time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_phone_number: Option<String>,
    /// The agent's name at the time (assignments, creation, deletion, renames).
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "name")]
    pub agent_name: Option<String>,
    /// The number's inbound agent before the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_agent_id: Option<AgentId>,
    /// The agent's outbound number before the change.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "previous_phone_number_id"
    )]
    pub previous_number_id: Option<PhoneNumberId>,
    /// A deleted agent's outbound number.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        alias = "outbound_phone_number_id"
    )]
    pub outbound_number_id: Option<PhoneNumberId>,
    /// The responder kind after the change (`faq`, `openai`, `webhook`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responder_kind: Option<crate::domain::ResponderKind>,
    /// Whether an agent's description changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_changed: Option<bool>,
    /// Why the change happened when nobody asked for it directly, e.g. `agent_deleted`; for a
    /// manual sync, `coalesced` (answered from a sync moments before) or `failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Which of an agent's fields an update changed, e.g. `name`, `responder.openai.model`,
    /// `responder.openai.api_key` (a secret is named, its value never recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_fields: Option<Vec<String>>,
    /// Our id of the WhatsApp Business Account concerned (connect, re-connect, sync).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<crate::domain::AccountId>,
    /// Meta's id of that WhatsApp Business Account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waba_id: Option<crate::domain::WabaId>,
    /// What a manual sync found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync_counts: Option<sync::SyncCounts>,
    /// Numbers a disconnect marked removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numbers_removed: Option<u64>,
    /// Whether a disconnect ended our app's webhook subscription at Meta (false: Meta could not
    /// be reached or refused the token; its webhooks for the WABA are then ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_unsubscribed: Option<bool>,
    /// The `event` of Meta's `account_update` webhook (`ACCOUNT_VIOLATION`, `DISABLED_UPDATE`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_event: Option<String>,
}

/// Builds an audit row for `caller`.
pub(crate) fn audit_row(
    caller: &Principal,
    action: AuditAction,
    number_id: Option<PhoneNumberId>,
    agent_id: Option<AgentId>,
    detail: &AuditDetail,
) -> AuditEventRow {
    AuditEventRow {
        id: AuditEventId::random(),
        workspace_id: caller.workspace_id.clone(),
        actor: caller.subject.clone(),
        action,
        number_id,
        agent_id,
        detail: serde_json::to_string(detail).unwrap_or_else(|_| "{}".into()),
        created_at: crate::db::now(),
    }
}
