//! What a phone number's Meta facts allow: inbound agents, outbound use, the Register action.

use chrono::NaiveDateTime;

use super::RuleError;

/// Meta's platform type for numbers on the Cloud API, the only kind that can send and answer.
pub const CLOUD_API: &str = "CLOUD_API";
/// Meta's throughput level for a number that is registered with neither API.
pub const THROUGHPUT_NOT_APPLICABLE: &str = "NOT_APPLICABLE";

/// Quality ratings as the API reports them. Meta also sends `NA` for new numbers; that is `UNKNOWN`.
pub const QUALITY_RATINGS: [&str; 4] = ["GREEN", "YELLOW", "RED", "UNKNOWN"];

/// Maps whatever Meta sends as a quality rating onto the four values the API promises.
pub fn normalize_quality_rating(raw: Option<&str>) -> &'static str {
    match raw.map(|r| r.trim().to_ascii_uppercase()).as_deref() {
        Some("GREEN") | Some("HIGH") => "GREEN",
        Some("YELLOW") | Some("MEDIUM") => "YELLOW",
        Some("RED") | Some("LOW") => "RED",
        _ => "UNKNOWN",
    }
}

/// The registration states the API reports.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RegistrationState {
    /// Not on the Cloud API yet: the Register action is offered.
    NotRegistered,
    /// A register call to Meta is running now.
    Registering,
    /// On the Cloud API (or a coexistence number, which Meta registers itself).
    Registered,
    /// The last attempt failed; `last_error` says why and whether retrying helps.
    Failed,
}

impl RegistrationState {
    pub fn as_str(self) -> &'static str {
        match self {
            RegistrationState::NotRegistered => "not_registered",
            RegistrationState::Registering => "registering",
            RegistrationState::Registered => "registered",
            RegistrationState::Failed => "failed",
        }
    }
}

/// The facts about a number that the rules read.
#[derive(Debug, Clone, Copy)]
pub struct NumberFacts<'a> {
    pub display: &'a str,
    pub platform_type: &'a str,
    pub throughput_level: Option<&'a str>,
    pub is_on_biz_app: bool,
    pub removed: bool,
}

impl NumberFacts<'_> {
    pub fn is_cloud_api(&self) -> bool {
        self.platform_type == CLOUD_API
    }

    /// Whether the Register action applies. Judged from `platform_type` and `throughput.level`,
    /// never from `code_verification_status` (working numbers often show `EXPIRED` there).
    /// Coexistence numbers are registered by Meta itself and are never registered again.
    pub fn needs_registration(&self) -> bool {
        !self.removed
            && !self.is_on_biz_app
            && (!self.is_cloud_api() || self.throughput_level == Some(THROUGHPUT_NOT_APPLICABLE))
    }

    /// The Agent column: only Cloud API numbers that still exist can answer inbound messages.
    pub fn can_assign_inbound_agent(&self) -> bool {
        self.is_cloud_api() && !self.removed
    }

    /// The Actions column: Register is offered when the number is not yet on the Cloud API.
    pub fn can_register(&self) -> bool {
        self.needs_registration()
    }

    /// Checks that the number may be the inbound agent's number or an agent's outbound number.
    pub fn ensure_usable_for_agents(&self) -> Result<(), RuleError> {
        if self.removed {
            return Err(RuleError::NumberRemoved {
                display: self.display.to_owned(),
            });
        }
        if !self.is_cloud_api() {
            return Err(RuleError::NotCloudApi {
                display: self.display.to_owned(),
                platform_type: self.platform_type.to_owned(),
            });
        }
        Ok(())
    }

    /// The state shown in the Actions column, from what Meta says and what we stored.
    /// `stored` is our last recorded state; `lease_until` is set while an attempt runs.
    pub fn registration_state(
        &self,
        stored: &str,
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
            "failed" => RegistrationState::Failed,
            "registered" if !self.needs_registration() => RegistrationState::Registered,
            _ => RegistrationState::NotRegistered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(platform_type: &str) -> NumberFacts<'_> {
        NumberFacts {
            display: "+1 555-555-0100",
            platform_type,
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
            coex.registration_state("not_registered", None, now),
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
            cloud.registration_state("not_registered", None, now),
            RegistrationState::Registered
        );
        assert_eq!(
            onprem.registration_state("not_registered", None, now),
            RegistrationState::NotRegistered
        );
        assert_eq!(
            onprem.registration_state("failed", None, now),
            RegistrationState::Failed
        );
        assert_eq!(
            onprem.registration_state("failed", Some(later), now),
            RegistrationState::Registering
        );
        // An expired lease (a crashed attempt) does not keep the number "registering" forever.
        assert_eq!(
            onprem.registration_state("registering", Some(earlier), now),
            RegistrationState::NotRegistered
        );
        // Meta is the truth: a number we registered that Meta now reports off the Cloud API needs Register again.
        assert_eq!(
            onprem.registration_state("registered", None, now),
            RegistrationState::NotRegistered
        );
    }

    #[test]
    fn quality_ratings_from_meta_are_normalized() {
        assert_eq!(normalize_quality_rating(Some("GREEN")), "GREEN");
        assert_eq!(normalize_quality_rating(Some("yellow")), "YELLOW");
        assert_eq!(normalize_quality_rating(Some("NA")), "UNKNOWN");
        assert_eq!(normalize_quality_rating(Some("SOMETHING_NEW")), "UNKNOWN");
        assert_eq!(normalize_quality_rating(None), "UNKNOWN");
    }
}

/// The table's filters, validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhoneNumberFilter {
    pub platform_type: Option<String>,
    pub quality_rating: Option<String>,
    pub has_inbound_agent: Option<bool>,
    pub search: Option<Search>,
    pub include_removed: bool,
}

/// A `q` search: by verified name (folded), and by number when `q` reads as a phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub name_key: String,
    pub digits: Option<String>,
}

impl Search {
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
pub fn parse_platform_type(value: &str) -> Result<String, RuleError> {
    let value = value.trim();
    if !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_uppercase() || c == '_')
    {
        Ok(value.to_owned())
    } else {
        Err(RuleError::Invalid(format!(
            "`platform_type` must be a Meta platform type such as CLOUD_API, ON_PREMISE or NOT_APPLICABLE, not `{value}`"
        )))
    }
}

/// Checks a `quality_rating` filter against the four values the API reports.
pub fn parse_quality_rating(value: &str) -> Result<String, RuleError> {
    QUALITY_RATINGS
        .iter()
        .find(|r| **r == value.trim())
        .map(|r| (*r).to_owned())
        .ok_or_else(|| {
            RuleError::Invalid(format!(
                "`quality_rating` must be one of GREEN, YELLOW, RED, UNKNOWN, not `{value}`"
            ))
        })
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
        assert_eq!(parse_platform_type("CLOUD_API").unwrap(), "CLOUD_API");
        assert!(parse_platform_type("cloud api").is_err());
        assert_eq!(parse_quality_rating("RED").unwrap(), "RED");
        assert!(parse_quality_rating("PURPLE").is_err());
    }
}
