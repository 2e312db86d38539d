//! Row structs (what a query returns) and insert forms (what a write sends), one pair per table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use crate::crypto::Sealed;

use crate::domain::ids::{
    AccountId, AgentId, AttemptId, AuditEventId, LeaseOwner, MetaPhoneNumberId, PhoneNumberId,
    QualityEventId, WabaId, WorkspaceId,
};
use crate::domain::vocabulary::{
    AccountStatus, AttemptOutcome, AuditAction, PlatformType, QualityEventSource, QualityRating,
    RegistrationState, ResponderKind,
};

use super::schema::{
    agents, audit_events, phone_numbers, quality_events, registration_attempts, whatsapp_accounts,
    workspaces,
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = workspaces)]
pub struct WorkspaceRow {
    pub id: WorkspaceId,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = whatsapp_accounts)]
pub struct AccountRow {
    pub id: AccountId,
    pub workspace_id: WorkspaceId,
    pub waba_id: WabaId,
    pub name: Option<String>,
    /// The account's Meta access token, encrypted.
    pub access_token_enc: Option<Sealed>,
    pub token_expires_at: Option<NaiveDateTime>,
    pub status: AccountStatus,
    pub last_synced_at: Option<NaiveDateTime>,
    pub last_sync_error: Option<String>,
    /// What the last successful sync changed (JSON of `SyncCounts`).
    pub last_sync_counts: Option<String>,
    /// Set while a sync runs, so replicas and overlapping requests do not sync the same account at once.
    pub sync_lease_until: Option<NaiveDateTime>,
    /// Who holds the sync lease: only that sync renews or releases it.
    pub sync_lease_owner: Option<LeaseOwner>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// When the last sync failed for a reason worth retrying, and Meta's error then (JSON of
    /// `MetaError`); cleared by a successful sync.
    pub last_sync_failed_at: Option<NaiveDateTime>,
    pub last_sync_failure: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = agents)]
pub struct AgentRow {
    pub id: AgentId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    /// `name` folded for case-insensitive search and uniqueness (see `domain::search_key`).
    pub name_key: String,
    pub description: Option<String>,
    pub responder_kind: ResponderKind,
    /// The responder's settings as JSON, without its secret.
    pub responder_config: String,
    /// The responder's secret (API key or webhook secret), encrypted.
    pub responder_secret_enc: Option<Sealed>,
    pub outbound_number_id: Option<PhoneNumberId>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Changes to an agent; `None` leaves a column as it is, `Some(None)` sets it to NULL.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = agents)]
pub struct AgentChanges {
    pub name: Option<String>,
    pub name_key: Option<String>,
    pub description: Option<Option<String>>,
    pub responder_kind: Option<ResponderKind>,
    pub responder_config: Option<String>,
    pub responder_secret_enc: Option<Option<Sealed>>,
    pub outbound_number_id: Option<Option<PhoneNumberId>>,
    pub updated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = phone_numbers, check_for_backend(super::MultiBackend))]
pub struct PhoneNumberRow {
    pub id: PhoneNumberId,
    pub workspace_id: WorkspaceId,
    pub whatsapp_account_id: AccountId,
    pub meta_phone_number_id: MetaPhoneNumberId,
    pub display_phone_number: String,
    /// `display_phone_number` with everything but digits removed: Meta writes numbers both ways.
    pub display_digits: String,
    pub verified_name: Option<String>,
    pub verified_name_key: String,
    pub platform_type: PlatformType,
    pub quality_rating: QualityRating,
    /// `quality_rating.rank()`, stored for the table's quality sort.
    pub quality_rank: String,
    pub status: Option<String>,
    pub code_verification_status: Option<String>,
    pub name_status: Option<String>,
    pub messaging_limit: Option<String>,
    pub throughput_level: Option<String>,
    pub account_mode: Option<String>,
    pub is_on_biz_app: bool,
    pub inbound_agent_id: Option<AgentId>,
    /// Our record of the last attempt (`not_registered`, `registered` or `failed`); what the API
    /// reports is derived from it and Meta's facts (`domain::phone_number`).
    pub registration_state: RegistrationState,
    pub registration_last_error: Option<String>,
    /// Meta's code of the last failed call, when Meta gave one.
    pub registration_last_error_code: Option<i64>,
    #[diesel(deserialize_as = super::types::MaybeTime)]
    pub registration_last_attempt_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = super::types::MaybeTime)]
    pub registration_lease_until: Option<NaiveDateTime>,
    /// Who holds the lease: only that attempt renews or releases it.
    pub registration_lease_owner: Option<LeaseOwner>,
    pub pin_enc: Option<Sealed>,
    #[diesel(deserialize_as = super::types::MaybeTime)]
    pub last_synced_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = super::types::MaybeTime)]
    pub removed_at: Option<NaiveDateTime>,
    #[diesel(deserialize_as = super::types::DbTime)]
    pub created_at: NaiveDateTime,
    #[diesel(deserialize_as = super::types::DbTime)]
    pub updated_at: NaiveDateTime,
    /// Set while the number's quality is bad (`domain::phone_number::QualityAlert`).
    pub quality_alert: Option<crate::domain::phone_number::QualityAlert>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = registration_attempts)]
pub struct RegistrationAttemptRow {
    pub id: AttemptId,
    pub workspace_id: WorkspaceId,
    pub number_id: PhoneNumberId,
    pub actor: String,
    pub outcome: AttemptOutcome,
    pub meta_code: Option<i64>,
    pub meta_subcode: Option<i64>,
    pub meta_message: Option<String>,
    pub fbtrace_id: Option<String>,
    pub created_at: NaiveDateTime,
    /// Meta did not answer usefully (down, timing out, a transient error).
    pub meta_unavailable: bool,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditEventRow {
    pub id: AuditEventId,
    pub workspace_id: WorkspaceId,
    pub actor: String,
    pub action: AuditAction,
    pub number_id: Option<PhoneNumberId>,
    pub agent_id: Option<AgentId>,
    /// JSON object with the action's particulars (previous and new values).
    pub detail: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = quality_events)]
pub struct QualityEventRow {
    pub id: QualityEventId,
    pub workspace_id: WorkspaceId,
    pub number_id: PhoneNumberId,
    pub old_rating: Option<QualityRating>,
    pub new_rating: QualityRating,
    pub source: QualityEventSource,
    /// Meta's event name when a webhook said (`FLAGGED`, `THROUGHPUT_UPGRADE`, ...).
    pub event: Option<String>,
    pub created_at: NaiveDateTime,
}

/// What Meta says about a number, as stored: every column sync may change.
#[derive(Debug, Clone, PartialEq, Eq, AsChangeset)]
#[diesel(table_name = phone_numbers, treat_none_as_null = true)]
pub struct MetaFields {
    pub display_phone_number: String,
    pub display_digits: String,
    pub verified_name: Option<String>,
    pub verified_name_key: String,
    pub platform_type: PlatformType,
    pub quality_rating: QualityRating,
    /// `quality_rating.rank()`, stored for the table's quality sort.
    pub quality_rank: String,
    pub status: Option<String>,
    pub code_verification_status: Option<String>,
    pub name_status: Option<String>,
    pub messaging_limit: Option<String>,
    pub throughput_level: Option<String>,
    pub account_mode: Option<String>,
    pub is_on_biz_app: bool,
    /// Follows the rating and status (`QualityAlert::next`).
    pub quality_alert: Option<crate::domain::phone_number::QualityAlert>,
}

impl MetaFields {
    /// The same fields read off a stored row, to tell what a sync changed.
    pub fn of(row: &PhoneNumberRow) -> Self {
        MetaFields {
            display_phone_number: row.display_phone_number.clone(),
            display_digits: row.display_digits.clone(),
            verified_name: row.verified_name.clone(),
            verified_name_key: row.verified_name_key.clone(),
            platform_type: row.platform_type.clone(),
            quality_rating: row.quality_rating,
            quality_rank: row.quality_rank.clone(),
            status: row.status.clone(),
            code_verification_status: row.code_verification_status.clone(),
            name_status: row.name_status.clone(),
            messaging_limit: row.messaging_limit.clone(),
            throughput_level: row.throughput_level.clone(),
            account_mode: row.account_mode.clone(),
            is_on_biz_app: row.is_on_biz_app,
            quality_alert: row.quality_alert,
        }
    }
}
