//! Response bodies: what the SPA reads. Built from service records; nothing here holds a secret.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::models::AuditEventRow;
use crate::domain::phone_number::RegistrationState;
use crate::domain::responder::Responder;
use crate::service::agents::AgentRecord;
use crate::service::phone_numbers::NumberRecord;
use crate::service::Ref;

fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    at.and_utc()
}

/// The agent answering a number, as the WhatsApp Agent column shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentSummary {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
}

/// A number as an agent shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NumberSummary {
    #[schema(format = Uuid)]
    pub id: String,
    pub display_phone_number: String,
}

impl From<Ref> for NumberSummary {
    fn from(r: Ref) -> Self {
        NumberSummary {
            id: r.id,
            display_phone_number: r.label,
        }
    }
}

/// Where the number stands with Meta's `/register` (the Actions column).
#[derive(Debug, Serialize, ToSchema)]
pub struct Registration {
    pub state: RegistrationState,
    /// Why the last attempt failed, in words for the user; null after a success.
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Register calls in Meta's moving 72-hour window (Meta allows 10).
    pub attempts_in_window: i64,
}

/// One WhatsApp Business phone number: a row of the Phone Numbers table.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneNumber {
    /// Our id.
    #[schema(format = Uuid)]
    pub id: String,
    /// Meta's phone-number id (the table's "ID" column).
    pub phone_number_id: String,
    pub display_phone_number: String,
    /// The business name WhatsApp verified.
    pub verified_name: Option<String>,
    /// `CLOUD_API`, `ON_PREMISE`, `NOT_APPLICABLE`, or any other value Meta sends.
    #[schema(example = "CLOUD_API")]
    pub platform_type: String,
    /// `GREEN`, `YELLOW`, `RED` or `UNKNOWN`.
    #[schema(example = "GREEN")]
    pub quality_rating: String,
    /// Meta's operating status (`CONNECTED`, `PENDING`, `FLAGGED`, ...), as Meta sends it.
    pub status: Option<String>,
    /// `VERIFIED`, `NOT_VERIFIED`, `EXPIRED`, ... Not a sign of registration.
    pub code_verification_status: Option<String>,
    pub name_status: Option<String>,
    /// The portfolio's messaging limit, e.g. `TIER_250`.
    pub messaging_limit: Option<String>,
    /// `STANDARD`, `HIGH`, `NOT_APPLICABLE`.
    pub throughput_level: Option<String>,
    /// `LIVE` or `SANDBOX`.
    pub account_mode: Option<String>,
    /// Also on the WhatsApp Business app (coexistence): Meta registers these itself.
    pub is_on_biz_app: bool,
    pub inbound_agent: Option<AgentSummary>,
    pub registration: Registration,
    /// True only for Cloud API numbers: show the agent picker, else "Register via Actions".
    pub can_assign_inbound_agent: bool,
    /// True when the number is not yet on the Cloud API and is not a coexistence number: show Register.
    pub can_register: bool,
    #[schema(format = Uuid)]
    pub whatsapp_account_id: String,
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Set when the number disappeared from its account in Meta; such numbers are kept for their history.
    pub removed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<NumberRecord> for PhoneNumber {
    fn from(record: NumberRecord) -> Self {
        let facts = record.facts();
        let (can_assign_inbound_agent, can_register) =
            (facts.can_assign_inbound_agent(), facts.can_register());
        let row = record.row;
        PhoneNumber {
            id: row.id,
            phone_number_id: row.phone_number_id,
            display_phone_number: row.display_phone_number,
            verified_name: row.verified_name,
            platform_type: row.platform_type,
            quality_rating: row.quality_rating,
            status: row.status,
            code_verification_status: row.code_verification_status,
            name_status: row.name_status,
            messaging_limit: row.messaging_limit,
            throughput_level: row.throughput_level,
            account_mode: row.account_mode,
            is_on_biz_app: row.is_on_biz_app,
            inbound_agent: record.inbound_agent.map(|a| AgentSummary {
                id: a.id,
                name: a.label,
            }),
            registration: Registration {
                state: record.registration_state,
                last_error: row.registration_last_error,
                last_attempt_at: row.registration_last_attempt_at.map(utc),
                attempts_in_window: record.attempts_in_window,
            },
            can_assign_inbound_agent,
            can_register,
            whatsapp_account_id: row.whatsapp_account_id,
            last_synced_at: row.last_synced_at.map(utc),
            removed_at: row.removed_at.map(utc),
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        }
    }
}

/// A page of phone numbers.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneNumberList {
    pub data: Vec<PhoneNumber>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// An AI chat agent.
#[derive(Debug, Serialize, ToSchema)]
pub struct Agent {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    pub description: Option<String>,
    pub responder: Responder,
    /// The number this agent sends outbound messages from.
    pub whatsapp_outbound_number: Option<NumberSummary>,
    /// The numbers whose inbound messages this agent answers.
    pub inbound_phone_numbers: Vec<NumberSummary>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<AgentRecord> for Agent {
    fn from(record: AgentRecord) -> Self {
        Agent {
            id: record.row.id,
            name: record.row.name,
            description: record.row.description,
            responder: record.responder,
            whatsapp_outbound_number: record.outbound_number.map(NumberSummary::from),
            inbound_phone_numbers: record
                .inbound_numbers
                .into_iter()
                .map(NumberSummary::from)
                .collect(),
            created_at: utc(record.row.created_at),
            updated_at: utc(record.row.updated_at),
        }
    }
}

/// A page of agents.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentList {
    pub data: Vec<Agent>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// One entry of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    #[schema(format = Uuid)]
    pub id: String,
    /// The token's `sub` of whoever made the change.
    pub actor: String,
    /// `inbound_agent.assigned`, `inbound_agent.cleared`, `outbound_number.set`, `outbound_number.cleared`,
    /// `agent.created`, `agent.updated`, `agent.deleted`.
    pub action: String,
    pub phone_number_id: Option<String>,
    pub agent_id: Option<String>,
    /// The change's particulars (previous values, names at the time).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

impl From<AuditEventRow> for AuditEvent {
    fn from(row: AuditEventRow) -> Self {
        AuditEvent {
            detail: serde_json::from_str(&row.detail).unwrap_or(serde_json::Value::Null),
            id: row.id,
            actor: row.actor,
            action: row.action,
            phone_number_id: row.phone_number_id,
            agent_id: row.agent_id,
            created_at: utc(row.created_at),
        }
    }
}

/// A page of audit events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventList {
    pub data: Vec<AuditEvent>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}
