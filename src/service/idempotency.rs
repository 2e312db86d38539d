//! `Idempotency-Key`: the same key with the same request gets the first answer, and the work is
//! done once, on any instance (the key is taken in the database before the work starts); the same
//! key with another request is refused.

use super::ServiceError;
use crate::db::idempotency::{self as keys, KeyRow};
use crate::db::{self, write_tx, Db};
use crate::domain::WorkspaceId;

/// How long a key taken by a request that never finished (its instance died) holds.
const ABANDONED_AFTER: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// What to do with a keyed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// The key is ours now: do the work, then [`finish`] or [`release`].
    Run,
    /// Answered before: send this again.
    Replay { status: u16, body: String },
}

/// Takes `key` for this request (`request_hash` names what is asked), or finds its answer.
pub async fn begin(
    db: &Db,
    workspace: &WorkspaceId,
    operation: &'static str,
    key: &str,
    request_hash: String,
) -> Result<Begin, ServiceError> {
    crate::domain::text::IDEMPOTENCY_KEY.check(key)?;
    let (workspace, key) = (workspace.clone(), key.to_owned());
    db.run(move |conn| {
        write_tx(conn, |conn| {
            let now = db::now();
            match keys::get(conn, &workspace, operation, &key)? {
                None => {}
                Some(found) if found.request_hash != request_hash => {
                    return Err(ServiceError::IdempotencyKeyReused)
                }
                Some(KeyRow {
                    response_status: Some(status),
                    response_body: Some(body),
                    ..
                }) => {
                    return Ok(Begin::Replay {
                        status: u16::try_from(status).unwrap_or(500),
                        body,
                    })
                }
                Some(found) if found.created_at + ABANDONED_AFTER > now => {
                    return Err(ServiceError::IdempotencyKeyInProgress)
                }
                Some(_) => {
                    // Its request died without an answer: the key is free again.
                    keys::delete(conn, &workspace, operation, &key)?;
                }
            }
            let row = KeyRow {
                workspace_id: workspace.clone(),
                operation: operation.to_owned(),
                idempotency_key: key.clone(),
                request_hash,
                response_status: None,
                response_body: None,
                created_at: now,
            };
            match keys::insert(conn, &row) {
                Ok(_) => Ok(Begin::Run),
                // Another instance took it between the read and the insert.
                Err(err) if db::is_unique_violation(&err) => {
                    Err(ServiceError::IdempotencyKeyInProgress)
                }
                Err(err) => Err(err.into()),
            }
        })
    })
    .await
}

/// Keeps the final answer for replays.
pub async fn finish(
    db: &Db,
    workspace: &WorkspaceId,
    operation: &'static str,
    key: &str,
    status: u16,
    body: String,
) -> Result<(), ServiceError> {
    let (workspace, key) = (workspace.clone(), key.to_owned());
    db.run(move |conn| {
        keys::finish(conn, &workspace, operation, &key, i64::from(status), &body)
            .map(|_| ())
            .map_err(ServiceError::from)
    })
    .await
}

/// Lets the key go: the answer was not final (busy, rate-limited, a fault), so the same key may
/// be tried again.
pub async fn release(
    db: &Db,
    workspace: &WorkspaceId,
    operation: &'static str,
    key: &str,
) -> Result<(), ServiceError> {
    let (workspace, key) = (workspace.clone(), key.to_owned());
    db.run(move |conn| {
        keys::delete(conn, &workspace, operation, &key)
            .map(|_| ())
            .map_err(ServiceError::from)
    })
    .await
}
