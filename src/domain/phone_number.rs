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
        } else {
            None
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
