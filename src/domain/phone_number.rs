//! What a phone number's Meta facts allow: inbound agents, outbound use, the Register action.

use chrono::NaiveDateTime;

use super::registration::WindowUse;
use super::vocabulary::{BlockedReason, PlatformType, QualityRating, RegistrationState};
use super::RuleError;

/// Meta's throughput level for a number that is registered with neither API.
pub const THROUGHPUT_NOT_APPLICABLE: &str = "NOT_APPLICABLE";

/// The facts about a number that the rules read.
#[derive(Debug, Clone, Copy)]
pub struct NumberFacts<'a> {
    pub display: &'a str,
    pub platform_type: &'a PlatformType,
    pub throughput_level: Option<&'a str>,
    pub is_on_biz_app: bool,
    pub removed: bool,
}

impl NumberFacts<'_> {
    pub fn is_cloud_api(&self) -> bool {
        *self.platform_type == PlatformType::CloudApi
    }

    /// Whether the Register action applies. Judged from `platform_type` and `throughput.level`,
    /// never from `code_verification_status` (working numbers often show `EXPIRED` there).
    /// Coexistence numbers are registered by Meta itself and are never registered again.
    pub fn needs_registration(&self) -> bool {
        !self.removed
            && !self.is_on_biz_app
            && (!self.is_cloud_api() || self.throughput_level == Some(THROUGHPUT_NOT_APPLICABLE))
    }

    /// Whether the number can answer and send: on the Cloud API, not removed, and not still
    /// waiting for Register (a `CLOUD_API` number whose throughput is `NOT_APPLICABLE` is not
    /// registered yet; Register wins, so `can_register` and this are never both true).
    pub fn is_usable_for_agents(&self) -> bool {
        self.is_cloud_api() && !self.removed && !self.needs_registration()
    }

    /// The Agent column: show the agent picker, else "Register via Actions".
    pub fn can_assign_inbound_agent(&self) -> bool {
        self.is_usable_for_agents()
    }

    /// The agents' outbound-number dropdown lists exactly these numbers.
    pub fn can_use_as_outbound(&self) -> bool {
        self.is_usable_for_agents()
    }

    /// The Actions column: Register is offered when the number is not yet on the Cloud API.
    pub fn can_register(&self) -> bool {
        self.needs_registration()
    }

    /// Why Register cannot be used now, if something blocks it; `None` also for numbers that
    /// need no registration (on the Cloud API already).
    pub fn blocked_reason(
        &self,
        window: &WindowUse,
        account_needs_reconnect: bool,
    ) -> Option<BlockedReason> {
        if self.removed {
            Some(BlockedReason::Removed)
        } else if self.is_on_biz_app {
            Some(BlockedReason::Coexistence)
        } else if !self.needs_registration() {
            None
        } else if account_needs_reconnect {
            Some(BlockedReason::AccountNeedsReconnect)
        } else if window.blocked_until.is_some() {
            Some(BlockedReason::LimitReached)
        } else if window.paused_until.is_some() {
            Some(BlockedReason::MetaUnavailable)
        } else {
            None
        }
    }

    /// How fast the number may send (reference §3, §8).
    pub fn send_pace(&self) -> super::outbound::Pace {
        super::outbound::Pace::per_second(super::outbound::messages_per_second(
            self.is_on_biz_app,
            self.throughput_level,
        ))
    }

    /// Checks that the number may be the inbound agent's number or an agent's outbound number.
    pub fn ensure_usable_for_agents(&self) -> Result<(), RuleError> {
        if self.removed {
            return Err(RuleError::NumberRemoved {
                display: self.display.to_owned(),
            });
        }
        if !self.is_usable_for_agents() {
            return Err(RuleError::NotCloudApi {
                display: self.display.to_owned(),
                platform_type: self.platform_type.clone(),
            });
        }
        Ok(())
    }

    /// The state shown in the Actions column, from what Meta says and what we stored.
    /// `stored` is our last recorded state; `lease_until` is set while an attempt runs.
    pub fn registration_state(
        &self,
        stored: RegistrationState,
        lease_until: Option<NaiveDateTime>,
        now: NaiveDateTime,
    ) -> RegistrationState {
        if lease_until.is_some_and(|until| until > now) {
            return RegistrationState::Registering;
        }
        if !self.needs_registration() && !self.removed {
            return RegistrationState::Registered;
        }
        match stored {
            RegistrationState::Failed => RegistrationState::Failed,
            _ => RegistrationState::NotRegistered,
        }
    }
}

/// A number whose quality went bad: since when, why, and the rating it had before (it clears
/// when the rating is back there and the status is fine again).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub struct QualityAlert {
    pub since: chrono::NaiveDateTime,
    pub reason: super::QualityAlertReason,
    pub previous_rating: super::QualityRating,
}

/// How good a rating is (higher is better); `None` for `UNKNOWN`, which says nothing.
fn goodness(rating: super::QualityRating) -> Option<u8> {
    use super::QualityRating as Q;
    match rating {
        Q::Green => Some(3),
        Q::Yellow => Some(2),
        Q::Red => Some(1),
        Q::Unknown => None,
    }
}

impl QualityAlert {
    /// The alert a number carries after Meta's latest word on it (`rating`, `status`), given the
    /// alert it carried and the rating it had (`None` for a number seen for the first time).
    /// Raised when the rating drops or the status turns bad; kept (with its first `since` and
    /// `previous_rating`) until the rating is back to `previous_rating` or better and the status
    /// is fine; then cleared.
    pub fn next(
        current: Option<QualityAlert>,
        previous_rating: Option<super::QualityRating>,
        rating: super::QualityRating,
        status: Option<&str>,
        now: chrono::NaiveDateTime,
    ) -> Option<QualityAlert> {
        let bad_status = super::QualityAlertReason::of_status(status);
        let dropped = match (previous_rating.and_then(goodness), goodness(rating)) {
            (Some(before), Some(after)) => after < before,
            _ => false,
        };
        match current {
            Some(alert) => {
                let recovered = bad_status.is_none()
                    && match (goodness(rating), goodness(alert.previous_rating)) {
                        (Some(now_good), Some(then_good)) => now_good >= then_good,
                        // Back to "unknown" proves nothing; from unknown, any known rating does.
                        (None, _) => false,
                        (Some(_), None) => true,
                    };
                if recovered {
                    None
                } else {
                    Some(QualityAlert {
                        reason: bad_status.unwrap_or(super::QualityAlertReason::QualityDropped),
                        ..alert
                    })
                }
            }
            None => {
                let reason =
                    bad_status.or(dropped.then_some(super::QualityAlertReason::QualityDropped))?;
                Some(QualityAlert {
                    since: now,
                    reason,
                    previous_rating: previous_rating.unwrap_or(rating),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quality_alert_rises_with_a_drop_or_a_bad_status_and_clears_on_recovery() {
        use crate::domain::{QualityAlertReason as R, QualityRating as Q};
        let t0 = chrono::DateTime::from_timestamp(1_764_150_000, 0)
            .unwrap()
            .naive_utc();
        let t1 = t0 + chrono::TimeDelta::hours(1);
        // Green to yellow raises, remembering green; red keeps it (and its first time).
        let raised =
            QualityAlert::next(None, Some(Q::Green), Q::Yellow, Some("CONNECTED"), t0).unwrap();
        assert_eq!(
            (raised.reason, raised.previous_rating, raised.since),
            (R::QualityDropped, Q::Green, t0)
        );
        let worse =
            QualityAlert::next(Some(raised), Some(Q::Yellow), Q::Red, Some("CONNECTED"), t1)
                .unwrap();
        assert_eq!((worse.since, worse.previous_rating), (t0, Q::Green));
        // Yellow is not recovery from green; green is.
        assert!(QualityAlert::next(Some(worse), Some(Q::Red), Q::Yellow, None, t1).is_some());
        assert_eq!(
            QualityAlert::next(
                Some(worse),
                Some(Q::Yellow),
                Q::Green,
                Some("CONNECTED"),
                t1
            ),
            None
        );
        // No change, a rise, or unknown: nothing.
        assert_eq!(
            QualityAlert::next(None, Some(Q::Yellow), Q::Yellow, None, t0),
            None
        );
        assert_eq!(
            QualityAlert::next(None, Some(Q::Red), Q::Green, None, t0),
            None
        );
        assert_eq!(
            QualityAlert::next(None, Some(Q::Green), Q::Unknown, None, t0),
            None
        );
        // A bad status raises whatever the rating, even at first sight, and holds while it lasts.
        let flagged = QualityAlert::next(None, None, Q::Green, Some("flagged"), t0).unwrap();
        assert_eq!(
            (flagged.reason, flagged.previous_rating),
            (R::Flagged, Q::Green)
        );
        assert!(
            QualityAlert::next(Some(flagged), Some(Q::Green), Q::Green, Some("FLAGGED"), t1)
                .is_some()
        );
        assert_eq!(
            QualityAlert::next(
                Some(flagged),
                Some(Q::Green),
                Q::Green,
                Some("CONNECTED"),
                t1
            ),
            None
        );
        let banned =
            QualityAlert::next(Some(raised), Some(Q::Yellow), Q::Yellow, Some("BANNED"), t1)
                .unwrap();
        assert_eq!((banned.reason, banned.since), (R::Banned, t0));
    }

    fn facts(platform_type: &str) -> NumberFacts<'static> {
        NumberFacts {
            display: "+1 555-555-0100",
            platform_type: Box::leak(Box::new(PlatformType::from_meta(platform_type))),
            throughput_level: Some("STANDARD"),
            is_on_biz_app: false,
            removed: false,
        }
    }

    #[test]
    fn only_cloud_api_numbers_can_get_an_inbound_agent() {
        assert!(facts("CLOUD_API").can_assign_inbound_agent());
        assert!(!facts("ON_PREMISE").can_assign_inbound_agent());
        assert!(!facts("NOT_APPLICABLE").can_assign_inbound_agent());
        assert!(!facts("SOMETHING_NEW").can_assign_inbound_agent());
    }

    #[test]
    fn a_number_off_the_cloud_api_is_refused_with_a_hint_to_register() {
        let err = facts("ON_PREMISE").ensure_usable_for_agents().unwrap_err();
        assert!(matches!(err, RuleError::NotCloudApi { .. }));
        assert!(err.to_string().contains("Register"), "{err}");
        assert!(facts("CLOUD_API").ensure_usable_for_agents().is_ok());
    }

    #[test]
    fn a_removed_number_cannot_be_used_even_on_the_cloud_api() {
        let removed = NumberFacts {
            removed: true,
            ..facts("CLOUD_API")
        };
        assert!(!removed.can_assign_inbound_agent());
        assert!(!removed.can_register());
        assert_eq!(
            removed.ensure_usable_for_agents(),
            Err(RuleError::NumberRemoved {
                display: "+1 555-555-0100".into()
            })
        );
    }

    #[test]
    fn register_is_offered_off_the_cloud_api_and_when_throughput_is_not_applicable() {
        assert!(facts("ON_PREMISE").can_register());
        assert!(facts("NOT_APPLICABLE").can_register());
        assert!(!facts("CLOUD_API").can_register());
        let odd = NumberFacts {
            throughput_level: Some("NOT_APPLICABLE"),
            ..facts("CLOUD_API")
        };
        assert!(odd.can_register());
        assert!(!odd.can_assign_inbound_agent() && !odd.can_use_as_outbound());
        assert!(matches!(
            odd.ensure_usable_for_agents(),
            Err(RuleError::NotCloudApi { .. })
        ));
    }

    #[test]
    fn register_and_the_agent_picker_are_never_offered_together() {
        for platform in ["CLOUD_API", "ON_PREMISE", "NOT_APPLICABLE", "SOMETHING_NEW"] {
            for throughput in [None, Some("STANDARD"), Some("NOT_APPLICABLE")] {
                for (is_on_biz_app, removed) in [(false, false), (true, false), (false, true)] {
                    let f = NumberFacts {
                        throughput_level: throughput,
                        is_on_biz_app,
                        removed,
                        ..facts(platform)
                    };
                    assert!(
                        !(f.can_register() && f.can_assign_inbound_agent()),
                        "{platform} {throughput:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn coexistence_numbers_are_never_offered_register() {
        let coex = NumberFacts {
            is_on_biz_app: true,
            ..facts("NOT_APPLICABLE")
        };
        assert!(!coex.can_register());
        let now = chrono::Utc::now().naive_utc();
        assert_eq!(
            coex.registration_state(RegistrationState::NotRegistered, None, now),
            RegistrationState::Registered
        );
    }

    #[test]
    fn registration_state_reads_meta_first_then_our_record() {
        let now = chrono::Utc::now().naive_utc();
        let later = now + chrono::TimeDelta::seconds(30);
        let earlier = now - chrono::TimeDelta::seconds(30);
        let cloud = facts("CLOUD_API");
        let onprem = facts("ON_PREMISE");
        assert_eq!(
            cloud.registration_state(RegistrationState::NotRegistered, None, now),
            RegistrationState::Registered
        );
        assert_eq!(
            onprem.registration_state(RegistrationState::NotRegistered, None, now),
            RegistrationState::NotRegistered
        );
        assert_eq!(
            onprem.registration_state(RegistrationState::Failed, None, now),
            RegistrationState::Failed
        );
        assert_eq!(
            onprem.registration_state(RegistrationState::Failed, Some(later), now),
            RegistrationState::Registering
        );
        // An expired lease (a crashed attempt) does not keep the number "registering" forever.
        assert_eq!(
            onprem.registration_state(RegistrationState::Registering, Some(earlier), now),
            RegistrationState::NotRegistered
        );
        // Meta is the truth: a number we registered that Meta now reports off the Cloud API needs Register again.
        assert_eq!(
            onprem.registration_state(RegistrationState::Registered, None, now),
            RegistrationState::NotRegistered
        );
    }
}

/// The table's filters, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhoneNumberFilter {
    pub platform_type: Option<PlatformType>,
    pub quality_rating: Option<QualityRating>,
    pub has_inbound_agent: Option<bool>,
    /// Numbers with (`true`) or without (`false`) a quality alert.
    pub quality_alert: Option<bool>,
    pub search: Option<Search>,
    pub include_removed: bool,
    pub whatsapp_account_id: Option<super::AccountId>,
    /// Numbers that can (`true`) or cannot (`false`) be registered now.
    pub can_register: Option<bool>,
    /// Numbers that can (`true`) or cannot (`false`) answer and send.
    pub can_use_as_outbound: Option<bool>,
}

/// A `q` search: by verified name (folded), and by number when `q` reads as a phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub name_key: String,
    pub digits: Option<String>,
}

impl Search {
    /// Checks `q` by [`super::text::SEARCH`], then reads it.
    pub fn checked(q: &str) -> Result<Option<Search>, RuleError> {
        super::text::SEARCH.check(q)?;
        Ok(Search::parse(q))
    }

    /// Blank `q` means no search.
    pub fn parse(q: &str) -> Option<Search> {
        let q = q.trim();
        if q.is_empty() {
            return None;
        }
        let phone_like = q
            .chars()
            .all(|c| c.is_ascii_digit() || " +-().".contains(c));
        let digits = super::digits(q);
        Some(Search {
            name_key: super::search_key(q),
            digits: (phone_like && !digits.is_empty()).then_some(digits),
        })
    }
}

/// Checks a `platform_type` filter: Meta's values are upper-case words (`CLOUD_API`, `ON_PREMISE`, ...).
pub fn parse_platform_type(value: &str) -> Result<PlatformType, RuleError> {
    super::text::PLATFORM_TYPE_FILTER.check(value)?;
    Ok(PlatformType::from_meta(value))
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn q_searches_numbers_only_when_it_reads_as_a_number() {
        let s = Search::parse("+1 (555) 010").unwrap();
        assert_eq!(s.digits.as_deref(), Some("1555010"));
        let s = Search::parse("Shop 24").unwrap();
        assert_eq!((s.name_key.as_str(), s.digits), ("shop 24", None));
        assert!(Search::parse("   ").is_none());
    }

    #[test]
    fn filters_reject_values_outside_their_vocabulary() {
        assert_eq!(
            parse_platform_type("CLOUD_API").unwrap(),
            PlatformType::CloudApi
        );
        assert!(parse_platform_type("cloud api").is_err());
    }
}
