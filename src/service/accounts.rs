//! Connecting WhatsApp Business Accounts: Embedded Signup's code, or a system-user token.

use super::phone_numbers::NumberRecord;
use super::sync::{sync_account, SyncCounts};
use super::{audit_row, AuditDetail, ServiceError};
use crate::auth::Principal;
use crate::db::models::AccountRow;
use crate::db::{self, accounts, agents, audit, phone_numbers as numbers, write_tx};
use crate::domain::EventKind;
use crate::domain::{
    AccountId, AccountStatus, AuditAction, RuleError, Secret, WabaId, WorkspaceId,
};
use crate::meta::codes::{AUTH_CODE_EXPIRED, AUTH_CODE_USED, INVALID_PARAMETER};
use crate::meta::{MetaError, TokenInfo};
use crate::state::AppState;

/// How the client proves access to a WABA.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Embedded Signup finished in the browser: exchange the code (30-second TTL) for a business token.
    SignupCode {
        code: Secret,
        waba_id: Option<WabaId>,
    },
    /// A system-user access token for the WABA.
    SystemUserToken {
        waba_id: WabaId,
        access_token: Secret,
    },
}

/// An account with its number count.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    pub row: AccountRow,
    pub phone_number_count: i64,
}

/// The result of connecting: the account, whether it is new, and how its first sync went.
#[derive(Debug)]
pub struct Connected {
    pub account: AccountRecord,
    pub created: bool,
    pub sync: Option<SyncCounts>,
    /// The numbers the first sync added, as the table shows them.
    pub added: Vec<NumberRecord>,
}

/// Meta's ids are short alphanumeric strings ([`crate::domain::text::WABA_ID`]).
pub fn validate_waba_id(waba_id: &str) -> Result<WabaId, RuleError> {
    crate::domain::text::WABA_ID.check(waba_id)?;
    Ok(WabaId::from(waba_id))
}

async fn owner_of(state: &AppState, waba_id: &WabaId) -> Result<Option<AccountRow>, ServiceError> {
    let waba_id = waba_id.clone();
    state
        .db
        .run(move |conn| accounts::by_waba(conn, &waba_id).map_err(ServiceError::from))
        .await
}

/// What a failed code exchange means for the user: a dead code (reopen the popup), a missing
/// permission, or any other Meta error.
fn exchange_error(err: MetaError) -> ServiceError {
    let dead_code = err.code() == Some(INVALID_PARAMETER)
        || matches!(err.subcode(), Some(AUTH_CODE_EXPIRED | AUTH_CODE_USED));
    if err.is_permission_missing() {
        ServiceError::MetaPermissionMissing(err)
    } else if dead_code {
        ServiceError::SignupCodeInvalid(err)
    } else {
        ServiceError::Meta(err)
    }
}

/// Meta errors while proving the token: missing permissions told apart from the rest.
fn token_error(err: MetaError) -> ServiceError {
    if err.is_permission_missing() {
        ServiceError::MetaPermissionMissing(err)
    } else {
        ServiceError::Meta(err)
    }
}

/// Connects (or re-connects) a WABA to the caller's workspace, subscribes our app to its webhooks,
/// and syncs its numbers. A WABA of another workspace is refused.
pub async fn connect(
    state: &AppState,
    caller: &Principal,
    credentials: Credentials,
) -> Result<Connected, ServiceError> {
    let ws = caller.workspace_id.clone();
    // Refuse early when the WABA is known to belong elsewhere, before any call to Meta.
    let given_waba = match &credentials {
        Credentials::SignupCode { waba_id, .. } => waba_id.clone(),
        Credentials::SystemUserToken { waba_id, .. } => Some(waba_id.clone()),
    };
    if let Some(waba) = &given_waba {
        if owner_of(state, waba)
            .await?
            .is_some_and(|a| a.workspace_id != ws)
        {
            return Err(ServiceError::AccountConnectedElsewhere);
        }
    }
    let (token, waba_id, expires_at) = match credentials {
        Credentials::SignupCode { code, waba_id } => {
            let token = state
                .meta
                .exchange_code(code.expose())
                .await
                .map_err(exchange_error)?;
            // Needed to find the WABA when the SPA did not pass it; otherwise only for the expiry.
            let info = match (state.meta.inspect_token(&token).await, &waba_id) {
                (Ok(info), _) => info,
                (Err(err), None) => return Err(token_error(err)),
                (Err(err), Some(_)) => {
                    tracing::warn!(error = %err, "token inspection failed; connecting the WABA given");
                    TokenInfo::default()
                }
            };
            let waba_id = match waba_id {
                Some(id) => id,
                None => info.waba_ids.first().cloned().ok_or_else(|| {
                    ServiceError::Invalid(
                        "The signup granted no WhatsApp Business Account; pass `waba_id`.".into(),
                    )
                })?,
            };
            let expires = info
                .expires_at
                .and_then(|t| chrono::DateTime::from_timestamp(t, 0))
                .map(|t| t.naive_utc());
            (token, waba_id, expires)
        }
        Credentials::SystemUserToken {
            waba_id,
            access_token,
        } => (access_token.expose().to_owned(), waba_id, None),
    };
    // Reading the WABA and subscribing to it are two calls of its budget.
    let waba = waba_id.clone();
    state
        .db
        .run(move |conn| write_tx(conn, |conn| super::budget::spend(conn, &waba, 2, db::now())))
        .await?;
    // The name is for display only: a failure to read it does not stop the connection (the
    // subscription and the sync below prove the token).
    let name = state.meta.get_waba_name(&token, &waba_id).await;
    super::budget::note_usage(state, waba_id.as_str(), &waba_id, &name).await;
    let name = match name {
        Ok(name) => name,
        Err(err) if err.is_token_rejected() => return Err(ServiceError::Meta(err)),
        Err(err) => {
            tracing::warn!(waba = %waba_id, error = %err, "could not read the WABA's name");
            None
        }
    };
    // Without this subscription Meta sends no webhooks for the WABA, silently.
    let subscribed = state.meta.subscribe_app(&token, &waba_id).await;
    super::budget::note_usage(state, waba_id.as_str(), &waba_id, &subscribed).await;
    subscribed.map_err(token_error)?;

    let token_enc = state.secrets.encrypt(&token);
    let who = caller.clone();
    let (account, created) = state
        .db
        .run(move |conn| {
            write_tx(conn, |conn| {
                let now = db::now();
                let elsewhere = |e: diesel::result::Error| {
                    if db::is_unique_violation(&e) {
                        ServiceError::AccountConnectedElsewhere
                    } else {
                        e.into()
                    }
                };
                // This workspace's account of the WABA, live or disconnected before (connecting
                // again brings it back with its numbers' ids and history).
                let ours = match accounts::by_waba(conn, &waba_id)? {
                    Some(existing) if existing.workspace_id != ws => {
                        return Err(ServiceError::AccountConnectedElsewhere)
                    }
                    Some(existing) => Some(existing),
                    None => accounts::disconnected(conn, &ws, &waba_id)?,
                };
                let (row, created) = match ours {
                    Some(existing) => {
                        accounts::replace_token(
                            conn,
                            existing.id,
                            &token_enc,
                            expires_at,
                            name.as_deref(),
                            now,
                        )
                        .map_err(elsewhere)?;
                        let row = accounts::get(conn, &ws, existing.id)?
                            .ok_or_else(|| ServiceError::Internal("account vanished".into()))?;
                        (row, false)
                    }
                    None => {
                        let row = AccountRow {
                            id: AccountId::random(),
                            workspace_id: ws.clone(),
                            waba_id: waba_id.clone(),
                            name: name.clone(),
                            access_token_enc: Some(token_enc.clone()),
                            token_expires_at: expires_at,
                            status: AccountStatus::Connected,
                            last_synced_at: None,
                            last_sync_error: None,
                            last_sync_counts: None,
                            sync_lease_until: None,
                            sync_lease_owner: None,
                            created_at: now,
                            updated_at: now,
                            last_sync_failed_at: None,
                            last_sync_failure: None,
                        };
                        accounts::insert(conn, &row).map_err(elsewhere)?;
                        (row, true)
                    }
                };
                let detail = AuditDetail {
                    account_id: Some(row.id),
                    waba_id: Some(row.waba_id.clone()),
                    ..AuditDetail::default()
                };
                let action = if created {
                    AuditAction::AccountConnected
                } else {
                    AuditAction::AccountReconnected
                };
                audit::insert(conn, &audit_row(&who, action, None, None, &detail))?;
                Ok((row, created))
            })
        })
        .await?;
    let sync = sync_account(state, &account).await.ok();
    let added_ids = sync
        .as_ref()
        .map(|s| s.added_ids.clone())
        .unwrap_or_default();
    let added = super::phone_numbers::get_many(&state.db, &caller.workspace_id, added_ids).await?;
    let record = get(state, &caller.workspace_id, account.id).await?;
    Ok(Connected {
        account: record,
        created,
        sync,
        added,
    })
}

/// The workspace's accounts.
pub async fn list(
    state: &AppState,
    workspace: &WorkspaceId,
) -> Result<Vec<AccountRecord>, ServiceError> {
    let ws = workspace.clone();
    state
        .db
        .run(move |conn| {
            let counts = accounts::number_counts(conn, &ws)?;
            Ok(accounts::list(conn, &ws)?
                .into_iter()
                .map(|row| AccountRecord {
                    phone_number_count: counts.get(&row.id).copied().unwrap_or(0),
                    row,
                })
                .collect())
        })
        .await
}

/// One account, or [`ServiceError::AccountNotFound`].
pub async fn get(
    state: &AppState,
    workspace: &WorkspaceId,
    id: AccountId,
) -> Result<AccountRecord, ServiceError> {
    list(state, workspace)
        .await?
        .into_iter()
        .find(|a| a.row.id == id)
        .ok_or(ServiceError::AccountNotFound)
}

/// Disconnects an account of the workspace: our app's webhook subscription is ended while the
/// token still works (best effort), then, in one transaction, the token is wiped, the numbers are
/// marked removed and stop being any agent's inbound or outbound number, each change audited.
/// The WABA and its numbers are then free to be connected again, by any workspace.
pub async fn disconnect(
    state: &AppState,
    caller: &Principal,
    id: AccountId,
) -> Result<(), ServiceError> {
    let account = get(state, &caller.workspace_id, id).await?.row;
    let unsubscribed = unsubscribe(state, &account).await;
    let who = caller.clone();
    state
        .db
        .run(move |conn| {
            write_tx(conn, |conn| {
                let now = db::now();
                let ws = &who.workspace_id;
                let account = accounts::get(conn, ws, id)?.ok_or(ServiceError::AccountNotFound)?;
                let cleared = "account_disconnected".to_owned();
                for (number_id, display, agent_id) in numbers::inbound_agents_of_account(conn, id)?
                {
                    let detail = AuditDetail {
                        display_phone_number: Some(display),
                        previous_agent_id: Some(agent_id),
                        reason: Some(cleared.clone()),
                        ..AuditDetail::default()
                    };
                    let action = AuditAction::InboundAgentCleared;
                    let row = audit_row(&who, action, Some(number_id), Some(agent_id), &detail);
                    audit::insert(conn, &row)?;
                    let data = serde_json::json!({"number_id": number_id, "agent_id": null});
                    super::events::emit(conn, ws, EventKind::InboundAgentChanged, data)?;
                }
                for (agent_id, name, number_id) in agents::clear_outbound_in_account(conn, id, now)?
                {
                    let detail = AuditDetail {
                        agent_name: Some(name),
                        previous_number_id: Some(number_id),
                        reason: Some(cleared.clone()),
                        ..AuditDetail::default()
                    };
                    let action = AuditAction::OutboundNumberCleared;
                    let row = audit_row(&who, action, Some(number_id), Some(agent_id), &detail);
                    audit::insert(conn, &row)?;
                    let data = serde_json::json!({"agent_id": agent_id, "number_id": null});
                    super::events::emit(conn, ws, EventKind::OutboundNumberChanged, data)?;
                }
                let removed = numbers::release_account(conn, id, now)?;
                if !accounts::disconnect(conn, id, now)? {
                    return Err(ServiceError::AccountNotFound);
                }
                let detail = AuditDetail {
                    account_id: Some(id),
                    waba_id: Some(account.waba_id.clone()),
                    numbers_removed: Some(removed as u64),
                    meta_unsubscribed: Some(unsubscribed),
                    ..AuditDetail::default()
                };
                let row = audit_row(&who, AuditAction::AccountDisconnected, None, None, &detail);
                audit::insert(conn, &row)?;
                let data = serde_json::json!({"account_id": id});
                super::events::emit(conn, ws, EventKind::NumberRemoved, data)?;
                Ok(())
            })
        })
        .await
}

/// Ends our app's subscription to the account's WABA, spending a call of its budget; false when
/// that could not be done (no usable token, budget spent, Meta refused or unreachable). Done before
/// the account is released, so it can never end the subscription of a workspace that connects the
/// WABA next.
async fn unsubscribe(state: &AppState, account: &AccountRow) -> bool {
    let Some(token) = account
        .access_token_enc
        .as_ref()
        .and_then(|enc| state.secrets.decrypt(enc).ok())
    else {
        return false;
    };
    let waba = account.waba_id.clone();
    let spent = state
        .db
        .run(move |conn| write_tx(conn, |conn| super::budget::spend(conn, &waba, 1, db::now())))
        .await;
    if let Err(err) = spent {
        tracing::warn!(waba = %account.waba_id, error = %err.diagnostic(), "disconnect: webhook subscription left in place");
        return false;
    }
    let outcome = state.meta.unsubscribe_app(&token, &account.waba_id).await;
    let waba = &account.waba_id;
    super::budget::note_usage(state, waba.as_str(), waba, &outcome).await;
    match outcome {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(waba = %account.waba_id, error = %err, "disconnect: Meta did not end the webhook subscription");
            false
        }
    }
}

/// Syncs one account of the workspace now.
pub async fn sync_one(
    state: &AppState,
    caller: &Principal,
    id: AccountId,
) -> Result<(AccountRecord, SyncCounts), ServiceError> {
    let workspace = &caller.workspace_id;
    let account = get(state, workspace, id).await?;
    let counts = super::sync::sync_manually(state, caller, &account.row).await?;
    Ok((get(state, workspace, id).await?, counts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_debug_shows_no_token_or_code() {
        let token = Credentials::SystemUserToken {
            waba_id: WabaId::from("1"),
            access_token: Secret::from("EAAB-very-secret"),
        };
        let code = Credentials::SignupCode {
            code: Secret::from("AQ-signup-code"),
            waba_id: None,
        };
        assert!(!format!("{token:?}{code:?}").contains("secret"));
        assert!(!format!("{code:?}").contains("AQ-signup"));
    }
}
