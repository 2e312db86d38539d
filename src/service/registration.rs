//! The Register action: one call to Meta at a time per number, within Meta's limit of 10 register
//! calls per number in 72 hours, each recorded in the ledger, with the same PIN every time.

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use chrono::TimeDelta;
use std::time::Duration;

use super::phone_numbers::{calls_in_window, load, NumberRecord};
use super::sync::{apply_to_row, meta_fields};
use super::ServiceError;
use crate::auth::Principal;
use crate::crypto::Sealed;
use crate::db::models::{AccountRow, MetaFields, RegistrationAttemptRow};
use crate::db::{self, accounts, phone_numbers as numbers, registration, write_tx};
use crate::domain::phone_number::THROUGHPUT_NOT_APPLICABLE;
use crate::domain::registration::{backoff, lease, WindowUse};
use crate::domain::EventKind;
use crate::domain::{
    AttemptId, AttemptOutcome, LeaseOwner, PhoneNumberId, PlatformType, QualityEventSource,
    RegistrationState,
};
use crate::meta::{ErrorClass, MetaError};
use crate::state::AppState;

/// A fresh 6-digit PIN from the operating system's CSPRNG (rejection sampling: no modulo bias).
pub fn new_pin() -> String {
    loop {
        let n = OsRng.next_u32();
        if n < 4_294_000_000 {
            return format!("{:06}", n % 1_000_000);
        }
    }
}

struct Claim {
    number: NumberRecord,
    account: AccountRow,
    pin_enc: Sealed,
    /// This click: the owner of the number's lease while it runs.
    owner: LeaseOwner,
    /// How long the lease lasts between renewals (derived from the settings).
    lease: TimeDelta,
    /// Calls this click may make (the policy's per-click cap, within what the window has left).
    calls: usize,
}

/// Registers the number with Meta's Cloud API. The work runs on its own task, so a client that
/// disconnects mid-way does not leave the number half-recorded.
pub async fn register(
    state: &AppState,
    caller: &Principal,
    number_id: PhoneNumberId,
) -> Result<NumberRecord, ServiceError> {
    spawn_run(state, caller, number_id, Purpose::Register).await
}

/// Registers a number already on the Cloud API again, as Meta requires to apply a newly approved
/// display name (`phone_number_name_update`), through the same lease, window and ledger.
/// Coexistence numbers are left alone: Meta registers those itself.
pub async fn reregister(
    state: &AppState,
    caller: &Principal,
    number_id: PhoneNumberId,
) -> Result<NumberRecord, ServiceError> {
    spawn_run(state, caller, number_id, Purpose::ApplyNewName).await
}

/// Why a number is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The Register button: the number is not on the Cloud API yet.
    Register,
    /// Meta approved a new name, applied by registering again.
    ApplyNewName,
}

async fn spawn_run(
    state: &AppState,
    caller: &Principal,
    number_id: PhoneNumberId,
    purpose: Purpose,
) -> Result<NumberRecord, ServiceError> {
    let (state, caller) = (state.clone(), caller.clone());
    tokio::spawn(async move { run(&state, &caller, number_id, purpose).await })
        .await
        .map_err(|e| ServiceError::Internal(format!("registration task failed: {e}")))?
}

async fn run(
    state: &AppState,
    caller: &Principal,
    number_id: PhoneNumberId,
    purpose: Purpose,
) -> Result<NumberRecord, ServiceError> {
    let claim = claim(state, caller, number_id, purpose).await?;
    let result = register_claimed(state, caller, &claim).await;
    if let Err(err) = &result {
        // Whatever went wrong, the failure is recorded and the number's lease released.
        if let Err(release) = fail(state, &claim, err).await {
            tracing::error!(error = %release.diagnostic(), "could not release the registration lease");
        }
    }
    result
}

async fn register_claimed(
    state: &AppState,
    caller: &Principal,
    claim: &Claim,
) -> Result<NumberRecord, ServiceError> {
    let token = match claim
        .account
        .access_token_enc
        .as_ref()
        .map(|t| state.secrets.decrypt(t))
    {
        Some(Ok(token)) => token,
        _ => return Err(ServiceError::AccountNeedsReconnect),
    };
    let pin = state
        .secrets
        .decrypt(&claim.pin_enc)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let meta_id = claim.number.row.meta_phone_number_id.clone();

    let mut outcome = Err(MetaError::Unexpected("no register call was made".into()));
    for call in 0..claim.calls {
        if call > 0 {
            tokio::time::sleep(backoff(state.settings.register_retry_base_ms, call)).await;
        }
        // Still ours, still within Meta's window, and into the ledger before the call: should
        // the process die during it, the call still counts.
        let attempt_id = before_call(state, caller, claim).await?;
        outcome = state.meta.register(&token, &meta_id, &pin).await;
        finish_attempt(state, attempt_id, outcome.as_ref().err()).await?;
        match &outcome {
            Err(err) if err.class() == ErrorClass::Transient => continue,
            _ => break,
        }
    }

    match outcome {
        Ok(()) => {
            // Re-reading the number is a call of its WABA's budget; past it, Meta's yes suffices.
            let waba = claim.account.waba_id.clone();
            let spent = state
                .db
                .run(move |conn| {
                    write_tx(conn, |conn| super::budget::spend(conn, &waba, 1, db::now()))
                })
                .await;
            let reread = match spent {
                Ok(()) => {
                    let reread = state.meta.get_phone_number(&token, &meta_id).await;
                    let waba = &claim.account.waba_id;
                    super::budget::note_usage(state, meta_id.as_str(), waba, &reread).await;
                    reread
                }
                Err(err) => Err(MetaError::Unexpected(err.diagnostic())),
            };
            if let Err(err) = &reread {
                tracing::warn!(meta_phone_number_id = %meta_id, error = %err, "registered, but re-reading the number failed");
            }
            let (claim_number, account_id) = (claim.number.row.clone(), claim.account.id);
            let owner = claim.owner;
            let ws = caller.workspace_id.clone();
            state
                .db
                .run(move |conn| {
                    write_tx(conn, |conn| {
                        let now = db::now();
                        let current =
                            numbers::get(conn, &ws, claim_number.id)?.unwrap_or(claim_number);
                        let mut fields = match &reread {
                            Ok(meta) => meta_fields(meta, Some(&current), now),
                            Err(_) => MetaFields::of(&current),
                        };
                        // Meta said yes: the number is on the Cloud API even if a read lags behind.
                        fields.platform_type = PlatformType::CloudApi;
                        if fields.throughput_level.as_deref() == Some(THROUGHPUT_NOT_APPLICABLE) {
                            fields.throughput_level = Some("STANDARD".into());
                        }
                        let source = QualityEventSource::Registration;
                        apply_to_row(conn, &current, account_id, &fields, source, now)?;
                        let registered = RegistrationState::Registered;
                        numbers::finish_registration(
                            conn, current.id, owner, registered, None, now,
                        )?;
                        let data = serde_json::json!({"number_id": current.id});
                        super::events::emit(conn, &ws, EventKind::RegistrationSucceeded, data)?;
                        load(conn, &ws, current.id)
                    })
                })
                .await
        }
        Err(err) => {
            if err.is_token_rejected() {
                let account_id = claim.account.id;
                state
                    .db
                    .run(move |conn| {
                        accounts::mark_needs_reconnect(conn, account_id, db::now())
                            .map_err(ServiceError::from)
                    })
                    .await?;
            }
            if err.is_registration_blocked() {
                let now = db::now();
                let until = now + crate::domain::registration::WINDOW;
                return Err(ServiceError::RegistrationLimitReached {
                    until,
                    by_meta: true,
                    retry_after_seconds: err.retry_after_seconds().unwrap_or(72 * 3600),
                });
            }
            Err(ServiceError::Meta(err))
        }
    }
}

/// Checks the rules, takes the number's lease, then counts the ledger, in one transaction. The
/// lease is taken first: its UPDATE locks the row, so the count cannot change under the claim.
async fn claim(
    state: &AppState,
    caller: &Principal,
    id: PhoneNumberId,
    purpose: Purpose,
) -> Result<Claim, ServiceError> {
    let ws = caller.workspace_id.clone();
    let fresh_pin = state.secrets.encrypt(&new_pin());
    let owner = LeaseOwner::random();
    let lease = lease(
        Duration::from_secs(state.settings.meta_timeout_seconds),
        state.settings.register_retry_base_ms,
    );
    state
        .db
        .run(move |conn| {
            write_tx(conn, |conn| {
                let now = db::now();
                let number = load(conn, &ws, id)?;
                let facts = number.facts();
                let display = facts.display.to_owned();
                if facts.removed {
                    return Err(ServiceError::NumberRemoved { display });
                }
                let new_name = purpose == Purpose::ApplyNewName && !facts.is_on_biz_app;
                if !facts.needs_registration() && !new_name {
                    return Err(ServiceError::AlreadyRegistered {
                        display,
                        coexistence: facts.is_on_biz_app,
                    });
                }
                if !numbers::claim_registration(conn, &ws, id, owner, now, now + lease)? {
                    return Err(ServiceError::RegistrationInProgress { display });
                }
                let data = serde_json::json!({"number_id": id});
                super::events::emit(conn, &ws, EventKind::RegistrationStarted, data)?;
                let window = window_now(conn, id, now, true)?;
                let account = accounts::get(conn, &ws, number.row.whatsapp_account_id)?
                    .ok_or_else(|| ServiceError::Internal("number without account".into()))?;
                let pin_enc = numbers::ensure_pin(conn, id, &fresh_pin)?;
                Ok(Claim {
                    calls: window.calls_for_next_click(),
                    number,
                    account,
                    pin_enc,
                    owner,
                    lease,
                })
            })
        })
        .await
}

/// The number's use of Meta's window now; refused when it is used up, and at the start of a click
/// (`new_click`) while tries are paused because Meta has not been answering.
fn window_now(
    conn: &mut db::DbConnection,
    id: PhoneNumberId,
    now: chrono::NaiveDateTime,
    new_click: bool,
) -> Result<WindowUse, ServiceError> {
    let calls = calls_in_window(conn, &[id], now)?
        .remove(&id)
        .unwrap_or_default();
    let window = WindowUse::of(&calls, now);
    let wait = |until: chrono::NaiveDateTime| (until - now).num_seconds().max(1).unsigned_abs();
    match (window.blocked_until, window.paused_until) {
        (Some(until), _) => Err(ServiceError::RegistrationLimitReached {
            until,
            by_meta: window.blocked_by_meta,
            retry_after_seconds: wait(until),
        }),
        (None, Some(until)) if new_click => Err(ServiceError::RegistrationPaused {
            until,
            unanswered: window.unanswered_in_a_row,
            retry_after_seconds: wait(until),
        }),
        (None, _) => Ok(window),
    }
}

/// Before each call to Meta, in one transaction: renews the lease if this click still holds it,
/// counts the window again, and writes the call into the ledger (`pending`). A click whose lease
/// lapsed and was taken makes no further call; neither does one the window no longer allows.
async fn before_call(
    state: &AppState,
    caller: &Principal,
    claim: &Claim,
) -> Result<AttemptId, ServiceError> {
    let (id, owner, lease) = (claim.number.row.id, claim.owner, claim.lease);
    let display = claim.number.row.display_phone_number.clone();
    let row = RegistrationAttemptRow {
        id: AttemptId::random(),
        workspace_id: caller.workspace_id.clone(),
        number_id: id,
        actor: caller.subject.clone(),
        outcome: AttemptOutcome::Pending,
        meta_code: None,
        meta_subcode: None,
        meta_message: None,
        fbtrace_id: None,
        created_at: db::now(),
        meta_unavailable: false,
    };
    state
        .db
        .run(move |conn| {
            write_tx(conn, |conn| {
                let now = db::now();
                if !numbers::renew_registration(conn, id, owner, now, now + lease)? {
                    return Err(ServiceError::RegistrationInProgress { display });
                }
                window_now(conn, id, now, false)?;
                let row = RegistrationAttemptRow {
                    created_at: now,
                    ..row
                };
                registration::insert_attempt(conn, &row)?;
                Ok(row.id)
            })
        })
        .await
}

/// Records how the call ended.
async fn finish_attempt(
    state: &AppState,
    id: AttemptId,
    error: Option<&MetaError>,
) -> Result<(), ServiceError> {
    let ended = if error.is_none() {
        AttemptOutcome::Succeeded
    } else {
        AttemptOutcome::Failed
    };
    state.metrics.registration_attempt(ended.as_str());
    let outcome = registration::AttemptFinish {
        outcome: ended,
        meta_code: error.and_then(MetaError::code),
        meta_subcode: error.and_then(MetaError::subcode),
        meta_message: error.map(|e| match e {
            MetaError::Api(e) => e.message.clone(),
            other => other.to_string(),
        }),
        fbtrace_id: match error {
            Some(MetaError::Api(e)) => e.fbtrace_id.clone(),
            _ => None,
        },
        meta_unavailable: error.is_some_and(|e| e.class() == ErrorClass::Transient),
    };
    state
        .db
        .run(move |conn| {
            registration::finish_attempt(conn, id, &outcome).map_err(ServiceError::from)
        })
        .await?;
    Ok(())
}

/// Records the failure on the number and releases its lease, if this click still holds it.
async fn fail(state: &AppState, claim: &Claim, err: &ServiceError) -> Result<(), ServiceError> {
    let (id, owner, error) = (claim.number.row.id, claim.owner, err.to_string());
    let ws = claim.number.row.workspace_id.clone();
    let code = err.meta().and_then(MetaError::code);
    state
        .db
        .run(move |conn| {
            write_tx(conn, |conn| {
                let failed = RegistrationState::Failed;
                let stored = Some((error.as_str(), code));
                numbers::finish_registration(conn, id, owner, failed, stored, db::now())?;
                let data = serde_json::json!({"number_id": id, "reason": error});
                super::events::emit(conn, &ws, EventKind::RegistrationFailed, data)
            })
        })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_six_digits_and_vary() {
        let pins: std::collections::HashSet<String> = (0..50).map(|_| new_pin()).collect();
        assert!(pins
            .iter()
            .all(|p| p.len() == 6 && p.chars().all(|c| c.is_ascii_digit())));
        assert!(pins.len() > 40);
    }
}
