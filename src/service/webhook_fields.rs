//! Webhook fields other than messages: a number's quality or name changed (re-read the number
//! from Meta, record the quality event with source `webhook`), or the account changed (a removed
//! partner or a deleted account disconnects it; other events are recorded).

use super::inbound::Outcome;
use super::sync::{apply_to_row, meta_fields};
use super::{AuditDetail, ServiceError};
use crate::auth::Principal;
use crate::db::models::{AccountRow, PhoneNumberRow};
use crate::db::webhook_jobs::JobRow;
use crate::db::{self, accounts, phone_numbers as numbers, write_tx};
use crate::domain::webhook::{self, FieldChange};
use crate::domain::{AuditAction, JobKind, LeaseOwner, QualityEventSource, Role, WabaId};
use crate::state::AppState;

/// `account_update` events after which the account no longer works for us.
const ACCOUNT_GONE: &[&str] = &[
    "PARTNER_REMOVED",
    "ACCOUNT_DELETED",
    "PARTNER_APP_UNINSTALLED",
];

pub(super) async fn handle(
    state: &AppState,
    job: &JobRow,
    owner: LeaseOwner,
) -> Result<Outcome, ServiceError> {
    let change = match webhook::field_change(&job.payload) {
        Ok(change) => change,
        Err(err) => return Ok(Outcome::Dead(err.to_string())),
    };
    let Some(waba) = change.waba_id.clone().map(WabaId::from) else {
        return Ok(Outcome::Done(Some("the change names no WABA".into())));
    };
    let account = {
        let waba = waba.clone();
        state
            .db
            .run(move |conn| accounts::by_waba(conn, &waba).map_err(ServiceError::from))
            .await?
    };
    let Some(account) = account else {
        return Ok(Outcome::Done(Some(format!(
            "WABA {waba} is not connected here"
        ))));
    };
    match job.kind {
        JobKind::AccountUpdate => account_update(state, &account, &change).await,
        _ => number_update(state, job, owner, &account, &change).await,
    }
}

/// Re-reads the number the change is about and stores what Meta says now.
async fn number_update(
    state: &AppState,
    job: &JobRow,
    owner: LeaseOwner,
    account: &AccountRow,
    change: &FieldChange,
) -> Result<Outcome, ServiceError> {
    let Some(display) = change.text("display_phone_number") else {
        return Ok(Outcome::Done(Some("the change names no number".into())));
    };
    let digits: String = display.chars().filter(char::is_ascii_digit).collect();
    if job.kind == JobKind::NameUpdate && change.text("decision").as_deref() != Some("APPROVED") {
        return Ok(Outcome::Done(Some(format!(
            "name decision {}: nothing to apply",
            change.text("decision").unwrap_or_default()
        ))));
    }
    let account_id = account.id;
    let number: Option<PhoneNumberRow> = state
        .db
        .run(move |conn| {
            Ok::<_, ServiceError>(
                numbers::for_account(conn, account_id)?
                    .into_iter()
                    .find(|n| n.removed_at.is_none() && n.display_digits == digits),
            )
        })
        .await?;
    let Some(number) = number else {
        return Ok(Outcome::Done(Some(format!(
            "no number {display} in WABA {}",
            account.waba_id
        ))));
    };
    let Some(token) = account
        .access_token_enc
        .as_ref()
        .and_then(|sealed| state.secrets.decrypt(sealed).ok())
    else {
        return Ok(Outcome::Done(Some(
            "the account has no usable token".into(),
        )));
    };
    if !super::inbound::still_ours(state, job, owner).await? {
        return Ok(Outcome::LostLease);
    }
    let waba = account.waba_id.clone();
    state
        .db
        .run(move |conn| write_tx(conn, |conn| super::budget::spend(conn, &waba, 1, db::now())))
        .await?;
    let meta = state
        .meta
        .get_phone_number(&token, &number.meta_phone_number_id)
        .await;
    super::budget::note_usage(
        state,
        number.meta_phone_number_id.as_str(),
        &account.waba_id,
        &meta,
    )
    .await;
    let meta = match meta {
        Ok(meta) => meta,
        Err(err) if err.retryable() => return Ok(Outcome::Retry(err.to_string())),
        Err(err) => {
            return Ok(Outcome::Done(Some(format!(
                "re-reading the number failed: {err}"
            ))))
        }
    };
    let ws = number.workspace_id.clone();
    let id = number.id;
    state
        .db
        .run(move |conn| {
            write_tx(conn, |conn| {
                let Some(current) = numbers::get(conn, &ws, id)? else {
                    return Ok::<_, ServiceError>(());
                };
                let now = db::now();
                let fields = meta_fields(&meta, Some(&current), now);
                apply_to_row(
                    conn,
                    &current,
                    account_id,
                    &fields,
                    QualityEventSource::Webhook,
                    now,
                )
            })
        })
        .await?;
    if job.kind == JobKind::NameUpdate {
        // Meta applies an approved name once the number is registered again.
        let caller = Principal {
            subject: "meta-webhook".into(),
            workspace_id: number.workspace_id.clone(),
            role: Role::Editor,
        };
        return Ok(
            match super::registration::reregister(state, &caller, number.id).await {
                Ok(_) => Outcome::Done(None),
                Err(err) => Outcome::Done(Some(format!("re-registering for the new name: {err}"))),
            },
        );
    }
    Ok(Outcome::Done(None))
}

async fn account_update(
    state: &AppState,
    account: &AccountRow,
    change: &FieldChange,
) -> Result<Outcome, ServiceError> {
    let event = change.text("event").unwrap_or_default();
    let caller = Principal {
        subject: "meta-webhook".into(),
        workspace_id: account.workspace_id.clone(),
        role: Role::Editor,
    };
    if !ACCOUNT_GONE.contains(&event.as_str()) {
        let detail = AuditDetail {
            account_id: Some(account.id),
            waba_id: Some(account.waba_id.clone()),
            meta_event: Some(event.clone()),
            ..AuditDetail::default()
        };
        let row = super::audit_row(&caller, AuditAction::AccountMetaEvent, None, None, &detail);
        state
            .db
            .run(move |conn| crate::db::audit::insert(conn, &row).map_err(ServiceError::from))
            .await?;
        return Ok(Outcome::Done(Some(format!(
            "account_update {event}: recorded in the audit trail"
        ))));
    }
    match super::accounts::disconnect(state, &caller, account.id).await {
        Ok(()) | Err(ServiceError::AccountNotFound) => Ok(Outcome::Done(Some(format!(
            "account_update {event}: the account was disconnected"
        )))),
        Err(err) => Err(err),
    }
}
