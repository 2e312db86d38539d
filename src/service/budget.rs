//! The service's own budget of calls to each WABA's management endpoints (listing numbers,
//! reading a number or the WABA, subscribing), below Meta's limit, background and manual work
//! together. Past it, work that needs Meta waits (429 with `retry_after_seconds`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::ServiceError;
use crate::db::schema::phone_numbers;
use crate::db::{accounts, graph_calls, DbConnection};
use crate::domain::{PlatformType, WabaId};
use crate::meta::waba_call_budget;

/// Whether Meta counts the WABA as active (a registered number: the higher limit).
fn is_active(conn: &mut DbConnection, waba: &WabaId) -> QueryResult<bool> {
    let Some(account) = accounts::by_waba(conn, waba)? else {
        return Ok(false);
    };
    let registered: i64 = phone_numbers::table
        .filter(phone_numbers::whatsapp_account_id.eq(account.id))
        .filter(phone_numbers::removed_at.is_null())
        .filter(phone_numbers::platform_type.eq(PlatformType::CloudApi))
        .count()
        .get_result(conn)?;
    Ok(registered > 0)
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
