//! The rules for texts the API accepts, each written once: the server checks a value with it and
//! the OpenAPI document declares the same pattern and lengths (`api::contract`), so the frontend's
//! tools and the server never disagree. Patterns use only what ECMA-262, Python and Rust regexes
//! read alike (explicit classes, anchors, quantifiers); lengths count Unicode scalar values, as
//! JSON Schema's `minLength`/`maxLength` do.

use std::sync::OnceLock;

use regex::Regex;

use super::RuleError;

/// One line of visible text: no control characters, at least one character that is not space.
pub const LINE_PATTERN: &str = concat!(
    r"^[^\u0000-\u001F\u007F-\u009F]*",
    r"[^\u0000-\u001F\u007F-\u009F\u0020\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\uFEFF]",
    r"[^\u0000-\u001F\u007F-\u009F]*$"
);
/// The characters of the Basic Multilingual Plane that show nothing, as a regex class's body: the
/// invisible format characters and the other default-ignorable ones ([`NAME_PATTERN`]).
macro_rules! shows_nothing {
    () => {
        r"\u00AD\u034F\u0600-\u0605\u061C\u06DD\u070F\u0890\u0891\u08E2\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u206F\u3164\uFE00-\uFE0D\uFEFF\uFFA0\uFFF0-\uFFFB"
    };
}
/// A name people pick from a list: one line of visible text, so two names cannot look alike. It
/// holds no invisible format character (soft hyphen, zero-width and direction marks, word joiners,
/// BOM, the Arabic marks of that class) and no other character of the Basic Multilingual Plane that
/// shows nothing (the combining grapheme joiner, the Hangul and halfwidth fillers, the Khmer
/// inherent vowels, the Mongolian variation selectors, variation selectors 1 to 14, U+FFF0 to
/// U+FFFB); and it has a visible character, which none of those, a space or the braille blank is.
/// The emoji presentation selectors (U+FE0E, U+FE0F) stay, as do the invisible characters past the
/// Basic Multilingual Plane (the tag characters of flag sequences), which no pattern that
/// ECMA-262, Python and Rust read alike can name: a name's key ignores them ([`ignored_in_keys`]).
pub const NAME_PATTERN: &str = concat!(
    r"^[^\u0000-\u001F\u007F-\u009F",
    shows_nothing!(),
    r"]*[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u2800\u3000\uFE0E\uFE0F",
    shows_nothing!(),
    r"][^\u0000-\u001F\u007F-\u009F",
    shows_nothing!(),
    r"]*$"
);

/// The invisible characters a name may hold ([`NAME_PATTERN`]) that its key ignores, so that two
/// names differing only by them are the same name: the emoji presentation selectors and the
/// default-ignorable characters past the Basic Multilingual Plane (tags, variation selectors 17 to
/// 256, shorthand format controls, musical symbol format controls).
pub fn ignored_in_keys(c: char) -> bool {
    matches!(c, '\u{FE0E}' | '\u{FE0F}' | '\u{1BCA0}'..='\u{1BCA3}' | '\u{1D173}'..='\u{1D17A}' | '\u{E0000}'..='\u{E0FFF}')
}

/// Text of any length of lines: no control characters but tab, line feed and carriage return.
pub const TEXT_PATTERN: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";
/// Such text with at least one character that is not space.
pub const NOT_BLANK_TEXT_PATTERN: &str = concat!(
    r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*",
    r"[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000\uFEFF]",
    r"[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$"
);
/// A search box's text: one line, possibly blank (blank means no search).
pub const SEARCH_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";
/// An agent URL's pattern, with `$loopback_http` as a second scheme-and-host alternative.
macro_rules! agent_url_pattern {
    ($loopback_http:literal) => {
        concat!(
            r"^(https://(",
            r"(([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?",
            r"|((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9]))",
            r")",
            $loopback_http,
            r")",
            r"(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?",
            r"(/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?",
            r"(\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?$"
        )
    };
}
/// An `https` URL with a host name or IPv4 address (or plain `http` to a loopback address, which
/// the server takes in development mode only), an optional port, path and query, and nothing a
/// URL parser could read two ways (no user info, no fragment, no `%`).
pub const HTTP_URL_PATTERN: &str = agent_url_pattern!(
    r"|http://(localhost|127(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3})"
);
/// [`HTTP_URL_PATTERN`] without plain `http`: the URLs a server outside development mode takes.
pub const HTTPS_URL_PATTERN: &str = agent_url_pattern!("");
/// Meta's upper-case words (`CLOUD_API`, `ON_PREMISE`, ...).
pub const META_WORD_PATTERN: &str = r"^[A-Z_]+$";
/// Meta's ids of accounts and numbers.
pub const META_ID_PATTERN: &str = r"^[A-Za-z0-9_-]+$";

/// A rule for one text field.
pub struct TextRule {
    /// The field's name in messages (`name`, `openai.model`, ...).
    pub field: &'static str,
    pub pattern: Option<&'static str>,
    pub min_chars: usize,
    pub max_chars: usize,
    compiled: OnceLock<Option<Regex>>,
}

impl TextRule {
    pub const fn new(
        field: &'static str,
        pattern: Option<&'static str>,
        min_chars: usize,
        max_chars: usize,
    ) -> Self {
        TextRule {
            field,
            pattern,
            min_chars,
            max_chars,
            compiled: OnceLock::new(),
        }
    }

    /// Checks `value` against the rule.
    pub fn check(&self, value: &str) -> Result<(), RuleError> {
        let chars = value.chars().count();
        if chars < self.min_chars || chars > self.max_chars {
            return Err(RuleError::Invalid(format!(
                "`{}` must be {} to {} characters long",
                self.field, self.min_chars, self.max_chars
            )));
        }
        if let Some(regex) = self.regex() {
            if !regex.is_match(value) {
                return Err(RuleError::Invalid(format!(
                    "`{}` {}",
                    self.field,
                    self.what_pattern_means()
                )));
            }
        }
        Ok(())
    }

    fn regex(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| self.pattern.and_then(|p| Regex::new(p).ok()))
            .as_ref()
    }

    fn what_pattern_means(&self) -> &'static str {
        match self.pattern {
            Some(LINE_PATTERN) => "must be one line of visible text (no control characters)",
            Some(NAME_PATTERN) => {
                "must be one line of visible text, without control characters or characters that show nothing"
            }
            Some(TEXT_PATTERN) => {
                "must not contain control characters (tab and line breaks are fine)"
            }
            Some(NOT_BLANK_TEXT_PATTERN) => {
                "must not be blank or contain control characters (tab and line breaks are fine)"
            }
            Some(SEARCH_PATTERN) => "must be one line without control characters",
            Some(HTTP_URL_PATTERN) => {
                "must be an https:// URL with a host name or IPv4 address (no user, fragment or \
                 percent-escapes); plain http:// is for loopback addresses in development mode"
            }
            Some(META_WORD_PATTERN) => {
                "must be upper-case letters and underscores, as Meta writes it"
            }
            Some(META_ID_PATTERN) => "must be the id Meta gave (letters, digits, `_` and `-`)",
            Some(IDEMPOTENCY_KEY_PATTERN) => {
                "must be visible ASCII without spaces (a UUID will do)"
            }
            Some(MESSAGE_TO_PATTERN) => {
                "must be an E.164 phone number (`+`, the country code and the number, e.g. \
                 +16505551234) or a business-scoped user id (US.13491208655302741918)"
            }
            Some(TEMPLATE_NAME_PATTERN) => {
                "must be a template's name as Meta keeps it: lowercase letters, digits and \
                 underscores"
            }
            Some(LANGUAGE_CODE_PATTERN) => "must be a language code such as `en` or `en_US`",
            Some(WHATSAPP_USER_PATTERN) => {
                "must be an E.164 phone number (+15551234567) or a business-scoped user id \
                 (US.13491208655302741918)"
            }
            _ => "is not in the expected form",
        }
    }
}

/// Text from outside that the API did not validate (Meta's payloads, an agent's answer) as every
/// database can store it: NUL, which PostgreSQL refuses in text, becomes U+FFFD.
pub fn storable(text: &str) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.to_owned()
    }
}

/// The text without leading and trailing white space (the same characters the patterns call space).
pub fn trim(text: &str) -> &str {
    text.trim_matches(|c: char| is_space(c))
}

fn is_space(c: char) -> bool {
    matches!(c, '\u{0009}'..='\u{000D}' | '\u{0020}' | '\u{0085}' | '\u{00A0}' | '\u{1680}'
        | '\u{2000}'..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}' | '\u{FEFF}')
}

pub static AGENT_NAME: TextRule = TextRule::new("name", Some(NAME_PATTERN), 1, 100);
pub static AGENT_DESCRIPTION: TextRule = TextRule::new("description", Some(TEXT_PATTERN), 0, 2000);
pub static FAQ_KEYWORD: TextRule =
    TextRule::new("faq.entries[].keywords[]", Some(LINE_PATTERN), 1, 200);
pub static FAQ_ANSWER: TextRule = TextRule::new(
    "faq.entries[].answer",
    Some(NOT_BLANK_TEXT_PATTERN),
    1,
    4096,
);
pub static FAQ_FALLBACK: TextRule = TextRule::new("faq.fallback", Some(TEXT_PATTERN), 0, 4096);
pub static OPENAI_BASE_URL: TextRule =
    TextRule::new("openai.base_url", Some(HTTP_URL_PATTERN), 1, 2048);
pub static OPENAI_MODEL: TextRule = TextRule::new("openai.model", Some(LINE_PATTERN), 1, 200);
pub static OPENAI_API_KEY: TextRule = TextRule::new("openai.api_key", Some(LINE_PATTERN), 1, 1024);
pub static OPENAI_SYSTEM_PROMPT: TextRule =
    TextRule::new("openai.system_prompt", Some(TEXT_PATTERN), 0, 20_000);
pub static WEBHOOK_URL: TextRule = TextRule::new("webhook.url", Some(HTTP_URL_PATTERN), 1, 2048);
pub static WEBHOOK_SECRET: TextRule = TextRule::new("webhook.secret", Some(LINE_PATTERN), 16, 1024);
pub static SIGNUP_CODE: TextRule = TextRule::new("code", Some(LINE_PATTERN), 1, 4096);
pub static ACCESS_TOKEN: TextRule = TextRule::new("access_token", Some(LINE_PATTERN), 1, 4096);
pub static WABA_ID: TextRule = TextRule::new("waba_id", Some(META_ID_PATTERN), 1, 64);
pub static META_PHONE_NUMBER_ID: TextRule =
    TextRule::new("phone_number_id", Some(META_ID_PATTERN), 1, 64);
pub static PLATFORM_TYPE_FILTER: TextRule =
    TextRule::new("platform_type", Some(META_WORD_PATTERN), 1, 64);
/// A WhatsApp user: an E.164 phone number (the `+` optional) or a business-scoped user id (BSUID,
/// `CC.` and up to 128 letters and digits).
pub const WHATSAPP_USER_PATTERN: &str = r"^(\+?[1-9][0-9]{5,14}|[A-Z]{2}\.[A-Za-z0-9]{1,128})$";
pub static SANDBOX_FROM: TextRule = TextRule::new("from", Some(WHATSAPP_USER_PATTERN), 6, 131);
/// A text message's body: Meta takes up to 4096 characters (reference §3).
pub static MESSAGE_TEXT: TextRule = TextRule::new("text", Some(NOT_BLANK_TEXT_PATTERN), 1, 4096);
/// Whom an agent's message goes to: `+`, the country code and the number (E.164), or a
/// business-scoped user id (`CC.` and up to 128 letters and digits, a parent BSUID's part after).
pub const MESSAGE_TO_PATTERN: &str =
    r"^(\+[1-9][0-9]{7,14}|[A-Z]{2}\.[A-Za-z0-9]{1,128}(\.[A-Za-z0-9]{1,128})?)$";
pub static MESSAGE_TO: TextRule = TextRule::new("to", Some(MESSAGE_TO_PATTERN), 4, 260);
/// Meta's template names: lowercase letters, digits and underscores.
pub const TEMPLATE_NAME_PATTERN: &str = r"^[a-z0-9_]+$";
pub static TEMPLATE_NAME: TextRule =
    TextRule::new("template.name", Some(TEMPLATE_NAME_PATTERN), 1, 512);
/// The `type` of a template component: `header`, `body`, `button`, `carousel`, ...
pub static TEMPLATE_COMPONENT_TYPE: TextRule = TextRule::new(
    "template.components[].type",
    Some(TEMPLATE_NAME_PATTERN),
    1,
    64,
);
/// A template's language code: `en`, `en_US`, `zh_HK`, `fil`, ...
pub const LANGUAGE_CODE_PATTERN: &str = r"^[a-z]{2,3}(_[A-Za-z0-9]{2,4})?$";
pub static TEMPLATE_LANGUAGE: TextRule =
    TextRule::new("template.language", Some(LANGUAGE_CODE_PATTERN), 2, 8);
/// The `Idempotency-Key` header: visible ASCII a client makes up (a UUID, say), as HTTP carries it.
pub const IDEMPOTENCY_KEY_PATTERN: &str = "^[!-~]+$";
pub static IDEMPOTENCY_KEY: TextRule =
    TextRule::new("Idempotency-Key", Some(IDEMPOTENCY_KEY_PATTERN), 1, 255);
pub static SEARCH: TextRule = TextRule::new("q", Some(SEARCH_PATTERN), 0, 200);
/// The `Last-Event-ID` header: the `id` of a live-stream event, a whole number.
pub const EVENT_ID_PATTERN: &str = "^[0-9]+$";
pub static LAST_EVENT_ID: TextRule = TextRule::new("Last-Event-ID", Some(EVENT_ID_PATTERN), 1, 18);

#[cfg(test)]
mod tests {
    use super::*;

    /// Control characters (Unicode `Cc`), as a class body.
    const CONTROLS: &str = r"\u0000-\u001F\u007F-\u009F";

    #[test]
    fn the_patterns_compile_and_spell_the_shared_classes() {
        for pattern in [
            LINE_PATTERN,
            NAME_PATTERN,
            TEXT_PATTERN,
            NOT_BLANK_TEXT_PATTERN,
            SEARCH_PATTERN,
            HTTP_URL_PATTERN,
            HTTPS_URL_PATTERN,
            META_WORD_PATTERN,
            META_ID_PATTERN,
            MESSAGE_TO_PATTERN,
            TEMPLATE_NAME_PATTERN,
            LANGUAGE_CODE_PATTERN,
        ] {
            Regex::new(pattern).unwrap();
        }
        assert!(LINE_PATTERN.contains(CONTROLS));
        assert!(SEARCH_PATTERN.contains(CONTROLS));
    }

    #[test]
    fn a_line_needs_something_visible_and_no_control_characters() {
        assert!(AGENT_NAME.check("Support bot").is_ok());
        assert!(AGENT_NAME.check("  Ärger-Bot ").is_ok());
        for bad in [
            "",
            "   ",
            "\u{FEFF}",
            "tab\there",
            "line\n",
            &"x".repeat(101),
        ] {
            assert!(AGENT_NAME.check(bad).is_err(), "{bad:?}");
        }
        assert_eq!(trim("\u{3000} Support \u{FEFF}"), "Support");
    }

    #[test]
    fn names_refuse_invisible_characters_that_would_make_two_look_alike() {
        for bad in [
            "Support\u{200B}",
            "\u{00AD}Support",
            "Sup\u{202E}port",
            "Support\u{2060}",
            "\u{FEFF}Support",
            "Sup\u{034F}port",
            "Sup\u{3164}port",
            "\u{3164}",
            "\u{115F}\u{1160}",
            "Support\u{FFA0}",
            "Sup\u{17B4}port",
            "Support\u{180B}",
            "Support\u{FE00}",
            "\u{FE0F}",
            "\u{2800}",
            "Support\u{08E2}",
        ] {
            assert!(AGENT_NAME.check(bad).is_err(), "{bad:?}");
        }
        for good in [
            "Ärger-Bot 🤖",
            "Care ❤\u{FE0F}",
            "\u{1F3F4}\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F} Support",
        ] {
            assert!(AGENT_NAME.check(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn no_text_takes_a_nul_or_other_control_characters() {
        for rule in [
            &AGENT_NAME,
            &AGENT_DESCRIPTION,
            &FAQ_KEYWORD,
            &FAQ_ANSWER,
            &FAQ_FALLBACK,
            &OPENAI_MODEL,
            &OPENAI_API_KEY,
            &OPENAI_SYSTEM_PROMPT,
            &WEBHOOK_SECRET,
            &SIGNUP_CODE,
            &ACCESS_TOKEN,
            &SEARCH,
            &WABA_ID,
            &META_PHONE_NUMBER_ID,
            &PLATFORM_TYPE_FILTER,
        ] {
            for bad in [
                "a\u{0000}bcdefghijklmnopq",
                "abcdefghijklmnop\u{001B}q",
                "abcdefghijklmnopq\u{0085}",
            ] {
                assert!(rule.check(bad).is_err(), "{} took {bad:?}", rule.field);
            }
        }
        assert!(AGENT_DESCRIPTION
            .check("two\nlines\twith a tab\r\n")
            .is_ok());
        assert!(FAQ_ANSWER.check("We open at 9.\nWe close at 5.").is_ok());
        assert!(FAQ_ANSWER.check(" \n\t ").is_err());
        assert!(SEARCH.check("").is_ok());
        assert!(SEARCH.check(&"q".repeat(201)).is_err());
    }

    #[test]
    fn urls_are_http_with_a_host_and_always_parse() {
        for good in [
            "https://api.openai.com/v1",
            "http://127.0.0.1:8080/hook?x=1",
            "https://LLM.example:443/v1/chat",
            "http://localhost",
            "https://123.example.com/a/b",
            "https://10.1.2.3/internal",
        ] {
            assert!(WEBHOOK_URL.check(good).is_ok(), "{good}");
            assert!(url::Url::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "http://x.example/hook",
            "http://10.0.0.1/hook",
            "ftp://x.example",
            "https://user:pw@x.example",
            "https://x.example/#frag",
            "https://1.2.3.4.5/",
            "https://x.example:70000",
            "https://x.example/%zz",
            "not a url",
            "https://",
        ] {
            assert!(WEBHOOK_URL.check(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert!(AGENT_NAME.check(&"ü".repeat(100)).is_ok());
        assert!(PLATFORM_TYPE_FILTER.check("CLOUD_API").is_ok());
        assert!(PLATFORM_TYPE_FILTER.check(" CLOUD_API").is_err());
        assert!(PLATFORM_TYPE_FILTER.check(&"A".repeat(65)).is_err());
    }
}
