//! What a valid agent is.

use super::text::{self, AGENT_DESCRIPTION, AGENT_NAME};
use super::RuleError;

/// A name by [`AGENT_NAME`], stored without surrounding white space.
pub fn validate_name(name: &str) -> Result<String, RuleError> {
    AGENT_NAME.check(name)?;
    Ok(text::trim(name).to_owned())
}

/// A description by [`AGENT_DESCRIPTION`]; blank means none.
pub fn validate_description(description: Option<&str>) -> Result<Option<String>, RuleError> {
    let Some(description) = description else {
        return Ok(None);
    };
    AGENT_DESCRIPTION.check(description)?;
    Ok(Some(text::trim(description).to_owned()).filter(|d| !d.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  Support bot ").unwrap(), "Support bot");
        assert!(validate_name("   ").is_err());
        assert!(validate_name(&"x".repeat(101)).is_err());
        assert!(validate_name("tab\there").is_err());
    }

    #[test]
    fn blank_descriptions_are_none() {
        assert_eq!(validate_description(Some("  ")).unwrap(), None);
        assert_eq!(validate_description(None).unwrap(), None);
        assert!(validate_description(Some(&"x".repeat(2001))).is_err());
    }
}

/// A new agent, as the client writes it.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct CreateAgent {
    /// Shown in the WhatsApp Agent column and the assignment dropdown; unique in the workspace
    /// (case-insensitive), 1–100 characters.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub responder: super::responder::ResponderInput,
}

/// Changes to an agent: absent fields stay as they are; `description: null` clears it.
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct UpdateAgent {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "some_even_if_null")]
    #[schema(nullable)]
    pub description: Option<Option<String>>,
    /// Replaces the responder. Its secret may be omitted to keep the stored one when the kind stays the same.
    #[serde(default)]
    pub responder: Option<super::responder::ResponderInput>,
}

super::object_only!(CreateAgent, UpdateAgent);

/// Tells "absent" (`None`, via `default`) from "null" (`Some(None)`).
fn some_even_if_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}

#[cfg(test)]
mod update_tests {
    use super::*;

    #[test]
    fn update_tells_absent_from_null() {
        let absent: UpdateAgent = serde_json::from_str(r#"{"name":"x"}"#).unwrap();
        assert_eq!(absent.description, None);
        let null: UpdateAgent = serde_json::from_str(r#"{"description":null}"#).unwrap();
        assert_eq!(null.description, Some(None));
        assert!(serde_json::from_str::<UpdateAgent>(r#"{"nmae":"x"}"#).is_err());
        assert!(serde_json::from_str::<UpdateAgent>("[null, null]").is_err());
    }
}
