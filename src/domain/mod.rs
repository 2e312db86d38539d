//! The rules of the product, with no HTTP and no SQL: what a number's platform type allows, how a
//! registration state is read, what a valid agent looks like, and how lists are paged.

pub mod agent;
pub mod page;
pub mod phone_number;
pub mod responder;

/// A broken rule: the caller asked for something the product does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Input that does not describe a valid thing (a bad name, an empty keyword, ...).
    #[error("{0}")]
    Invalid(String),
    /// Only Cloud API numbers can answer inbound messages or send outbound ones.
    #[error(
        "{display} is not on the WhatsApp Cloud API (platform type {platform_type}). \
         Register it first with POST /api/v1/phone-numbers/{{id}}/register (the Register action), then try again."
    )]
    NotCloudApi {
        display: String,
        platform_type: String,
    },
    /// The number was removed in Meta Business Manager; it is kept for its history only.
    #[error("{display} was removed from its WhatsApp Business Account in Meta and can no longer be used.")]
    NumberRemoved { display: String },
}

/// Folds text for case-insensitive search and comparison, the same way on every database
/// (SQLite's `lower()` only knows ASCII, so the folded form is computed here and stored).
pub fn search_key(text: &str) -> String {
    text.trim().to_lowercase()
}

/// The digits of a phone number as Meta writes it either way (`+1 555-555-5555` or `15555555555`).
pub fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
}

/// Who may change things in a workspace.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May read and change everything in the workspace.
    Editor,
    /// May only read.
    Viewer,
}

impl Role {
    pub fn can_write(self) -> bool {
        matches!(self, Role::Editor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_match_both_ways_meta_writes_a_number() {
        assert_eq!(digits("+1 555-555-5555"), digits("15555555555"));
        assert_eq!(digits("+91 (98765) 43210"), "919876543210");
    }

    #[test]
    fn search_key_folds_case_beyond_ascii() {
        assert_eq!(search_key("  Ärger Support "), "ärger support");
        assert_eq!(search_key("SALES"), search_key("sales"));
    }

    #[test]
    fn only_editors_write() {
        assert!(Role::Editor.can_write());
        assert!(!Role::Viewer.can_write());
    }
}
