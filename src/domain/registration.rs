//! The registration policy, in one place: Meta's moving window of register calls, how many calls
//! one click may make, how long to wait between them, and how long an attempt holds its number.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};

/// Meta's moving window for register calls.
pub const WINDOW: TimeDelta = TimeDelta::hours(72);
/// Register calls Meta allows per number in [`WINDOW`]; past that Meta blocks the number for 72 hours.
pub const MAX_ATTEMPTS_IN_WINDOW: usize = 10;
/// Calls to Meta one click may make: the first, plus retries after transient errors.
pub const CALLS_PER_CLICK: usize = 3;
/// After a click whose calls Meta did not answer (down, timing out), the next try waits this long,
/// doubled for every unanswered call after that click's, up to [`MAX_OUTAGE_PAUSE`]; and each try
/// makes one call until Meta answers one. Clicking through an outage would otherwise spend the number's 10
/// calls in a few seconds and block it for 72 hours.
pub const OUTAGE_PAUSE: TimeDelta = TimeDelta::minutes(1);
/// Longest pause between tries while Meta does not answer.
pub const MAX_OUTAGE_PAUSE: TimeDelta = TimeDelta::hours(1);
/// Slack on top of what one call and the wait before it may take: the database work around a call.
const LEASE_MARGIN: TimeDelta = TimeDelta::seconds(30);

/// How long a click holds its number between two renewals. The holder renews before every call to
/// Meta, so the lease must outlast one call (`meta_timeout`) plus the longest wait before one;
/// derived from the settings, so no setting can make a lease lapse in flight.
pub fn lease(meta_timeout: Duration, retry_base_ms: u64) -> TimeDelta {
    let longest_wait = backoff(retry_base_ms, CALLS_PER_CLICK.saturating_sub(1));
    TimeDelta::from_std(meta_timeout + longest_wait).unwrap_or(TimeDelta::hours(1)) + LEASE_MARGIN
}

/// The wait before retry number `retry` (1 for the first retry): `base`, doubled each time.
pub fn backoff(base_ms: u64, retry: usize) -> Duration {
    let doublings = u32::try_from(retry.saturating_sub(1))
        .unwrap_or(u32::MAX)
        .min(16);
    Duration::from_millis(base_ms.saturating_mul(1u64 << doublings))
}

/// Start of the window ending at `now`.
pub fn window_start(now: NaiveDateTime) -> NaiveDateTime {
    now - WINDOW
}

/// One register call in the window, as the policy needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallInWindow {
    pub at: NaiveDateTime,
    /// Meta answered that the number is blocked from registering (its own 72-hour block).
    pub blocked_by_meta: bool,
    /// Meta did not answer it usefully: down, timing out, a transient error.
    pub unanswered: bool,
}

/// How much of the window a number has used, and when it may be registered again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowUse {
    /// Calls in the window.
    pub calls: usize,
    /// Calls one click may still make now (0 when blocked).
    pub calls_left: usize,
    /// When a blocked number may be registered again; `None` when it is not blocked.
    pub blocked_until: Option<NaiveDateTime>,
    /// Blocked because Meta said so (rather than because we counted the calls up).
    pub blocked_by_meta: bool,
    /// Meta did not answer the latest calls: how many in a row.
    pub unanswered_in_a_row: usize,
    /// While Meta does not answer, no try before then ([`OUTAGE_PAUSE`]); `None` otherwise.
    pub paused_until: Option<NaiveDateTime>,
}

impl WindowUse {
    /// Reads the calls of the window (any order) at `now`.
    pub fn of(calls: &[CallInWindow], now: NaiveDateTime) -> Self {
        let start = window_start(now);
        let mut in_window: Vec<CallInWindow> =
            calls.iter().copied().filter(|c| c.at > start).collect();
        in_window.sort_by_key(|c| c.at);
        let times: Vec<NaiveDateTime> = in_window.iter().map(|c| c.at).collect();
        let unanswered_in_a_row = in_window.iter().rev().take_while(|c| c.unanswered).count();
        // A pause starts once a whole click's calls went unanswered.
        let paused_until = in_window
            .last()
            .filter(|_| unanswered_in_a_row >= CALLS_PER_CLICK)
            .map(|last| last.at + outage_pause(unanswered_in_a_row))
            .filter(|until| *until > now);
        let meta_block = calls
            .iter()
            .filter(|c| c.blocked_by_meta && c.at > start)
            .map(|c| c.at)
            .max();
        let counted_block = (times.len() >= MAX_ATTEMPTS_IN_WINDOW)
            .then(|| times[times.len() - MAX_ATTEMPTS_IN_WINDOW] + WINDOW);
        let blocked_until = match (meta_block.map(|at| at + WINDOW), counted_block) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        WindowUse {
            calls: times.len(),
            calls_left: if blocked_until.is_some() {
                0
            } else {
                MAX_ATTEMPTS_IN_WINDOW - times.len()
            },
            blocked_until,
            blocked_by_meta: meta_block.is_some(),
            unanswered_in_a_row,
            paused_until,
        }
    }

    /// Calls a click may make: one while Meta has not been answering, else [`CALLS_PER_CLICK`].
    pub fn calls_per_click(&self) -> usize {
        if self.unanswered_in_a_row > 0 {
            1
        } else {
            CALLS_PER_CLICK
        }
    }

    /// Calls the next click may make: [`Self::calls_per_click`], never more than the window has left.
    pub fn calls_for_next_click(&self) -> usize {
        self.calls_left.min(self.calls_per_click())
    }
}

/// The pause after `unanswered` calls in a row that Meta did not answer ([`OUTAGE_PAUSE`]).
pub fn outage_pause(unanswered: usize) -> TimeDelta {
    let doublings = u32::try_from(unanswered.saturating_sub(CALLS_PER_CLICK))
        .unwrap_or(u32::MAX)
        .min(8);
    (OUTAGE_PAUSE * (1i32 << doublings)).min(MAX_OUTAGE_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours_ago: i64, now: NaiveDateTime) -> CallInWindow {
        CallInWindow {
            at: now - TimeDelta::hours(hours_ago),
            blocked_by_meta: false,
            unanswered: false,
        }
    }

    #[test]
    fn the_eleventh_call_in_72_hours_is_refused_until_the_oldest_leaves_the_window() {
        let now = chrono::Utc::now().naive_utc();
        let nine: Vec<_> = (1..=9).map(|h| at(h, now)).collect();
        let use9 = WindowUse::of(&nine, now);
        assert_eq!(
            (use9.calls, use9.calls_left, use9.blocked_until),
            (9, 1, None)
        );
        assert_eq!(use9.calls_for_next_click(), 1);
        let mut ten = nine.clone();
        ten.push(at(70, now));
        let use10 = WindowUse::of(&ten, now);
        assert_eq!(use10.calls_left, 0);
        assert_eq!(
            use10.blocked_until,
            Some(now - TimeDelta::hours(70) + WINDOW)
        );
        assert!(!use10.blocked_by_meta);
    }

    #[test]
    fn calls_older_than_the_window_do_not_count() {
        let now = chrono::Utc::now().naive_utc();
        let calls: Vec<_> = (0..10).map(|_| at(73, now)).collect();
        let usage = WindowUse::of(&calls, now);
        assert_eq!((usage.calls, usage.calls_left), (0, MAX_ATTEMPTS_IN_WINDOW));
        assert_eq!(usage.calls_for_next_click(), CALLS_PER_CLICK);
    }

    #[test]
    fn metas_own_block_holds_for_72_hours_from_when_meta_said_it() {
        let now = chrono::Utc::now().naive_utc();
        let blocked = CallInWindow {
            at: now - TimeDelta::hours(2),
            blocked_by_meta: true,
            unanswered: false,
        };
        let usage = WindowUse::of(&[at(5, now), blocked], now);
        assert!(usage.blocked_by_meta);
        assert_eq!(usage.calls_left, 0);
        assert_eq!(usage.blocked_until, Some(blocked.at + WINDOW));
    }

    #[test]
    fn while_meta_does_not_answer_tries_pause_longer_each_time_and_make_one_call() {
        let now = chrono::Utc::now().naive_utc();
        let unanswered = |seconds_ago: i64| CallInWindow {
            at: now - TimeDelta::seconds(seconds_ago),
            blocked_by_meta: false,
            unanswered: true,
        };
        // A click of three unanswered calls, ten seconds ago: a minute's pause, then one call.
        let click = [unanswered(14), unanswered(12), unanswered(10)];
        let usage = WindowUse::of(&click, now);
        assert_eq!(usage.unanswered_in_a_row, 3);
        assert_eq!(
            usage.paused_until,
            Some(now - TimeDelta::seconds(10) + OUTAGE_PAUSE)
        );
        assert_eq!(usage.calls_for_next_click(), 1);
        assert_eq!(usage.blocked_until, None, "not blocked: paused");
        // Each unanswered try after that doubles the pause, up to an hour.
        assert_eq!(outage_pause(4), TimeDelta::minutes(2));
        assert_eq!(outage_pause(6), TimeDelta::minutes(8));
        assert_eq!(outage_pause(9), MAX_OUTAGE_PAUSE);
        // One or two unanswered calls (a click cut short) do not pause, but the next makes one call.
        let short = WindowUse::of(&click[..2], now);
        assert_eq!(short.paused_until, None);
        assert_eq!(short.calls_for_next_click(), 1);
        // Once the pause is over, one call may go.
        let later = WindowUse::of(&click, now + OUTAGE_PAUSE);
        assert_eq!(later.paused_until, None);
        assert_eq!(later.calls_for_next_click(), 1);
        // An answered call ends it: a full click again.
        let mut answered = click.to_vec();
        answered.push(at(0, now));
        let usage = WindowUse::of(&answered, now);
        assert_eq!((usage.unanswered_in_a_row, usage.paused_until), (0, None));
        assert_eq!(usage.calls_for_next_click(), CALLS_PER_CLICK);
        // Clicking on through an outage, the tenth call comes two hours after the first click,
        // not four clicks later.
        let before_tenth: TimeDelta = (CALLS_PER_CLICK..MAX_ATTEMPTS_IN_WINDOW)
            .map(outage_pause)
            .sum();
        assert_eq!(
            before_tenth,
            TimeDelta::minutes(1 + 2 + 4 + 8 + 16 + 32 + 60)
        );
    }

    #[test]
    fn a_lease_outlasts_a_call_and_the_longest_wait_before_one() {
        let lease = lease(Duration::from_secs(45), 2000);
        assert_eq!(lease, TimeDelta::seconds(45 + 4 + 30));
        // A 45 s timeout outlived the old fixed 3 minutes over a whole click; renewed before
        // each call, the lease only has to cover one.
        assert!(lease > TimeDelta::seconds(45 + 4));
    }

    #[test]
    fn backoff_doubles_from_the_base() {
        assert_eq!(backoff(2000, 1), Duration::from_millis(2000));
        assert_eq!(backoff(2000, 2), Duration::from_millis(4000));
        assert_eq!(backoff(5, 3), Duration::from_millis(20));
    }
}

/// Which numbers `POST /api/v1/phone-numbers/register` registers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// These numbers (our ids), in this order.
    Numbers(Vec<crate::domain::PhoneNumberId>),
    /// Every live number of the workspace not fully on the Cloud API.
    AllPending,
}

/// Most numbers one request names.
pub const MAX_NUMBERS_PER_REQUEST: usize = 100;

/// Body of `POST /api/v1/phone-numbers/register`: `number_ids`, or `all_pending: true`.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct RegisterMany {
    /// Our ids of the numbers to register (1 to 100).
    #[serde(default, deserialize_with = "super::present")]
    #[schema(nullable = false)]
    pub number_ids: Option<Vec<crate::domain::PhoneNumberId>>,
    /// `true`: every number of the workspace that is not fully on the Cloud API.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(nullable = false)]
    pub all_pending: Option<bool>,
}

super::object_only!(RegisterMany);

impl RegisterMany {
    /// The numbers asked for.
    pub fn selection(self) -> Result<Selection, super::RuleError> {
        match (self.number_ids, self.all_pending) {
            (Some(ids), None) if (1..=MAX_NUMBERS_PER_REQUEST).contains(&ids.len()) => {
                Ok(Selection::Numbers(ids))
            }
            (Some(_), None) => Err(super::RuleError::Invalid(format!(
                "`number_ids` must name 1 to {MAX_NUMBERS_PER_REQUEST} numbers"
            ))),
            (None, Some(true)) => Ok(Selection::AllPending),
            _ => Err(super::RuleError::Invalid(
                "send either `number_ids` or `\"all_pending\": true`".into(),
            )),
        }
    }
}
