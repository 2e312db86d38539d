//! What a valid agent is.

use super::RuleError;

/// Longest agent name.
pub const MAX_NAME: usize = 100;
/// Longest agent description.
pub const MAX_DESCRIPTION: usize = 2000;

/// A trimmed, non-empty name of at most [`MAX_NAME`] characters.
pub fn validate_name(name: &str) -> Result<String, RuleError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(RuleError::Invalid("name must not be empty".into()));
    }
    if name.chars().count() > MAX_NAME {
        return Err(RuleError::Invalid(format!(
            "name must be at most {MAX_NAME} characters"
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(RuleError::Invalid(
            "name must not contain control characters".into(),
        ));
    }
    Ok(name.to_owned())
}

/// A description of at most [`MAX_DESCRIPTION`] characters; blank means none.
pub fn validate_description(description: Option<&str>) -> Result<Option<String>, RuleError> {
    match description.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) if text.chars().count() > MAX_DESCRIPTION => Err(RuleError::Invalid(format!(
            "description must be at most {MAX_DESCRIPTION} characters"
        ))),
        Some(text) => Ok(Some(text.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(validate_name("  Support bot ").unwrap(), "Support bot");
        assert!(validate_name("   ").is_err());
        assert!(validate_name(&"x".repeat(MAX_NAME + 1)).is_err());
        assert!(validate_name("tab\there").is_err());
    }

    #[test]
    fn blank_descriptions_are_none() {
        assert_eq!(validate_description(Some("  ")).unwrap(), None);
        assert_eq!(validate_description(None).unwrap(), None);
        assert!(validate_description(Some(&"x".repeat(MAX_DESCRIPTION + 1))).is_err());
    }
}

/// A new agent, as the client writes it.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
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
#[serde(deny_unknown_fields)]
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
    }
}
