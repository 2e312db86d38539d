//! The Register action: one call to Meta at a time per number, within Meta's limit of 10 register
//! calls per number in 72 hours, each recorded in the ledger, with the same PIN every time.

use std::time::Duration;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;
use chrono::{NaiveDateTime, TimeDelta};

use super::phone_numbers::{load, window_start, NumberRecord};
use super::sync::{apply_to_row, meta_fields};
use crate::auth::Principal;
use crate::db::models::{AccountRow, MetaFields, RegistrationAttemptRow};
use crate::db::{self, accounts, phone_numbers as numbers, registration, write_tx};
use crate::domain::phone_number::CLOUD_API;
use crate::error::ApiError;
use crate::meta::{ErrorClass, MetaError};
use crate::state::AppState;

/// Meta's limit: register calls per number in a moving 72-hour window.
pub const META_REGISTER_LIMIT: usize = 10;
/// Calls one click may make (the first, plus retries after transient errors).
const TRIES_PER_CLICK: usize = 3;
/// How long an attempt holds the number; longer than the tries and backoffs of one click.
const LEASE: TimeDelta = TimeDelta::minutes(3);
/// Meta's code for "too many register/deregister calls: blocked for 72 hours".
const BLOCKED: i64 = 133016;

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
    pin_enc: String,
    calls_left: usize,
}

/// Registers the number with Meta's Cloud API. The work runs on its own task, so a client that
/// disconnects mid-way does not leave the number half-recorded.
pub async fn register(
    state: &AppState,
    caller: &Principal,
    number_id: &str,
) -> Result<NumberRecord, ApiError> {
    let (state, caller, number_id) = (state.clone(), caller.clone(), number_id.to_owned());
    tokio::spawn(async move { run(&state, &caller, &number_id).await })
        .await
        .map_err(|e| ApiError::Internal(format!("registration task failed: {e}")))?
}

async fn run(
    state: &AppState,
    caller: &Principal,
    number_id: &str,
) -> Result<NumberRecord, ApiError> {
    let claim = claim(state, caller, number_id).await?;
    let result = register_claimed(state, caller, &claim).await;
    if let Err(err) = &result {
        // Whatever went wrong, the failure is recorded and the number's lease released.
        if let Err(release) = fail(state, &claim, err).await {
            tracing::error!(error = %release, "could not release the registration lease");
        }
    }
    result
}

async fn register_claimed(
    state: &AppState,
    caller: &Principal,
    claim: &Claim,
) -> Result<NumberRecord, ApiError> {
    let token = match claim
        .account
        .access_token_enc
        .as_deref()
        .map(|t| state.secrets.decrypt(t))
    {
        Some(Ok(token)) => token,
        _ => {
            return Err(ApiError::Conflict {
                code: "account_needs_reconnect",
                detail: "The number's WhatsApp account has no usable access token; reconnect the account."
                    .into(),
            });
        }
    };
    let pin = state
        .secrets
        .decrypt(&claim.pin_enc)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let meta_id = claim.number.row.phone_number_id.clone();

    let mut outcome = Err(MetaError::Unexpected("no register call was made".into()));
    for attempt in 0..claim.calls_left.min(TRIES_PER_CLICK) {
        if attempt > 0 {
            let backoff = state
                .settings
                .register_retry_base_ms
                .saturating_mul(1 << (attempt - 1));
            tokio::time::sleep(Duration::from_millis(backoff)).await;
        }
        // Into the ledger before the call: should the process die during it, the call still counts.
        let attempt_id = start_attempt(state, caller, claim).await?;
        outcome = state.meta.register(&token, &meta_id, &pin).await;
        finish_attempt(state, attempt_id, outcome.as_ref().err()).await?;
        match &outcome {
            Err(err) if err.class() == ErrorClass::Transient => continue,
            _ => break,
        }
    }

    match outcome {
        Ok(()) => {
            let reread = state.meta.get_phone_number(&token, &meta_id).await;
            if let Err(err) = &reread {
                tracing::warn!(phone_number_id = %meta_id, error = %err, "registered, but re-reading the number failed");
            }
            let (claim_number, account_id) = (claim.number.row.clone(), claim.account.id.clone());
            let ws = caller.workspace_id.clone();
            state
                .db
                .run(move |conn| {
                    write_tx(conn, |conn| {
                        let now = db::now();
                        let current =
                            numbers::get(conn, &ws, &claim_number.id)?.unwrap_or(claim_number);
                        let mut fields = match &reread {
                            Ok(meta) => meta_fields(meta, Some(&current)),
                            Err(_) => MetaFields::of(&current),
                        };
                        // Meta said yes: the number is on the Cloud API even if a read lags behind.
                        fields.platform_type = CLOUD_API.into();
                        if fields.throughput_level.as_deref() == Some("NOT_APPLICABLE") {
                            fields.throughput_level = Some("STANDARD".into());
                        }
                        apply_to_row(conn, &current, &account_id, &fields, "registration", now)?;
                        numbers::finish_registration(conn, &current.id, "registered", None, now)?;
                        load(conn, &ws, &current.id)
                    })
                })
                .await
        }
        Err(err) => {
            let api_error = if err.code() == Some(BLOCKED) {
                ApiError::TooManyRequests {
                    code: "registration_limit_reached",
                    detail: err.user_sentence(),
                    retry_after_seconds: err.retry_after_seconds(),
                }
            } else {
                ApiError::Meta(err.clone())
            };
            if err.is_token_rejected() {
                let account_id = claim.account.id.clone();
                state
                    .db
                    .run(move |conn| {
                        Ok(accounts::mark_needs_reconnect(
                            conn,
                            &account_id,
                            db::now(),
                        )?)
                    })
                    .await?;
            }
            Err(api_error)
        }
    }
}

/// Checks the rules, counts the ledger and takes the number's lease, in one transaction.
async fn claim(state: &AppState, caller: &Principal, number_id: &str) -> Result<Claim, ApiError> {
    let (ws, id) = (caller.workspace_id.clone(), number_id.to_owned());
    let fresh_pin = state.secrets.encrypt(&new_pin());
    state
        .db
        .run(move |conn| {
            write_tx(conn, |conn| {
                let now = db::now();
                let number = load(conn, &ws, &id)?;
                let facts = number.facts();
                if facts.removed {
                    return Err(ApiError::Conflict {
                        code: "number_removed",
                        detail: format!(
                            "{} was removed from its WhatsApp Business Account in Meta.",
                            facts.display
                        ),
                    });
                }
                if !facts.needs_registration() {
                    let why = if facts.is_on_biz_app {
                        "is also on the WhatsApp Business app (coexistence): Meta registered it already"
                    } else {
                        "is already on the WhatsApp Cloud API"
                    };
                    return Err(ApiError::Conflict {
                        code: "already_registered",
                        detail: format!("{} {why}; there is nothing to register.", facts.display),
                    });
                }
                let recent = registration::attempts_since(conn, &id, window_start(now))?;
                if let Some(block) = recent.iter().rev().find(|a| a.meta_code == Some(BLOCKED)) {
                    return Err(limit_reached(
                        block.created_at,
                        now,
                        "Meta blocked registration of this number",
                    ));
                }
                if recent.len() >= META_REGISTER_LIMIT {
                    let oldest = recent[recent.len() - META_REGISTER_LIMIT].created_at;
                    return Err(limit_reached(
                        oldest,
                        now,
                        "Meta allows 10 register attempts per number in 72 hours",
                    ));
                }
                if !numbers::claim_registration(conn, &ws, &id, now, now + LEASE)? {
                    return Err(ApiError::Conflict {
                        code: "registration_in_progress",
                        detail: format!(
                            "{} is being registered right now; wait for that attempt to finish.",
                            facts.display
                        ),
                    });
                }
                let account = accounts::get(conn, &ws, &number.row.whatsapp_account_id)?
                    .ok_or_else(|| ApiError::Internal("number without account".into()))?;
                let pin_enc = numbers::ensure_pin(conn, &id, &fresh_pin)?;
                Ok(Claim { calls_left: META_REGISTER_LIMIT - recent.len(), number, account, pin_enc })
            })
        })
        .await
}

fn limit_reached(since: NaiveDateTime, now: NaiveDateTime, why: &str) -> ApiError {
    let until = since + TimeDelta::hours(72);
    let seconds = (until - now).num_seconds().max(1) as u64;
    ApiError::TooManyRequests {
        code: "registration_limit_reached",
        detail: format!(
            "{why}; try again after {} UTC. Trying sooner would keep the number blocked.",
            until.format("%Y-%m-%d %H:%M")
        ),
        retry_after_seconds: Some(seconds),
    }
}

/// Records a register call about to be made (`outcome: pending`); returns its id.
async fn start_attempt(
    state: &AppState,
    caller: &Principal,
    claim: &Claim,
) -> Result<String, ApiError> {
    let row = RegistrationAttemptRow {
        id: uuid::Uuid::new_v4().to_string(),
        workspace_id: caller.workspace_id.clone(),
        phone_number_id: claim.number.row.id.clone(),
        actor: caller.subject.clone(),
        outcome: "pending".into(),
        meta_code: None,
        meta_subcode: None,
        meta_message: None,
        fbtrace_id: None,
        created_at: db::now(),
    };
    let id = row.id.clone();
    state
        .db
        .run(move |conn| Ok(registration::insert_attempt(conn, &row)?))
        .await?;
    Ok(id)
}

/// Records how the call ended.
async fn finish_attempt(
    state: &AppState,
    id: String,
    error: Option<&MetaError>,
) -> Result<(), ApiError> {
    let outcome = registration::AttemptOutcome {
        outcome: if error.is_none() {
            "succeeded"
        } else {
            "failed"
        },
        meta_code: error.and_then(MetaError::code),
        meta_subcode: match error {
            Some(MetaError::Api(e)) => e.subcode,
            _ => None,
        },
        meta_message: error.map(|e| match e {
            MetaError::Api(e) => e.message.clone(),
            other => other.to_string(),
        }),
        fbtrace_id: match error {
            Some(MetaError::Api(e)) => e.fbtrace_id.clone(),
            _ => None,
        },
    };
    state
        .db
        .run(move |conn| Ok(registration::finish_attempt(conn, &id, &outcome)?))
        .await?;
    Ok(())
}

/// Records the failure on the number and releases its lease.
async fn fail(state: &AppState, claim: &Claim, err: &ApiError) -> Result<(), ApiError> {
    let (id, error) = (claim.number.row.id.clone(), err.to_string());
    state
        .db
        .run(move |conn| {
            Ok(numbers::finish_registration(
                conn,
                &id,
                "failed",
                Some(&error),
                db::now(),
            )?)
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
