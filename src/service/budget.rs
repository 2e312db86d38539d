//! The service's own budget of calls to each WABA's management endpoints (listing numbers,
//! reading a number or the WABA, subscribing), below Meta's limit, background and manual work
//! together. Past it, work that needs Meta waits (429 with `retry_after_seconds`).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::ServiceError;
use crate::db::graph_calls::UsageReport;
use crate::db::schema::phone_numbers;
use crate::db::{accounts, graph_calls, DbConnection};
use crate::domain::{AccountId, PlatformType, WabaId};
use crate::meta::codes::{APP_RATE_LIMIT, WABA_RATE_LIMIT, WABA_TOO_MANY_CALLS};
use crate::meta::{waba_call_budget, waba_call_limit, MetaError, PHONE_NUMBERS_PAGE_SIZE};
use crate::state::AppState;

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

/// When the background may sync the account again after a sync at `now`: `configured` later, or
/// later still for a WABA whose listing takes many calls ([`background_sync_interval`]).
pub(crate) fn next_background_sync(
    conn: &mut DbConnection,
    account: crate::domain::AccountId,
    configured: std::time::Duration,
    now: NaiveDateTime,
) -> QueryResult<NaiveDateTime> {
    let numbers: i64 = phone_numbers::table
        .filter(phone_numbers::whatsapp_account_id.eq(account))
        .filter(phone_numbers::removed_at.is_null())
        .count()
        .get_result(conn)?;
    let interval =
        background_sync_interval(configured, numbers, has_registered_number(conn, account)?);
    Ok(now + chrono::TimeDelta::from_std(interval).unwrap_or(chrono::TimeDelta::hours(1)))
}

/// Records `calls` calls to `waba` now, or refuses them when the hour's budget is spent: by our
/// own count, or by Meta's as it last reported it ([`meta_free_at`]).
pub(crate) fn spend(
    conn: &mut DbConnection,
    waba: &WabaId,
    calls: i64,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let active = is_active(conn, waba)?;
    let budget = waba_call_budget(active);
    let refuse = |free_at: NaiveDateTime| ServiceError::WabaCallBudgetSpent {
        retry_after_seconds: (free_at - now).num_seconds().max(1).unsigned_abs(),
    };
    if let Some(report) = graph_calls::usage(conn, waba)? {
        let free_at = meta_free_at(&report, waba_call_limit(active), budget, calls);
        if free_at > now {
            return Err(refuse(free_at));
        }
    }
    graph_calls::spend(conn, waba, calls, budget, now)?.map_err(refuse)
}

/// One WABA's use of its budget over the last hour, as the metrics show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetUse {
    pub waba: WabaId,
    /// Calls to its management endpoints in the last hour, by every instance.
    pub used: i64,
    /// The service's budget for it ([`waba_call_budget`]).
    pub budget: i64,
    /// Meta's own count, in percent of its limit, as it last reported it within the hour.
    pub meta_percent: Option<i64>,
}

/// The [`BUSIEST`] WABAs by calls in the last hour.
pub async fn busiest(state: &AppState) -> Result<Vec<BudgetUse>, ServiceError> {
    state
        .db
        .run(|conn| {
            let now = crate::db::now();
            let hour_ago = now - chrono::TimeDelta::hours(1);
            let mut out = Vec::new();
            for (waba, used) in graph_calls::busiest(conn, hour_ago, BUSIEST)? {
                let budget = waba_call_budget(is_active(conn, &waba)?);
                let meta_percent = graph_calls::usage(conn, &waba)?
                    .filter(|report| report.reported_at > hour_ago)
                    .map(|report| report.used_percent);
                out.push(BudgetUse {
                    waba,
                    used,
                    budget,
                    meta_percent,
                });
            }
            Ok(out)
        })
        .await
}

/// How many WABAs (and numbers) the metrics name: the busiest only, so their labels stay few.
pub const BUSIEST: i64 = 10;

/// Forgets calls that left the hour, for WABAs that have not called since (spending forgets a
/// WABA's own as it goes). Returns how many went.
pub async fn prune(state: &AppState) -> Result<usize, ServiceError> {
    state
        .db
        .run(|conn| {
            let hour_ago = crate::db::now() - chrono::TimeDelta::hours(1);
            graph_calls::delete_before(conn, hour_ago).map_err(ServiceError::from)
        })
        .await
}

/// When Meta, as it last reported, leaves room for `calls` more within `budget`. When it throttles
/// and says until when (`regain_at`), then; otherwise once its count leaves room. Meta reports
/// only a share of the hour's calls, not when each was made, so its count is aged as if they had
/// been spread evenly over the hour before the report.
pub fn meta_free_at(report: &UsageReport, limit: i64, budget: i64, calls: i64) -> NaiveDateTime {
    if let Some(regain_at) = report.regain_at {
        return regain_at;
    }
    let counted = limit.saturating_mul(report.used_percent) / 100;
    let room = (budget - calls).max(0);
    if counted <= room {
        return report.reported_at;
    }
    // counted * (3600 - s) / 3600 <= room  <=>  s >= 3600 * (counted - room) / counted
    let seconds = (3600 * (counted - room) + counted - 1) / counted;
    report.reported_at + chrono::TimeDelta::seconds(seconds)
}

/// Stores what Meta said about the WABA's usage with the answer to a call on `object` (the WABA
/// or one of its numbers): its usage
/// headers, or a rate-limit error (read as the whole limit used, now). Every replica's budget then
/// follows it. Failing to store it only loses the report.
pub(crate) async fn note_usage<T>(
    state: &AppState,
    object: &str,
    waba: &WabaId,
    outcome: &Result<T, MetaError>,
) {
    let now = crate::db::now();
    let throttled = matches!(outcome, Err(err) if matches!(err.code(),
        Some(APP_RATE_LIMIT | WABA_RATE_LIMIT | WABA_TOO_MANY_CALLS)));
    let usage = state.meta.take_usage(object);
    let report = match (usage, throttled) {
        (Some(usage), throttled) => UsageReport {
            used_percent: if throttled {
                usage.percent.max(100)
            } else {
                usage.percent
            },
            regain_at: usage
                .regain_after_minutes
                .map(|minutes| now + chrono::TimeDelta::minutes(minutes)),
            reported_at: now,
        },
        (None, true) => UsageReport {
            used_percent: 100,
            regain_at: outcome
                .as_ref()
                .err()
                .and_then(MetaError::retry_after_seconds)
                .and_then(|s| i64::try_from(s).ok())
                .map(|s| now + chrono::TimeDelta::seconds(s)),
            reported_at: now,
        },
        (None, false) => return,
    };
    let waba = waba.clone();
    let stored = state
        .db
        .run(move |conn| {
            crate::db::write_tx(conn, |conn| {
                graph_calls::set_usage(conn, &waba, &report).map_err(ServiceError::from)
            })
        })
        .await;
    if let Err(err) = stored {
        tracing::warn!(error = %err.diagnostic(), "could not store Meta's usage report");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn metas_count_is_aged_over_the_hour_unless_it_says_when() {
        let at = chrono::DateTime::from_timestamp(1_800_000_000, 0)
            .unwrap()
            .naive_utc();
        let report = |used_percent, regain_at| UsageReport {
            used_percent,
            regain_at,
            reported_at: at,
        };
        let after = |t: NaiveDateTime| (t - at).num_seconds();
        // Inside the budget: at once.
        assert_eq!(after(meta_free_at(&report(79, None), 200, 160, 1)), 0);
        // 190 of 200 counted: room for one more within 160 once 31 of them have aged out.
        assert_eq!(after(meta_free_at(&report(95, None), 200, 160, 1)), 588);
        // A throttled WABA with no word on when: the whole limit, 12 minutes and a bit.
        assert_eq!(after(meta_free_at(&report(100, None), 200, 160, 1)), 738);
        // Meta says when: then.
        let regain = at + chrono::TimeDelta::minutes(7);
        assert_eq!(
            meta_free_at(&report(100, Some(regain)), 200, 160, 1),
            regain
        );
        // The same share of the active limit.
        assert_eq!(after(meta_free_at(&report(95, None), 5000, 4000, 1)), 570);
    }

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
