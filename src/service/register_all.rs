//! Register everything pending at once (`POST /api/v1/phone-numbers/register`): each eligible
//! number gets one `register` job on the durable queue, and the job goes through the same guarded
//! path as the Register button (the number's lease, Meta's 10 calls in 72 hours, the ledger, the
//! WABA's hourly budget of Graph calls). One WABA's registrations run one after another (the jobs
//! share an order key), so a burst of numbers never becomes a burst of calls to one account;
//! what is left of a WABA's budget decides when the next one runs.

use chrono::TimeDelta;
use serde_json::json;

use super::inbound::{still_ours, Outcome};
use super::phone_numbers::load;
use super::ServiceError;
use crate::auth::Principal;
use crate::db::webhook_jobs::{self as jobs, JobRow, NewJobRow};
use crate::db::{self, phone_numbers as numbers, write_tx, DbConnection};
use crate::domain::registration::Selection;
use crate::domain::{
    BlockedReason, JobKind, JobState, LeaseOwner, PhoneNumberId, RegisterSkipReason,
    RegistrationState, Role,
};
use crate::state::AppState;

/// A number queued for registration.
#[derive(Debug, Clone)]
pub struct Queued {
    pub id: PhoneNumberId,
    pub display_phone_number: String,
}

/// A number left out, and why.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub id: PhoneNumberId,
    pub display_phone_number: Option<String>,
    pub reason: RegisterSkipReason,
    /// For `limit_reached`: when Meta's window lets the number be registered again.
    pub retry_after_seconds: Option<u64>,
}

/// How long a job waits when the number is being registered by a click right now.
const BUSY_RETRY: TimeDelta = TimeDelta::seconds(5);

/// Queues one registration per eligible number; says what was queued and what was skipped.
pub async fn queue(
    state: &AppState,
    caller: &Principal,
    selection: Selection,
) -> Result<(Vec<Queued>, Vec<Skipped>), ServiceError> {
    let caller = caller.clone();
    let result = state
        .db
        .run(move |conn| write_tx(conn, |conn| plan_and_queue(conn, &caller, selection)))
        .await?;
    state.intake.wake.notify_waiters();
    Ok(result)
}

fn plan_and_queue(
    conn: &mut DbConnection,
    caller: &Principal,
    selection: Selection,
) -> Result<(Vec<Queued>, Vec<Skipped>), ServiceError> {
    let ws = &caller.workspace_id;
    let now = db::now();
    let all_pending = matches!(selection, Selection::AllPending);
    let mut ids = match selection {
        Selection::Numbers(ids) => ids,
        Selection::AllPending => numbers::live_ids(conn, ws)?,
    };
    let mut seen = std::collections::HashSet::new();
    ids.retain(|id| seen.insert(*id));
    let (mut queued, mut skipped) = (Vec::new(), Vec::new());
    for id in ids {
        let record = match load(conn, ws, id) {
            Ok(record) => record,
            Err(ServiceError::PhoneNumberNotFound) => {
                skipped.push(Skipped {
                    id,
                    display_phone_number: None,
                    reason: RegisterSkipReason::NotFound,
                    retry_after_seconds: None,
                });
                continue;
            }
            Err(err) => return Err(err),
        };
        let facts = record.facts();
        if all_pending && facts.is_cloud_api() && !facts.needs_registration() {
            continue; // fully on the Cloud API: not pending, not worth a line
        }
        let meta_id = record.row.meta_phone_number_id.0.clone();
        let mut retry_after_seconds = None;
        let reason = if facts.removed {
            Some(RegisterSkipReason::Removed)
        } else if record.registration.state == RegistrationState::Registering
            || jobs::pending_for(conn, JobKind::Register, &meta_id)?
        {
            Some(RegisterSkipReason::InProgress)
        } else {
            match record.registration.blocked_reason {
                Some(BlockedReason::Coexistence) => Some(RegisterSkipReason::Coexistence),
                Some(BlockedReason::Removed) => Some(RegisterSkipReason::Removed),
                Some(BlockedReason::AccountNeedsReconnect) => {
                    Some(RegisterSkipReason::AccountNeedsReconnect)
                }
                Some(BlockedReason::LimitReached) => {
                    retry_after_seconds = record
                        .registration
                        .window
                        .blocked_until
                        .map(|until| (until - now).num_seconds().max(1).unsigned_abs());
                    Some(RegisterSkipReason::LimitReached)
                }
                // Queued: its job waits for the pause to end, then makes one call.
                Some(BlockedReason::MetaUnavailable) => None,
                None if !facts.needs_registration() => Some(RegisterSkipReason::AlreadyRegistered),
                None => None,
            }
        };
        let display = record.row.display_phone_number.clone();
        if let Some(reason) = reason {
            skipped.push(Skipped {
                id,
                display_phone_number: Some(display),
                reason,
                retry_after_seconds,
            });
            continue;
        }
        let account = db::accounts::get(conn, ws, record.row.whatsapp_account_id)?;
        let Some(account) = account else {
            skipped.push(Skipped {
                id,
                display_phone_number: Some(display),
                reason: RegisterSkipReason::AccountNeedsReconnect,
                retry_after_seconds: None,
            });
            continue;
        };
        let dedup = format!("register:{id}:{}", uuid::Uuid::new_v4().simple());
        let order = format!("register:{}", account.waba_id);
        let payload =
            json!({"number_id": id, "subject": caller.subject, "workspace_id": ws}).to_string();
        jobs::insert_new(
            conn,
            &[NewJobRow {
                dedup_key: &dedup,
                kind: JobKind::Register,
                waba_id: Some(account.waba_id.0.as_str()),
                meta_phone_number_id: Some(&meta_id),
                order_key: Some(&order),
                payload: &payload,
                state: JobState::Queued,
                run_after: now,
                received_at: now,
            }],
        )?;
        queued.push(Queued {
            id,
            display_phone_number: display,
        });
    }
    Ok((queued, skipped))
}

/// Runs one queued registration through the Register button's path.
pub(super) async fn handle(
    state: &AppState,
    job: &JobRow,
    owner: LeaseOwner,
) -> Result<Outcome, ServiceError> {
    let payload: serde_json::Value = match serde_json::from_str(&job.payload) {
        Ok(v) => v,
        Err(err) => return Ok(Outcome::Dead(format!("unreadable payload: {err}"))),
    };
    let number = payload["number_id"]
        .as_str()
        .and_then(|s| s.parse::<PhoneNumberId>().ok());
    let (Some(number), Some(subject), Some(workspace)) = (
        number,
        payload["subject"].as_str(),
        payload["workspace_id"].as_str(),
    ) else {
        return Ok(Outcome::Dead(format!(
            "unreadable payload: {}",
            job.payload
        )));
    };
    // The requester, as the audit trail and the ledger name them.
    let caller = Principal {
        subject: subject.to_owned(),
        workspace_id: workspace.into(),
        role: Role::Editor,
    };
    if !still_ours(state, job, owner).await? {
        return Ok(Outcome::LostLease);
    }
    match super::registration::register(state, &caller, number).await {
        Ok(_) => Ok(Outcome::Done(None)),
        // A click got there first: look again once it is done.
        Err(ServiceError::RegistrationInProgress { .. }) => Ok(Outcome::RetryAfter(
            BUSY_RETRY,
            "the number was being registered by another request".into(),
        )),
        // The WABA's share of Meta's hourly limit is spent: its turn comes when there is room.
        Err(ServiceError::WabaCallBudgetSpent {
            retry_after_seconds,
        }) => Ok(Outcome::Later(
            db::now() + TimeDelta::seconds(i64::try_from(retry_after_seconds).unwrap_or(3600)),
        )),
        // Meta has not been answering this number's register calls: one call once the pause ends.
        Err(ServiceError::RegistrationPaused { until, .. }) => Ok(Outcome::Later(until)),
        Err(err @ (ServiceError::Unavailable(_) | ServiceError::Internal(_))) => {
            Ok(Outcome::Retry(err.diagnostic()))
        }
        // Recorded on the number (state, error, ledger) and sent as `registration.failed`.
        Err(err) => Ok(Outcome::Done(Some(err.to_string()))),
    }
}
