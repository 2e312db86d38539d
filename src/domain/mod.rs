//! The rules of the product, with no HTTP and no SQL: what a number's platform type allows, how a
//! registration state is read, what a valid agent looks like, and how lists are paged.

pub mod agent;
pub mod ids;
pub mod outbound;
pub mod page;
pub mod phone_number;
pub mod registration;
pub mod responder;
pub mod text;
pub mod vocabulary;
pub mod webhook;

pub use ids::*;
pub use vocabulary::*;

/// Request bodies are JSON objects. serde's derive also reads a struct from a JSON array (its
/// fields in order), so input types derive with `#[serde(remote = "Self")]` and get their
/// `Deserialize` from here: a JSON object, then the derived reading of it.
macro_rules! object_only {
    ($($t:ty),+ $(,)?) => {$(
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let map = <serde_json::Map<String, serde_json::Value> as serde::Deserialize>::deserialize(deserializer)?;
                <$t>::deserialize(serde_json::Value::Object(map)).map_err(serde::de::Error::custom)
            }
        }
    )+};
}
pub(crate) use object_only;

/// For `#[serde(remote = "Self")]` types that are also written out: the derived writing.
macro_rules! serialize_as_derived {
    ($($t:ty),+ $(,)?) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                <$t>::serialize(self, serializer)
            }
        }
    )+};
}
pub(crate) use serialize_as_derived;

/// An optional field that may be left out but not sent as `null` (the document does not allow it).
pub fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// Reads an optional whole number. JSON Schema's `integer` includes `64.0`, and so does this.
pub fn whole_number<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::Deserialize;
    let Some(n) = Option::<f64>::deserialize(deserializer)? else {
        return Ok(None);
    };
    let whole = n.fract() == 0.0 && n.abs() < 9.0e15;
    whole
        .then(|| T::try_from(n as i64).ok())
        .flatten()
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("`{n}` is not a whole number in range")))
}

/// A broken rule: the caller asked for something the product does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// Input that does not describe a valid thing (a bad name, an empty keyword, ...).
    #[error("{0}")]
    Invalid(String),
    /// Only numbers fully on the Cloud API can answer inbound messages or send outbound ones.
    #[error(
        "{display} is not ready on the WhatsApp Cloud API (platform type {platform_type}). \
         Register it first with POST /api/v1/phone-numbers/{{id}}/register (the Register action), then try again."
    )]
    NotCloudApi {
        display: String,
        platform_type: PlatformType,
    },
    /// The number was removed in Meta Business Manager; it is kept for its history only.
    #[error("{display} was removed from its WhatsApp Business Account in Meta and can no longer be used.")]
    NumberRemoved { display: String },
    /// A change needs a secret the agent does not have yet (a new responder kind, say).
    #[error("`{field}` is required: the agent has no stored secret of this kind to keep.")]
    SecretRequired { field: &'static str },
}

/// A secret as a client sent it (an API key, a webhook secret, an access token, a signup code).
/// Its `Debug` never shows it; `expose` is the one way to read it.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Secret {
    fn from(text: &str) -> Self {
        Secret(text.to_owned())
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Secret(text)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Folds text for case-insensitive search and comparison, the same way on every database
/// (SQLite's `lower()` only knows ASCII, so the folded form is computed here and stored); the
/// invisible characters a name may hold ([`text::ignored_in_keys`]) do not count.
pub fn search_key(text: &str) -> String {
    let visible: String = text
        .chars()
        .filter(|c| !text::ignored_in_keys(*c))
        .collect();
    visible.trim().to_lowercase()
}

/// The digits of a phone number as Meta writes it either way (`+1 555-555-5555` or `15555555555`).
pub fn digits(text: &str) -> String {
    text.chars().filter(char::is_ascii_digit).collect()
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
    fn search_key_ignores_what_a_name_may_hold_invisibly() {
        assert_eq!(search_key("Care ❤\u{FE0F}"), search_key("care ❤"));
        assert_eq!(search_key("\u{E0041} Support\u{E007F}"), "support");
    }
}
