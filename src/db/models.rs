//! Row structs (what a query returns) and insert forms (what a write sends), one pair per table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{
    agents, audit_events, phone_numbers, quality_events, registration_attempts, whatsapp_accounts,
    workspaces,
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = workspaces)]
pub struct WorkspaceRow {
    pub id: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = whatsapp_accounts)]
pub struct AccountRow {
    pub id: String,
    pub workspace_id: String,
    pub waba_id: String,
    pub name: Option<String>,
    /// The account's Meta access token, encrypted.
    pub access_token_enc: Option<String>,
    pub token_expires_at: Option<NaiveDateTime>,
    /// `connected`, or `needs_reconnect` after Meta rejected the token.
    pub status: String,
    pub last_synced_at: Option<NaiveDateTime>,
    pub last_sync_error: Option<String>,
    /// Set while a sync runs, so replicas and overlapping requests do not sync the same account at once.
    pub sync_lease_until: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = agents)]
pub struct AgentRow {
    pub id: String,
    pub workspace_id: String,
    pub name: String,
    /// `name` folded for case-insensitive search and uniqueness (see `domain::search_key`).
    pub name_key: String,
    pub description: Option<String>,
    pub responder_kind: String,
    /// The responder's settings as JSON, without its secret.
    pub responder_config: String,
    /// The responder's secret (API key or webhook secret), encrypted.
    pub responder_secret_enc: Option<String>,
    pub outbound_phone_number_id: Option<String>,
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
    pub responder_kind: Option<String>,
    pub responder_config: Option<String>,
    pub responder_secret_enc: Option<Option<String>>,
    pub outbound_phone_number_id: Option<Option<String>>,
    pub updated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = phone_numbers)]
pub struct PhoneNumberRow {
    pub id: String,
    pub workspace_id: String,
    pub whatsapp_account_id: String,
    pub phone_number_id: String,
    pub display_phone_number: String,
    /// `display_phone_number` with everything but digits removed: Meta writes numbers both ways.
    pub display_digits: String,
    pub verified_name: Option<String>,
    pub verified_name_key: String,
    pub platform_type: String,
    pub quality_rating: String,
    pub status: Option<String>,
    pub code_verification_status: Option<String>,
    pub name_status: Option<String>,
    pub messaging_limit: Option<String>,
    pub throughput_level: Option<String>,
    pub account_mode: Option<String>,
    pub is_on_biz_app: bool,
    pub inbound_agent_id: Option<String>,
    pub registration_state: String,
    pub registration_last_error: Option<String>,
    pub registration_last_attempt_at: Option<NaiveDateTime>,
    pub registration_lease_until: Option<NaiveDateTime>,
    pub pin_enc: Option<String>,
    pub last_synced_at: Option<NaiveDateTime>,
    pub removed_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = registration_attempts)]
pub struct RegistrationAttemptRow {
    pub id: String,
    pub workspace_id: String,
    pub phone_number_id: String,
    pub actor: String,
    pub outcome: String,
    pub meta_code: Option<i64>,
    pub meta_subcode: Option<i64>,
    pub meta_message: Option<String>,
    pub fbtrace_id: Option<String>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = audit_events)]
pub struct AuditEventRow {
    pub id: String,
    pub workspace_id: String,
    pub actor: String,
    pub action: String,
    pub phone_number_id: Option<String>,
    pub agent_id: Option<String>,
    /// JSON object with the action's particulars (previous and new values).
    pub detail: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = quality_events)]
pub struct QualityEventRow {
    pub id: String,
    pub workspace_id: String,
    pub phone_number_id: String,
    pub old_rating: Option<String>,
    pub new_rating: String,
    /// `sync` or `webhook`.
    pub source: String,
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
    pub platform_type: String,
    pub quality_rating: String,
    pub status: Option<String>,
    pub code_verification_status: Option<String>,
    pub name_status: Option<String>,
    pub messaging_limit: Option<String>,
    pub throughput_level: Option<String>,
    pub account_mode: Option<String>,
    pub is_on_biz_app: bool,
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
            quality_rating: row.quality_rating.clone(),
            status: row.status.clone(),
            code_verification_status: row.code_verification_status.clone(),
            name_status: row.name_status.clone(),
            messaging_limit: row.messaging_limit.clone(),
            throughput_level: row.throughput_level.clone(),
            account_mode: row.account_mode.clone(),
            is_on_biz_app: row.is_on_biz_app,
        }
    }
}
