//! How an agent answers: FAQ keywords, an OpenAI-compatible chat server, or a webhook.
//! Secrets (the API key, the webhook secret) are write-only: they are split off here, stored
//! encrypted, and only their presence is ever shown.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::text::{
    self, TextRule, FAQ_ANSWER, FAQ_FALLBACK, FAQ_KEYWORD, OPENAI_API_KEY, OPENAI_BASE_URL,
    OPENAI_MODEL, OPENAI_SYSTEM_PROMPT, WEBHOOK_SECRET, WEBHOOK_URL,
};
use super::{ResponderKind, RuleError, Secret};

/// Most FAQ entries one agent may have.
pub const MAX_FAQ_ENTRIES: usize = 500;
/// Most keywords one FAQ entry may have.
pub const MAX_FAQ_KEYWORDS: usize = 50;
/// Most earlier messages an OpenAI responder may send along.
pub const MAX_HISTORY_MESSAGES: u32 = 100;

/// One FAQ answer and the keywords that trigger it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self")]
pub struct FaqEntry {
    /// Words or phrases; a message containing any of them (case-insensitive) gets `answer`.
    pub keywords: Vec<String>,
    pub answer: String,
}

/// Answers from a fixed list of keyword → answer entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(remote = "Self")]
pub struct FaqSettings {
    pub entries: Vec<FaqEntry>,
    /// Sent when no keyword matches; no reply when null.
    #[serde(default)]
    pub fallback: Option<String>,
}

/// Settings of an OpenAI-compatible chat-completions responder, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OpenAiSettings {
    /// Base URL of any OpenAI-compatible server, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// How many earlier messages of the conversation are sent along (0–100).
    pub history_messages: u32,
    /// Whether an API key is stored. The key itself is never returned.
    #[serde(default)]
    pub api_key_set: bool,
}

/// Settings of a webhook responder, as stored and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct WebhookSettings {
    /// Where inbound messages are POSTed; the reply is read from the response.
    pub url: String,
    /// Whether a signing secret is stored. The secret itself is never returned.
    #[serde(default)]
    pub secret_set: bool,
}

/// How an agent answers inbound messages, as the API shows it (secrets only as `*_set` flags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Responder {
    Faq { faq: FaqSettings },
    Openai { openai: OpenAiSettings },
    Webhook { webhook: WebhookSettings },
}

impl Responder {
    pub fn kind(&self) -> ResponderKind {
        match self {
            Responder::Faq { .. } => ResponderKind::Faq,
            Responder::Openai { .. } => ResponderKind::Openai,
            Responder::Webhook { .. } => ResponderKind::Webhook,
        }
    }
}

/// An OpenAI-compatible responder as written by the client.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct OpenAiInput {
    pub base_url: String,
    pub model: String,
    /// Write-only. Required when the agent does not already have an OpenAI key; omit to keep it.
    #[serde(default)]
    #[schema(write_only, value_type = Option<String>)]
    pub api_key: Option<Secret>,
    #[serde(default)]
    pub system_prompt: Option<String>,
    /// Default 10.
    #[serde(default, deserialize_with = "super::whole_number")]
    pub history_messages: Option<u32>,
}

/// A webhook responder as written by the client.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct WebhookInput {
    pub url: String,
    /// Write-only; at least 16 characters, used to sign our calls (HMAC-SHA256). Required when the
    /// agent does not already have a webhook secret; omit to keep it.
    #[serde(default)]
    #[schema(write_only, value_type = Option<String>)]
    pub secret: Option<Secret>,
}

/// How an agent answers, as written by the client.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(remote = "Self", tag = "kind", rename_all = "snake_case")]
pub enum ResponderInput {
    Faq { faq: FaqSettings },
    Openai { openai: OpenAiInput },
    Webhook { webhook: WebhookInput },
}

super::object_only!(
    FaqEntry,
    FaqSettings,
    OpenAiInput,
    WebhookInput,
    ResponderInput
);
super::serialize_as_derived!(FaqEntry, FaqSettings);

/// What to do with the stored secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretChange {
    Keep,
    Set(Secret),
    Clear,
}

/// A validated responder: what to store in the clear and what to do with the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidResponder {
    pub settings: Responder,
    pub secret: SecretChange,
}

impl ValidResponder {
    /// What this responder changes against `current`, named as the API names the fields
    /// (`responder.kind`, `responder.openai.model`, `responder.webhook.secret`, ...): a secret by
    /// its name only, since its value is never recorded.
    pub fn changed_fields(&self, current: &Responder) -> Vec<String> {
        let (kind, was) = (self.settings.kind(), current.kind());
        let fields = |r: &Responder| {
            serde_json::to_value(r)
                .ok()
                .and_then(|mut v| v.get_mut(r.kind().as_str()).map(serde_json::Value::take))
                .and_then(|v| match v {
                    serde_json::Value::Object(map) => Some(map),
                    _ => None,
                })
                .unwrap_or_default()
        };
        let (before, after) = (fields(current), fields(&self.settings));
        let mut changed = Vec::new();
        if kind != was {
            changed.push("responder.kind".to_owned());
        }
        // The `*_set` flags mirror the secret, which is named below from what was sent.
        changed.extend(
            after
                .iter()
                .filter(|(key, value)| {
                    !key.ends_with("_set") && (kind != was || before.get(*key) != Some(*value))
                })
                .map(|(key, _)| format!("responder.{}.{key}", kind.as_str())),
        );
        let secret = |kind: ResponderKind| match kind {
            ResponderKind::Openai => Some("responder.openai.api_key"),
            ResponderKind::Webhook => Some("responder.webhook.secret"),
            ResponderKind::Faq => None,
        };
        let touched = match self.secret {
            SecretChange::Keep => None,
            SecretChange::Set(_) => secret(kind),
            SecretChange::Clear => secret(was),
        };
        changed.extend(touched.map(str::to_owned));
        changed
    }
}

/// Which URLs an agent may be given beyond `https`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Plain `http` to a loopback address (development mode: a local model or webhook).
    pub allow_loopback_http: bool,
}

impl UrlPolicy {
    /// The pattern of every agent URL this policy takes (what the served document states).
    pub fn url_pattern(self) -> &'static str {
        if self.allow_loopback_http {
            text::HTTP_URL_PATTERN
        } else {
            text::HTTPS_URL_PATTERN
        }
    }
}

impl ResponderInput {
    /// Validates the input. `current` is the agent's present responder (on update), whose secret is
    /// kept when the kind stays the same and no new secret is given, as long as the URL still
    /// points at the same origin: a stored key never follows a host it was not given for.
    pub fn validate(
        self,
        current: Option<&Responder>,
        urls: UrlPolicy,
    ) -> Result<ValidResponder, RuleError> {
        match self {
            ResponderInput::Faq { faq } => {
                validate_faq(&faq)?;
                Ok(ValidResponder {
                    settings: Responder::Faq {
                        faq: clean_faq(faq),
                    },
                    secret: SecretChange::Clear,
                })
            }
            ResponderInput::Openai { openai } => {
                let base_url = http_url(&OPENAI_BASE_URL, &openai.base_url, urls)?;
                let model = required(&OPENAI_MODEL, &openai.model)?;
                let system_prompt = optional(&OPENAI_SYSTEM_PROMPT, openai.system_prompt)?;
                let history_messages = openai.history_messages.unwrap_or(10);
                if history_messages > MAX_HISTORY_MESSAGES {
                    return Err(RuleError::Invalid(format!(
                        "openai.history_messages must be between 0 and {MAX_HISTORY_MESSAGES}"
                    )));
                }
                let had_key = matches!(current, Some(Responder::Openai { openai: old })
                    if old.api_key_set && same_origin(&old.base_url, &base_url));
                let secret = new_secret(&OPENAI_API_KEY, openai.api_key, had_key)?;
                let settings = OpenAiSettings {
                    base_url,
                    model,
                    system_prompt,
                    history_messages,
                    api_key_set: true,
                };
                Ok(ValidResponder {
                    settings: Responder::Openai { openai: settings },
                    secret,
                })
            }
            ResponderInput::Webhook { webhook } => {
                let url = http_url(&WEBHOOK_URL, &webhook.url, urls)?;
                let had_secret = matches!(current, Some(Responder::Webhook { webhook: old })
                    if old.secret_set && same_origin(&old.url, &url));
                let secret = new_secret(&WEBHOOK_SECRET, webhook.secret, had_secret)?;
                let settings = WebhookSettings {
                    url,
                    secret_set: true,
                };
                Ok(ValidResponder {
                    settings: Responder::Webhook { webhook: settings },
                    secret,
                })
            }
        }
    }
}

fn invalid(msg: &str) -> RuleError {
    RuleError::Invalid(msg.to_owned())
}

/// Checked by `rule`, stored without surrounding white space.
fn required(rule: &TextRule, value: &str) -> Result<String, RuleError> {
    rule.check(value)?;
    Ok(text::trim(value).to_owned())
}

/// Checked by `rule`; blank means none.
fn optional(rule: &TextRule, value: Option<String>) -> Result<Option<String>, RuleError> {
    let Some(value) = value else { return Ok(None) };
    rule.check(&value)?;
    Ok(Some(text::trim(&value).to_owned()).filter(|v| !v.is_empty()))
}

/// Checked by `rule` (whose pattern only admits URLs that parse), without a trailing slash. Plain
/// `http` (loopback only, by the pattern) needs the policy's leave.
fn http_url(rule: &TextRule, value: &str, urls: UrlPolicy) -> Result<String, RuleError> {
    rule.check(value)?;
    let parsed = url::Url::parse(value)
        .map_err(|e| RuleError::Invalid(format!("`{}` is not a URL: {e}", rule.field)))?;
    if parsed.scheme() != "https" && !urls.allow_loopback_http {
        return Err(RuleError::Invalid(format!(
            "`{}` must be an https:// URL (plain http:// is for loopback addresses in development mode)",
            rule.field
        )));
    }
    Ok(value.trim_end_matches('/').to_owned())
}

/// Same scheme, host and port: where a stored key may keep going.
fn same_origin(old: &str, new: &str) -> bool {
    match (url::Url::parse(old), url::Url::parse(new)) {
        (Ok(old), Ok(new)) => old.origin() == new.origin(),
        _ => false,
    }
}

/// A secret is taken exactly as given (no trimming): it must match what the other side holds.
fn new_secret(
    rule: &TextRule,
    value: Option<Secret>,
    had_one: bool,
) -> Result<SecretChange, RuleError> {
    match value {
        Some(secret) => {
            rule.check(secret.expose())?;
            Ok(SecretChange::Set(secret))
        }
        None if had_one => Ok(SecretChange::Keep),
        None => Err(RuleError::SecretRequired { field: rule.field }),
    }
}

fn validate_faq(faq: &FaqSettings) -> Result<(), RuleError> {
    if faq.entries.len() > MAX_FAQ_ENTRIES {
        return Err(RuleError::Invalid(format!(
            "faq.entries may hold at most {MAX_FAQ_ENTRIES} entries"
        )));
    }
    if let Some(fallback) = &faq.fallback {
        FAQ_FALLBACK.check(fallback)?;
    }
    let fallback = faq.fallback.as_deref().map(text::trim).unwrap_or_default();
    if faq.entries.is_empty() && fallback.is_empty() {
        return Err(invalid("faq needs at least one entry or a fallback answer"));
    }
    for (i, entry) in faq.entries.iter().enumerate() {
        if entry.keywords.is_empty() || entry.keywords.len() > MAX_FAQ_KEYWORDS {
            return Err(RuleError::Invalid(format!(
                "faq.entries[{i}].keywords must hold 1 to {MAX_FAQ_KEYWORDS} keywords"
            )));
        }
        for keyword in &entry.keywords {
            FAQ_KEYWORD.check(keyword)?;
        }
        FAQ_ANSWER.check(&entry.answer)?;
    }
    Ok(())
}

fn clean_faq(faq: FaqSettings) -> FaqSettings {
    FaqSettings {
        entries: faq
            .entries
            .into_iter()
            .map(|e| FaqEntry {
                keywords: e
                    .keywords
                    .iter()
                    .map(|k| text::trim(k).to_owned())
                    .collect(),
                answer: text::trim(&e.answer).to_owned(),
            })
            .collect(),
        fallback: faq
            .fallback
            .map(|f| text::trim(&f).to_owned())
            .filter(|f| !f.is_empty()),
    }
}

/// Whether agents may call `ip` without `AGENT_URL_ALLOW_PRIVATE`: not loopback, private,
/// link-local, shared (CGNAT), unspecified, multicast or documentation space, in either family
/// (an IPv4 address written as IPv6 counts as itself).
pub fn is_public_address(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_address(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stated_url_pattern_takes_exactly_the_urls_the_policy_takes() {
        for allow_loopback_http in [false, true] {
            let urls = UrlPolicy {
                allow_loopback_http,
            };
            let stated = regex::Regex::new(urls.url_pattern()).unwrap();
            for url in [
                "https://hooks.example/in",
                "https://10.0.0.1:8443/v1?x=1",
                "http://127.0.0.1:9000/in",
                "http://localhost/v1",
                "http://hooks.example/in",
                "https://user:pw@hooks.example/",
            ] {
                assert_eq!(
                    stated.is_match(url),
                    http_url(&WEBHOOK_URL, url, urls).is_ok(),
                    "{url} with {urls:?}"
                );
            }
            assert_eq!(
                stated.is_match("http://127.0.0.1:9000/in"),
                allow_loopback_http
            );
        }
    }

    fn openai(api_key: Option<&str>) -> ResponderInput {
        ResponderInput::Openai {
            openai: OpenAiInput {
                base_url: "https://llm.example/v1/".into(),
                model: "gpt-4o-mini".into(),
                api_key: api_key.map(Into::into),
                system_prompt: None,
                history_messages: None,
            },
        }
    }

    #[test]
    fn openai_needs_a_key_on_creation_and_keeps_it_on_update() {
        assert!(openai(None).validate(None, UrlPolicy::default()).is_err());
        let created = openai(Some("sk-123"))
            .validate(None, UrlPolicy::default())
            .unwrap();
        assert_eq!(created.secret, SecretChange::Set("sk-123".into()));
        let Responder::Openai { openai: settings } = &created.settings else {
            panic!("kind")
        };
        assert_eq!(settings.base_url, "https://llm.example/v1");
        assert_eq!(settings.history_messages, 10);
        let updated = openai(None)
            .validate(Some(&created.settings), UrlPolicy::default())
            .unwrap();
        assert_eq!(updated.secret, SecretChange::Keep);
    }

    #[test]
    fn switching_kind_needs_the_new_kinds_secret_and_faq_clears_it() {
        let created = openai(Some("sk-123"))
            .validate(None, UrlPolicy::default())
            .unwrap();
        let to_webhook = ResponderInput::Webhook {
            webhook: WebhookInput {
                url: "https://hooks.example/a".into(),
                secret: None,
            },
        };
        assert!(to_webhook
            .validate(Some(&created.settings), UrlPolicy::default())
            .is_err());
        let to_faq = ResponderInput::Faq {
            faq: FaqSettings {
                entries: vec![],
                fallback: Some("Hi".into()),
            },
        };
        assert_eq!(
            to_faq
                .validate(Some(&created.settings), UrlPolicy::default())
                .unwrap()
                .secret,
            SecretChange::Clear
        );
    }

    #[test]
    fn changed_fields_name_what_changed_and_a_secret_only_by_name() {
        let policy = UrlPolicy::default();
        let created = openai(Some("sk-123")).validate(None, policy).unwrap();
        let same = openai(None)
            .validate(Some(&created.settings), policy)
            .unwrap();
        assert!(same.changed_fields(&created.settings).is_empty());
        let mut input = openai(Some("sk-456"));
        if let ResponderInput::Openai { openai } = &mut input {
            openai.model = "gpt-4o".into();
        }
        let new_key = input.validate(Some(&created.settings), policy).unwrap();
        let changed = new_key.changed_fields(&created.settings);
        assert_eq!(
            changed,
            ["responder.openai.model", "responder.openai.api_key"]
        );
        assert!(!format!("{changed:?}").contains("sk-456"));
        let to_faq = ResponderInput::Faq {
            faq: FaqSettings {
                entries: vec![],
                fallback: Some("Hi".into()),
            },
        };
        let faq = to_faq.validate(Some(&created.settings), policy).unwrap();
        assert_eq!(
            faq.changed_fields(&created.settings),
            [
                "responder.kind",
                "responder.faq.entries",
                "responder.faq.fallback",
                "responder.openai.api_key"
            ]
        );
    }

    #[test]
    fn webhook_urls_must_be_http_and_secrets_long_enough() {
        let hook = |url: &str, secret: &str| ResponderInput::Webhook {
            webhook: WebhookInput {
                url: url.into(),
                secret: Some(secret.into()),
            },
        };
        assert!(hook("ftp://x.example", "0123456789abcdef")
            .validate(None, UrlPolicy::default())
            .is_err());
        assert!(hook("not a url", "0123456789abcdef")
            .validate(None, UrlPolicy::default())
            .is_err());
        assert!(hook("https://x.example/hook", "short")
            .validate(None, UrlPolicy::default())
            .is_err());
        assert!(hook("https://x.example/hook", "0123456789abcdef")
            .validate(None, UrlPolicy::default())
            .is_ok());
    }

    #[test]
    fn faq_entries_need_keywords_and_answers() {
        let faq = |keywords: Vec<&str>, answer: &str| ResponderInput::Faq {
            faq: FaqSettings {
                entries: vec![FaqEntry {
                    keywords: keywords.into_iter().map(Into::into).collect(),
                    answer: answer.into(),
                }],
                fallback: None,
            },
        };
        assert!(faq(vec![], "a")
            .validate(None, UrlPolicy::default())
            .is_err());
        assert!(faq(vec![" "], "a")
            .validate(None, UrlPolicy::default())
            .is_err());
        assert!(faq(vec!["hours"], "")
            .validate(None, UrlPolicy::default())
            .is_err());
        assert!(faq(vec!["hours"], "9 to 5")
            .validate(None, UrlPolicy::default())
            .is_ok());
        let empty = ResponderInput::Faq {
            faq: FaqSettings {
                entries: vec![],
                fallback: None,
            },
        };
        assert!(empty.validate(None, UrlPolicy::default()).is_err());
    }

    #[test]
    fn only_public_addresses_are_callable_by_default() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public_address(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "2606:2800:220:1::1",
            "::ffff:93.184.216.34",
        ] {
            assert!(is_public_address(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn urls_are_https_and_loopback_http_needs_development_mode() {
        let hook = |url: &str| ResponderInput::Webhook {
            webhook: WebhookInput {
                url: url.into(),
                secret: Some("0123456789abcdef".into()),
            },
        };
        let dev = UrlPolicy {
            allow_loopback_http: true,
        };
        assert!(hook("https://hooks.example/in")
            .validate(None, UrlPolicy::default())
            .is_ok());
        assert!(hook("http://127.0.0.1:9000/in")
            .validate(None, UrlPolicy::default())
            .is_err());
        assert!(hook("http://127.0.0.1:9000/in").validate(None, dev).is_ok());
        assert!(hook("http://hooks.example/in").validate(None, dev).is_err());
    }

    #[test]
    fn a_stored_key_never_follows_a_new_origin() {
        let created = openai(Some("sk-123"))
            .validate(None, UrlPolicy::default())
            .unwrap();
        let moved = ResponderInput::Openai {
            openai: OpenAiInput {
                base_url: "https://other-llm.example/v1".into(),
                model: "m".into(),
                api_key: None,
                system_prompt: None,
                history_messages: None,
            },
        };
        assert_eq!(
            moved
                .clone()
                .validate(Some(&created.settings), UrlPolicy::default())
                .unwrap_err(),
            RuleError::SecretRequired {
                field: "openai.api_key"
            }
        );
        // Same origin, another path: the key stays.
        let same = ResponderInput::Openai {
            openai: OpenAiInput {
                base_url: "https://llm.example/v2".into(),
                ..match moved {
                    ResponderInput::Openai { openai } => openai,
                    _ => unreachable!(),
                }
            },
        };
        assert_eq!(
            same.validate(Some(&created.settings), UrlPolicy::default())
                .unwrap()
                .secret,
            SecretChange::Keep
        );
    }

    #[test]
    fn debug_output_never_shows_a_secret() {
        let input = openai(Some("sk-live-debug-1234"));
        assert!(!format!("{input:?}").contains("sk-live-debug-1234"));
        let valid = input.validate(None, UrlPolicy::default()).unwrap();
        assert!(!format!("{valid:?}").contains("sk-live-debug-1234"));
        let hook = WebhookInput {
            url: "https://x.example/hook".into(),
            secret: Some("whsec-0123456789abcdef".into()),
        };
        assert!(!format!("{hook:?}").contains("whsec"));
    }

    #[test]
    fn the_shown_responder_never_carries_a_secret() {
        let created = openai(Some("sk-secret-value"))
            .validate(None, UrlPolicy::default())
            .unwrap();
        let json = serde_json::to_string(&created.settings).unwrap();
        assert!(!json.contains("sk-secret-value"));
        assert!(json.contains("\"api_key_set\":true"));
        assert!(json.contains("\"kind\":\"openai\""));
    }
}
