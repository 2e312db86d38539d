//! Connected WhatsApp Business Accounts (WABAs).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::AccountRow;
use super::schema::whatsapp_accounts as accounts;
use super::DbConnection;
use crate::domain::{AccountId, AccountStatus, LeaseOwner, WabaId, WorkspaceId};

pub fn insert(conn: &mut DbConnection, row: &AccountRow) -> QueryResult<usize> {
    diesel::insert_into(accounts::table)
        .values(row)
        .execute(conn)
}

/// A live (not disconnected) account of the workspace.
pub fn get(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    id: AccountId,
) -> QueryResult<Option<AccountRow>> {
    accounts::table
        .filter(accounts::workspace_id.eq(workspace))
        .filter(accounts::id.eq(id))
        .filter(accounts::status.ne(AccountStatus::Disconnected))
        .select(AccountRow::as_select())
        .first(conn)
        .optional()
}

/// The live account holding `waba_id`, in whichever workspace (a WABA is connected to one
/// workspace at a time; disconnected accounts hold nothing).
pub fn by_waba(conn: &mut DbConnection, waba_id: &WabaId) -> QueryResult<Option<AccountRow>> {
    accounts::table
        .filter(accounts::waba_id.eq(waba_id))
        .filter(accounts::status.ne(AccountStatus::Disconnected))
        .select(AccountRow::as_select())
        .first(conn)
        .optional()
}

/// The workspace's most recently disconnected account of `waba_id`: connecting the WABA again
/// brings it back, with its numbers' history and ids.
pub fn disconnected(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    waba_id: &WabaId,
) -> QueryResult<Option<AccountRow>> {
    accounts::table
        .filter(accounts::workspace_id.eq(workspace))
        .filter(accounts::waba_id.eq(waba_id))
        .filter(accounts::status.eq(AccountStatus::Disconnected))
        .order((accounts::updated_at.desc(), accounts::id.desc()))
        .select(AccountRow::as_select())
        .first(conn)
        .optional()
}

/// Disconnects the account: wipes its token, ends any sync's lease (that sync then writes
/// nothing) and forgets its last sync. True when the account was live.
pub fn disconnect(conn: &mut DbConnection, id: AccountId, now: NaiveDateTime) -> QueryResult<bool> {
    let changed = diesel::update(
        accounts::table
            .filter(accounts::id.eq(id))
            .filter(accounts::status.ne(AccountStatus::Disconnected)),
    )
    .set((
        accounts::status.eq(AccountStatus::Disconnected),
        accounts::access_token_enc.eq(None::<crate::crypto::Sealed>),
        accounts::token_expires_at.eq(None::<NaiveDateTime>),
        accounts::last_sync_counts.eq(None::<String>),
        accounts::sync_lease_until.eq(None::<NaiveDateTime>),
        accounts::sync_lease_owner.eq(None::<LeaseOwner>),
        accounts::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// The workspace's live accounts, oldest first.
pub fn list(conn: &mut DbConnection, workspace: &WorkspaceId) -> QueryResult<Vec<AccountRow>> {
    accounts::table
        .filter(accounts::workspace_id.eq(workspace))
        .filter(accounts::status.ne(AccountStatus::Disconnected))
        .order((accounts::created_at.asc(), accounts::id.asc()))
        .select(AccountRow::as_select())
        .load(conn)
}

/// Replaces the token of a re-connected account and marks it connected.
pub fn replace_token(
    conn: &mut DbConnection,
    id: AccountId,
    token_enc: &crate::crypto::Sealed,
    expires_at: Option<NaiveDateTime>,
    name: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(accounts::table.filter(accounts::id.eq(id)))
        .set((
            accounts::access_token_enc.eq(token_enc),
            accounts::token_expires_at.eq(expires_at),
            accounts::name.eq(name),
            accounts::status.eq(AccountStatus::Connected),
            accounts::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Takes the account's sync lease unless another sync holds it; true when taken.
pub fn claim_sync(
    conn: &mut DbConnection,
    id: AccountId,
    owner: LeaseOwner,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let taken = diesel::update(
        accounts::table.filter(accounts::id.eq(id)).filter(
            accounts::sync_lease_until
                .is_null()
                .or(accounts::sync_lease_until.lt(now)),
        ),
    )
    .set((
        accounts::sync_lease_until.eq(until),
        accounts::sync_lease_owner.eq(owner),
    ))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Whether `owner` holds a live sync lease on the account.
pub fn holds_sync(
    conn: &mut DbConnection,
    id: AccountId,
    owner: LeaseOwner,
    now: NaiveDateTime,
) -> QueryResult<bool> {
    let held: i64 = accounts::table
        .filter(accounts::id.eq(id))
        .filter(accounts::sync_lease_owner.eq(owner))
        .filter(accounts::sync_lease_until.ge(now))
        .count()
        .get_result(conn)?;
    Ok(held == 1)
}

/// Extends `owner`'s sync lease to `until` if `owner` still holds a live one; true when it does.
pub fn renew_sync(
    conn: &mut DbConnection,
    id: AccountId,
    owner: LeaseOwner,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let renewed = diesel::update(
        accounts::table
            .filter(accounts::id.eq(id))
            .filter(accounts::sync_lease_owner.eq(owner))
            .filter(accounts::sync_lease_until.ge(now)),
    )
    .set(accounts::sync_lease_until.eq(until))
    .execute(conn)?;
    Ok(renewed == 1)
}

/// Records how `owner`'s sync ended and releases its lease; nothing (0 rows) when the lease is no
/// longer `owner`'s. A sync that succeeded may still leave a note (in `last_sync_error`) about
/// what it could not take. `status` becomes `needs_reconnect` when Meta rejected the token.
pub fn finish_sync(
    conn: &mut DbConnection,
    id: AccountId,
    owner: LeaseOwner,
    end: &SyncEnd<'_>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let query = diesel::update(
        accounts::table
            .filter(accounts::id.eq(id))
            .filter(accounts::sync_lease_owner.eq(owner)),
    );
    let common = (
        accounts::last_sync_error.eq(end.error),
        accounts::status.eq(end.status),
        accounts::sync_lease_until.eq(None::<NaiveDateTime>),
        accounts::sync_lease_owner.eq(None::<LeaseOwner>),
        accounts::updated_at.eq(now),
        accounts::last_sync_failed_at.eq(end.failure.map(|_| now)),
        accounts::last_sync_failure.eq(end.failure),
    );
    match end.synced {
        Some(counts) => query
            .set((
                accounts::last_synced_at.eq(now),
                accounts::last_sync_counts.eq(counts),
                common,
            ))
            .execute(conn),
        None => query.set(common).execute(conn),
    }
}

/// How a sync ended.
#[derive(Debug, Clone, Copy)]
pub struct SyncEnd<'a> {
    /// What the sync changed (JSON), when it succeeded.
    pub synced: Option<&'a str>,
    pub error: Option<&'a str>,
    /// Meta's error (JSON) when it failed for a reason worth retrying later.
    pub failure: Option<&'a str>,
    pub status: AccountStatus,
}

/// Marks the account as needing reconnection (Meta rejected its token).
pub fn mark_needs_reconnect(
    conn: &mut DbConnection,
    id: AccountId,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        accounts::table
            .filter(accounts::id.eq(id))
            .filter(accounts::status.ne(AccountStatus::Disconnected)),
    )
    .set((
        accounts::status.eq(AccountStatus::NeedsReconnect),
        accounts::updated_at.eq(now),
    ))
    .execute(conn)
}

/// Up to `limit` connected accounts due for the background sync at `now`, soonest first: their
/// scheduled time has come (or none was set yet), they were neither synced nor changed since
/// `before` (a manual sync counts), and no instance holds their sync lease.
pub fn due_for_sync(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<AccountRow>> {
    accounts::table
        .filter(accounts::status.eq(AccountStatus::Connected))
        .filter(
            accounts::next_sync_at
                .is_null()
                .or(accounts::next_sync_at.le(now)),
        )
        .filter(
            accounts::last_synced_at
                .is_null()
                .or(accounts::last_synced_at.lt(before)),
        )
        .filter(accounts::updated_at.lt(before))
        .filter(
            accounts::sync_lease_until
                .is_null()
                .or(accounts::sync_lease_until.lt(now)),
        )
        .order((accounts::next_sync_at.asc(), accounts::last_synced_at.asc()))
        .limit(limit)
        .select(AccountRow::as_select())
        .load(conn)
}

/// Takes a due account for this instance's background sync: moves its next sync to `until` if
/// it is still due at `now` (false when another instance took it first).
pub fn claim_due(
    conn: &mut DbConnection,
    id: AccountId,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let n = diesel::update(
        accounts::table.filter(accounts::id.eq(id)).filter(
            accounts::next_sync_at
                .is_null()
                .or(accounts::next_sync_at.le(now)),
        ),
    )
    .set(accounts::next_sync_at.eq(Some(until)))
    .execute(conn)?;
    Ok(n == 1)
}

/// Schedules the account's next background sync.
pub fn schedule_sync(
    conn: &mut DbConnection,
    id: AccountId,
    at: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(accounts::table.filter(accounts::id.eq(id)))
        .set(accounts::next_sync_at.eq(Some(at)))
        .execute(conn)
}

/// The soonest a connected account becomes due: its scheduled time, or for an account never
/// scheduled, its last sync or change plus `interval`.
pub fn next_sync_due(
    conn: &mut DbConnection,
    interval: chrono::TimeDelta,
) -> QueryResult<Option<NaiveDateTime>> {
    let scheduled: Option<NaiveDateTime> = accounts::table
        .filter(accounts::status.eq(AccountStatus::Connected))
        .select(diesel::dsl::min(accounts::next_sync_at))
        .first(conn)?;
    let unscheduled: Option<NaiveDateTime> = accounts::table
        .filter(accounts::status.eq(AccountStatus::Connected))
        .filter(accounts::next_sync_at.is_null())
        .select(diesel::dsl::min(accounts::updated_at))
        .first(conn)?;
    Ok(match (scheduled, unscheduled.map(|at| at + interval)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    })
}

/// Numbers (not removed) per account of the workspace.
pub fn number_counts(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
) -> QueryResult<std::collections::HashMap<AccountId, i64>> {
    use super::schema::phone_numbers as numbers;
    let rows: Vec<(AccountId, i64)> = numbers::table
        .filter(numbers::workspace_id.eq(workspace))
        .filter(numbers::removed_at.is_null())
        .group_by(numbers::whatsapp_account_id)
        .select((numbers::whatsapp_account_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}
