//! Response bodies: what the SPA reads. Built from service records; nothing here holds a secret.
//! Every field is always sent (null where empty); the OpenAPI document marks them all required.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::problem::MetaErrorBody;
use crate::db::models::{AccountRow, AuditEventRow, QualityEventRow, RegistrationAttemptRow};
use crate::domain::registration::MAX_ATTEMPTS_IN_WINDOW;
use crate::domain::responder::Responder;
use crate::domain::{
    AccountId, AccountStatus, AgentId, AttemptId, AttemptOutcome, AuditAction, AuditEventId,
    BlockedReason, MetaMode, MetaPhoneNumberId, PhoneNumberId, PlatformType, QualityEventId,
    QualityEventSource, QualityRating, RegistrationState, WabaId,
};
use crate::service::accounts::AccountRecord;
use crate::service::agents::AgentRecord;
use crate::service::phone_numbers::NumberRecord;
use crate::service::sync::SyncCounts;
use crate::service::{AgentRef, AuditDetail, NumberRef, ServiceError};

pub(crate) fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    at.and_utc()
}

/// The agent answering a number, as the WhatsApp Agent column shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentSummary {
    pub id: AgentId,
    pub name: String,
}

impl From<AgentRef> for AgentSummary {
    fn from(r: AgentRef) -> Self {
        AgentSummary {
            id: r.id,
            name: r.name,
        }
    }
}

/// A number as an agent shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct NumberSummary {
    pub id: PhoneNumberId,
    pub display_phone_number: String,
}

impl From<NumberRef> for NumberSummary {
    fn from(r: NumberRef) -> Self {
        NumberSummary {
            id: r.id,
            display_phone_number: r.display_phone_number,
        }
    }
}

/// Where the number stands with Meta's `/register`: everything the Actions column decides on.
#[derive(Debug, Serialize, ToSchema)]
pub struct Registration {
    pub state: RegistrationState,
    /// Why the last attempt failed, in words for the user; null after a success.
    pub last_error: Option<String>,
    /// Meta's error code of the last failed call (e.g. 133005 wrong PIN); null when Meta gave none.
    pub last_error_code: Option<i64>,
    /// When `state` is `failed`: whether clicking Register again can help. Null otherwise.
    pub retryable: Option<bool>,
    #[serde(serialize_with = "super::time::rfc3339_opt")]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Register calls in Meta's moving 72-hour window.
    #[schema(minimum = 0)]
    pub attempts_in_window: i64,
    /// Register calls Meta allows per number in 72 hours (10); past that Meta blocks the number.
    #[schema(minimum = 0)]
    pub max_attempts: i64,
    /// Calls to Meta the next click of Register may make: the first, plus retries of transient
    /// errors (3); one while Meta has not been answering (`blocked_reason` `meta_unavailable`).
    #[schema(minimum = 1)]
    pub calls_per_click: i64,
    /// When Register can be clicked again, if something blocks it until a time; else null.
    #[serde(serialize_with = "super::time::rfc3339_opt")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub blocked_reason: Option<BlockedReason>,
}

/// A number whose quality went bad, until it recovers.
#[derive(Debug, Serialize, ToSchema)]
pub struct QualityAlert {
    /// When it was raised.
    #[serde(serialize_with = "super::time::rfc3339")]
    pub since: DateTime<Utc>,
    pub reason: crate::domain::QualityAlertReason,
    /// The rating before it went bad: the alert clears when the rating is back there (and the
    /// status is fine).
    pub previous_rating: QualityRating,
}

/// One WhatsApp Business phone number: a row of the Phone Numbers table.
#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneNumber {
    pub id: PhoneNumberId,
    /// Meta's phone-number id (the table's "ID" column).
    pub phone_number_id: MetaPhoneNumberId,
    pub display_phone_number: String,
    /// The business name WhatsApp verified.
    pub verified_name: Option<String>,
    pub platform_type: PlatformType,
    pub quality_rating: QualityRating,
    /// Set while the rating is below what it was, or Meta's status is flagged, restricted, banned
    /// or disconnected; null otherwise.
    pub quality_alert: Option<QualityAlert>,
    /// Meta's operating status (`CONNECTED`, `PENDING`, `FLAGGED`, ...), as Meta sends it.
    #[schema(examples("CONNECTED", "PENDING", "FLAGGED", "RESTRICTED"))]
    pub status: Option<String>,
    /// `VERIFIED`, `NOT_VERIFIED`, `EXPIRED`, ... Not a sign of registration.
    #[schema(examples("VERIFIED", "NOT_VERIFIED", "EXPIRED"))]
    pub code_verification_status: Option<String>,
    #[schema(examples("APPROVED", "PENDING_REVIEW", "DECLINED"))]
    pub name_status: Option<String>,
    /// The portfolio's messaging limit, e.g. `TIER_250`.
    #[schema(examples("TIER_250", "TIER_2K", "TIER_UNLIMITED"))]
    pub messaging_limit: Option<String>,
    /// `STANDARD`, `HIGH`, `NOT_APPLICABLE`.
    #[schema(examples("STANDARD", "HIGH", "NOT_APPLICABLE"))]
    pub throughput_level: Option<String>,
    /// `LIVE` or `SANDBOX`.
    #[schema(examples("LIVE", "SANDBOX"))]
    pub account_mode: Option<String>,
    /// Also on the WhatsApp Business app (coexistence): Meta registers these itself.
    pub is_on_biz_app: bool,
    pub inbound_agent: Option<AgentSummary>,
    pub registration: Registration,
    /// Show the agent picker (true), or "Register via Actions". Never true with `can_register`.
    pub can_assign_inbound_agent: bool,
    /// Show Register: not yet on the Cloud API and not a coexistence number (`registration`
    /// says whether something blocks it now).
    pub can_register: bool,
    /// Whether agents may pick this number as their outbound number.
    pub can_use_as_outbound: bool,
    pub whatsapp_account_id: AccountId,
    #[serde(serialize_with = "super::time::rfc3339_opt")]
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Set when the number disappeared from its account in Meta; such numbers are kept for their history.
    #[serde(serialize_with = "super::time::rfc3339_opt")]
    pub removed_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub updated_at: DateTime<Utc>,
}

impl From<NumberRecord> for PhoneNumber {
    fn from(record: NumberRecord) -> Self {
        let facts = record.facts();
        let (can_assign_inbound_agent, can_register, can_use_as_outbound) = (
            facts.can_assign_inbound_agent(),
            facts.can_register(),
            facts.can_use_as_outbound(),
        );
        let status = record.registration;
        let row = record.row;
        PhoneNumber {
            id: row.id,
            phone_number_id: row.meta_phone_number_id,
            display_phone_number: row.display_phone_number,
            verified_name: row.verified_name,
            platform_type: row.platform_type,
            quality_rating: row.quality_rating,
            quality_alert: row.quality_alert.map(|a| QualityAlert {
                since: utc(a.since),
                reason: a.reason,
                previous_rating: a.previous_rating,
            }),
            status: row.status,
            code_verification_status: row.code_verification_status,
            name_status: row.name_status,
            messaging_limit: row.messaging_limit,
            throughput_level: row.throughput_level,
            account_mode: row.account_mode,
            is_on_biz_app: row.is_on_biz_app,
            inbound_agent: record.inbound_agent.map(AgentSummary::from),
            registration: Registration {
                state: status.state,
                last_error: row.registration_last_error,
                last_error_code: status.last_error_code,
                retryable: status.retryable,
                last_attempt_at: row.registration_last_attempt_at.map(utc),
                attempts_in_window: count(status.window.calls),
                max_attempts: count(MAX_ATTEMPTS_IN_WINDOW),
                calls_per_click: count(status.window.calls_per_click()),
                next_attempt_at: status
                    .window
                    .blocked_until
                    .or(status.window.paused_until)
                    .map(utc),
                blocked_reason: status.blocked_reason,
            },
            can_assign_inbound_agent,
            can_register,
            can_use_as_outbound,
            whatsapp_account_id: row.whatsapp_account_id,
            last_synced_at: row.last_synced_at.map(utc),
            removed_at: row.removed_at.map(utc),
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        }
    }
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
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
    pub id: AgentId,
    pub name: String,
    pub description: Option<String>,
    pub responder: Responder,
    /// The number this agent sends outbound messages from.
    pub whatsapp_outbound_number: Option<NumberSummary>,
    /// The numbers whose inbound messages this agent answers.
    pub inbound_phone_numbers: Vec<NumberSummary>,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "super::time::rfc3339")]
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
    pub id: AuditEventId,
    /// The token's `sub` of whoever made the change.
    pub actor: String,
    pub action: AuditAction,
    /// Our id of the number concerned, if any.
    pub number_id: Option<PhoneNumberId>,
    pub agent_id: Option<AgentId>,
    pub detail: AuditDetail,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub created_at: DateTime<Utc>,
}

impl From<AuditEventRow> for AuditEvent {
    fn from(row: AuditEventRow) -> Self {
        AuditEvent {
            detail: serde_json::from_str(&row.detail).unwrap_or_default(),
            id: row.id,
            actor: row.actor,
            action: row.action,
            number_id: row.number_id,
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
    pub id: AccountId,
    /// Meta's WhatsApp Business Account id.
    pub waba_id: WabaId,
    pub name: Option<String>,
    pub status: AccountStatus,
    /// When the token expires; null for tokens that never do.
    #[serde(serialize_with = "super::time::rfc3339_opt")]
    pub token_expires_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "super::time::rfc3339_opt")]
    pub last_synced_at: Option<DateTime<Utc>>,
    /// Why the last sync failed, in words for the user; null after a successful sync.
    pub last_sync_error: Option<String>,
    /// How many numbers this account has (not counting removed ones).
    #[schema(minimum = 0)]
    pub phone_number_count: i64,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "super::time::rfc3339")]
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
            phone_number_count: record.phone_number_count,
            created_at: utc(row.created_at),
            updated_at: utc(row.updated_at),
        }
    }
}

/// The account just connected, with how its first sync went and the numbers it brought.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectedAccount {
    #[serde(flatten)]
    pub account: WhatsAppAccount,
    /// True when this workspace had the WABA already: its token was replaced.
    pub reconnected: bool,
    /// What the first sync changed; null when it failed (see `last_sync_error`).
    pub sync: Option<SyncCounts>,
    /// The numbers this connection added to the table, as the table shows them.
    pub added_phone_numbers: Vec<PhoneNumber>,
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
    pub whatsapp_account_id: AccountId,
    pub waba_id: WabaId,
    /// The error's stable code (`meta_error`, `sync_in_progress`, ...).
    pub code: super::ProblemCode,
    pub detail: String,
}

/// What a sync changed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SyncResult {
    #[schema(minimum = 0)]
    pub added: u64,
    #[schema(minimum = 0)]
    pub updated: u64,
    #[schema(minimum = 0)]
    pub removed: u64,
    /// Accounts that could not be synced (the others were).
    pub failed_accounts: Vec<FailedSync>,
}

impl SyncResult {
    pub fn new(counts: SyncCounts, failed: Vec<(AccountRow, ServiceError)>) -> Self {
        SyncResult {
            added: counts.added,
            updated: counts.updated,
            removed: counts.removed,
            failed_accounts: failed
                .into_iter()
                .map(|(account, err)| {
                    let err = super::ApiError::Service(err);
                    FailedSync {
                        whatsapp_account_id: account.id,
                        waba_id: account.waba_id,
                        code: err.code(),
                        detail: err.to_string(),
                    }
                })
                .collect(),
        }
    }
}

/// The options object to pass to `FB.login` for Embedded Signup.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignupLoginOptions {
    pub config_id: String,
    /// Always `code`: the SPA posts the code to `POST /whatsapp/accounts` within 30 seconds.
    #[schema(example = "code")]
    pub response_type: &'static str,
    /// Always true.
    pub override_default_response_type: bool,
    /// `{"setup": {}}`, as Meta's Embedded Signup expects.
    pub extras: SignupExtras,
}

/// `extras` of `FB.login`'s options.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignupExtras {
    /// Prefilled setup data; empty.
    #[schema(value_type = Object)]
    pub setup: serde_json::Map<String, serde_json::Value>,
}

/// What the SPA needs to open Meta's Embedded Signup popup. Never a secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SignupConfig {
    /// Whether the Add Phone Number button can open Meta's popup: a Meta app and an Embedded
    /// Signup configuration are set. In sandbox mode it is false; connect with any code instead.
    pub available: bool,
    /// Meta app id for `FB.init({appId})`; null in sandbox mode.
    pub app_id: Option<String>,
    /// Embedded Signup configuration id for `FB.login({config_id})`; null when not configured.
    pub config_id: Option<String>,
    /// Graph API version for `FB.init({version})`.
    pub graph_version: String,
    pub mode: MetaMode,
    /// Where to load Meta's JavaScript SDK from.
    pub sdk_url: &'static str,
    /// Accept the popup's `message` events only from origins ending with this.
    pub message_origin_suffix: &'static str,
    /// The second argument of `FB.login`; null when `available` is false.
    pub login_options: Option<SignupLoginOptions>,
}

/// One register call made to Meta.
#[derive(Debug, Serialize, ToSchema)]
pub struct RegistrationAttempt {
    pub id: AttemptId,
    #[serde(serialize_with = "super::time::rfc3339")]
    pub attempted_at: DateTime<Utc>,
    pub outcome: AttemptOutcome,
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
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A change of a number's quality rating.
#[derive(Debug, Serialize, ToSchema)]
pub struct QualityEvent {
    pub id: QualityEventId,
    pub old_rating: Option<QualityRating>,
    pub new_rating: QualityRating,
    pub source: QualityEventSource,
    /// Meta's event name when a webhook gave one (`THROUGHPUT_UPGRADE`, `FLAGGED`, ...).
    pub event: Option<String>,
    #[serde(serialize_with = "super::time::rfc3339")]
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
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}
