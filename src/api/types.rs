//! Response bodies: what the SPA reads. Built from service records; nothing here holds a secret.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::models::{AccountRow, AuditEventRow, QualityEventRow, RegistrationAttemptRow};
use crate::domain::phone_number::RegistrationState;
use crate::domain::responder::Responder;
use crate::error::MetaErrorBody;
use crate::service::accounts::AccountRecord;
use crate::service::agents::AgentRecord;
use crate::service::phone_numbers::NumberRecord;
use crate::service::sync::SyncCounts;
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

/// A connected WhatsApp Business Account (WABA). Its access token is write-only: never shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhatsAppAccount {
    #[schema(format = Uuid)]
    pub id: String,
    /// Meta's WhatsApp Business Account id.
    pub waba_id: String,
    pub name: Option<String>,
    /// `connected`, or `needs_reconnect` after Meta rejected the token (reconnect with a new one).
    #[schema(example = "connected")]
    pub status: String,
    /// When the token expires; null for tokens that never do.
    pub token_expires_at: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Why the last sync failed, in words for the user; null after a successful sync.
    pub last_sync_error: Option<String>,
    /// Numbers of this account (not counting removed ones).
    pub phone_numbers: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<AccountRecord> for WhatsAppAccount {
    fn from(record: AccountRecord) -> Self {
        let row = record.row;
        WhatsAppAccount {
            id: row.id,
            waba_id: row.waba_id,
            name: row.name,
            status: row.status,
            token_expires_at: row.token_expires_at.map(utc),
            last_synced_at: row.last_synced_at.map(utc),
            last_sync_error: row.last_sync_error,
            phone_numbers: record.phone_numbers,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        }
    }
}

/// The account just connected, with how its first sync went.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectedAccount {
    #[serde(flatten)]
    pub account: WhatsAppAccount,
    /// True when this workspace had the WABA already: its token was replaced.
    pub reconnected: bool,
    /// What the first sync changed; null when it failed (see `last_sync_error`).
    pub sync: Option<SyncCounts>,
}

/// Connected accounts.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhatsAppAccountList {
    pub data: Vec<WhatsAppAccount>,
    /// Always null: a workspace has few accounts.
    pub next_cursor: Option<String>,
}

/// An account whose sync failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailedSync {
    #[schema(format = Uuid)]
    pub whatsapp_account_id: String,
    pub waba_id: String,
    /// The error's stable code (`meta_error`, `sync_in_progress`, ...).
    pub code: String,
    pub detail: String,
}

/// What a sync changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncResult {
    pub added: u64,
    pub updated: u64,
    pub removed: u64,
    /// Accounts that could not be synced (the others were).
    pub failed_accounts: Vec<FailedSync>,
}

impl SyncResult {
    pub fn new(counts: SyncCounts, failed: Vec<(AccountRow, crate::error::ApiError)>) -> Self {
        SyncResult {
            added: counts.added,
            updated: counts.updated,
            removed: counts.removed,
            failed_accounts: failed
                .into_iter()
                .map(|(account, err)| FailedSync {
                    whatsapp_account_id: account.id,
                    waba_id: account.waba_id,
                    code: err.code().to_owned(),
                    detail: err.to_string(),
                })
                .collect(),
        }
    }
}

/// What the SPA needs to open Meta's Embedded Signup popup. Never a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignupConfig {
    /// Meta app id for `FB.init`; null in sandbox mode.
    pub app_id: Option<String>,
    /// Embedded Signup configuration id for `FB.login({config_id})`; null when not configured.
    pub config_id: Option<String>,
    /// Graph API version for `FB.init({version})`.
    pub graph_version: String,
    /// `graph`, or `sandbox` (no Meta app: connect with any code or token; the sandbox answers).
    pub mode: &'static str,
}

/// One register call made to Meta.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationAttempt {
    #[schema(format = Uuid)]
    pub id: String,
    pub attempted_at: DateTime<Utc>,
    /// `succeeded` or `failed`; `pending` while the call runs (a pending entry left by a crashed
    /// process still counts toward Meta's limit, as the call may have reached Meta).
    pub outcome: String,
    /// The token's `sub` of whoever clicked Register.
    pub actor: String,
    /// Meta's error, when the call failed with one.
    pub meta_error: Option<MetaErrorBody>,
    /// The failure's text when Meta gave no error (timeout, unreachable).
    pub error: Option<String>,
}

impl From<RegistrationAttemptRow> for RegistrationAttempt {
    fn from(row: RegistrationAttemptRow) -> Self {
        let meta_error = row.meta_code.map(|code| MetaErrorBody {
            code,
            subcode: row.meta_subcode,
            message: row.meta_message.clone().unwrap_or_default(),
            fbtrace_id: row.fbtrace_id.clone(),
        });
        RegistrationAttempt {
            id: row.id,
            attempted_at: utc(row.created_at),
            outcome: row.outcome,
            actor: row.actor,
            error: if meta_error.is_none() {
                row.meta_message
            } else {
                None
            },
            meta_error,
        }
    }
}

/// A page of registration attempts, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationAttemptList {
    pub data: Vec<RegistrationAttempt>,
    pub next_cursor: Option<String>,
}

/// A change of a number's quality rating.
#[derive(Debug, Serialize, ToSchema)]
pub struct QualityEvent {
    #[schema(format = Uuid)]
    pub id: String,
    pub old_rating: Option<String>,
    pub new_rating: String,
    /// `sync`, `registration` or `webhook`.
    pub source: String,
    /// Meta's event name when a webhook gave one.
    pub event: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<QualityEventRow> for QualityEvent {
    fn from(row: QualityEventRow) -> Self {
        QualityEvent {
            id: row.id,
            old_rating: row.old_rating,
            new_rating: row.new_rating,
            source: row.source,
            event: row.event,
            created_at: utc(row.created_at),
        }
    }
}

/// A page of quality events, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct QualityEventList {
    pub data: Vec<QualityEvent>,
    pub next_cursor: Option<String>,
}
