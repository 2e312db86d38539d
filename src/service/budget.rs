//! The service's own budget of calls to each WABA's management endpoints (listing numbers,
//! reading a number or the WABA, subscribing), below Meta's limit, background and manual work
//! together. Past it, work that needs Meta waits (429 with `retry_after_seconds`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::ServiceError;
use crate::db::models::AccountRow;
use crate::db::schema::phone_numbers;
use crate::db::{accounts, graph_calls, DbConnection};
use crate::domain::{AccountId, PlatformType, WabaId};
use crate::meta::{waba_call_budget, PHONE_NUMBERS_PAGE_SIZE};

/// Whether Meta counts the WABA as active (a registered number: the higher limit).
fn is_active(conn: &mut DbConnection, waba: &WabaId) -> QueryResult<bool> {
    match accounts::by_waba(conn, waba)? {
        Some(account) => has_registered_number(conn, account.id),
        None => Ok(false),
    }
}

fn has_registered_number(conn: &mut DbConnection, account: AccountId) -> QueryResult<bool> {
    let registered: i64 = phone_numbers::table
        .filter(phone_numbers::whatsapp_account_id.eq(account))
        .filter(phone_numbers::removed_at.is_null())
        .filter(phone_numbers::platform_type.eq(PlatformType::CloudApi))
        .count()
        .get_result(conn)?;
    Ok(registered > 0)
}

/// The background sync may use this share of a WABA's budget (numerator, denominator); the rest
/// is left for clicks, connects and the re-reads after registration.
const BACKGROUND_SHARE: (i64, i64) = (1, 2);

/// How often the background may sync a WABA of `numbers` numbers so that its syncs together stay
/// within [`BACKGROUND_SHARE`] of the WABA's budget; never more often than `configured`.
pub fn background_sync_interval(
    configured: std::time::Duration,
    numbers: i64,
    active: bool,
) -> std::time::Duration {
    // One listing call per page; a full last page makes Meta offer one more, empty.
    let calls_per_sync = numbers.max(0) / PHONE_NUMBERS_PAGE_SIZE + 1;
    let (share, of) = BACKGROUND_SHARE;
    let calls_per_hour = (waba_call_budget(active) * share / of).max(1);
    let seconds = (3600 * calls_per_sync + calls_per_hour - 1) / calls_per_hour;
    configured.max(std::time::Duration::from_secs(seconds.unsigned_abs()))
}

/// Of `accounts` (each not synced within `configured`), those whose budget allows a background
/// sync at `now`.
pub(crate) fn due_within_budget(
    conn: &mut DbConnection,
    accounts: Vec<AccountRow>,
    configured: std::time::Duration,
    now: NaiveDateTime,
) -> QueryResult<Vec<AccountRow>> {
    let mut due = Vec::with_capacity(accounts.len());
    for account in accounts {
        let Some(last) = account.last_synced_at else {
            due.push(account);
            continue;
        };
        let numbers: i64 = phone_numbers::table
            .filter(phone_numbers::whatsapp_account_id.eq(account.id))
            .filter(phone_numbers::removed_at.is_null())
            .count()
            .get_result(conn)?;
        let interval = background_sync_interval(
            configured,
            numbers,
            has_registered_number(conn, account.id)?,
        );
        if chrono::TimeDelta::from_std(interval).is_ok_and(|i| now - last >= i) {
            due.push(account);
        }
    }
    Ok(due)
}

/// Records `calls` calls to `waba` now, or refuses them when the hour's budget is spent.
pub(crate) fn spend(
    conn: &mut DbConnection,
    waba: &WabaId,
    calls: i64,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let budget = waba_call_budget(is_active(conn, waba)?);
    match graph_calls::spend(conn, waba, calls, budget, now)? {
        Ok(()) => Ok(()),
        Err(free_at) => Err(ServiceError::WabaCallBudgetSpent {
            retry_after_seconds: (free_at - now).num_seconds().max(1).unsigned_abs(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn background_syncs_of_a_waba_stay_within_half_its_budget() {
        let five_minutes = Duration::from_secs(300);
        // Small WABAs: the configured interval, far inside the budget.
        assert_eq!(
            background_sync_interval(five_minutes, 2, false),
            five_minutes
        );
        assert_eq!(
            background_sync_interval(five_minutes, 99, true),
            five_minutes
        );
        // 10,000 numbers are 101 calls a sync: 80 calls an hour allow one every 76 minutes, 2,000
        // (a WABA with a registered number) one every 3 minutes 2 seconds.
        let big = 10_000;
        assert_eq!(
            background_sync_interval(five_minutes, big, false),
            Duration::from_secs(4545)
        );
        assert_eq!(
            background_sync_interval(Duration::from_secs(60), big, true),
            Duration::from_secs(182)
        );
        // Whatever the size, an hour of background syncs uses at most half the budget.
        for numbers in [0, 1, 100, 2_500, 10_000, 100_000] {
            for active in [false, true] {
                let interval = background_sync_interval(Duration::from_secs(1), numbers, active);
                let syncs_per_hour = 3600 / interval.as_secs();
                let calls = syncs_per_hour * (numbers / PHONE_NUMBERS_PAGE_SIZE + 1).unsigned_abs();
                assert!(
                    calls * 2 <= waba_call_budget(active).unsigned_abs(),
                    "{numbers} {active}"
                );
            }
        }
    }
}
