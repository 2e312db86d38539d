//! Meta's usage headers: how much of its rate limit an app has used on a business object
//! (reference §6). `X-Business-Use-Case-Usage` is `{"<object id>": [{"type", "call_count",
//! "total_cputime", "total_time", "estimated_time_to_regain_access"}]}`, percentages and minutes;
//! `X-App-Usage` is `{"call_count", "total_cputime", "total_time"}`. Where both apply the business
//! one wins. The `type` string for WhatsApp calls is unconfirmed, so every entry counts, whatever
//! its key or type; a bare entry or list without the id key is read too, and numbers may come as
//! strings.

use serde_json::Value;

pub const BUSINESS_USE_CASE_HEADER: &str = "x-business-use-case-usage";
pub const APP_USAGE_HEADER: &str = "x-app-usage";

/// What Meta reported about one object's usage with one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaUsage {
    /// The highest of the percentages reported (calls, CPU time, total time), 0 to 100 or more.
    pub percent: i64,
    /// Minutes until Meta lets calls through again, when it throttles now.
    pub regain_after_minutes: Option<i64>,
}

impl MetaUsage {
    /// Reads the two headers' values; `None` when neither says anything usable.
    pub fn from_headers(business: Option<&str>, app: Option<&str>) -> Option<Self> {
        business
            .and_then(|text| Self::from_business(&serde_json::from_str(text).ok()?))
            .or_else(|| {
                app.and_then(|text| Self::from_entries(&[serde_json::from_str(text).ok()?]))
            })
    }

    fn from_business(value: &Value) -> Option<Self> {
        let mut entries = Vec::new();
        let mut collect = |v: &Value| match v {
            Value::Array(items) => entries.extend(items.iter().cloned()),
            Value::Object(_) => entries.push(v.clone()),
            _ => {}
        };
        match value {
            // The documented shape keys entries by object id; a bare entry has the counts itself.
            Value::Object(map) if !is_entry(value) => map.values().for_each(&mut collect),
            other => collect(other),
        }
        Self::from_entries(&entries)
    }

    fn from_entries(entries: &[Value]) -> Option<Self> {
        let mut found = false;
        let mut percent = 0;
        let mut regain = None::<i64>;
        for entry in entries {
            for field in ["call_count", "total_cputime", "total_time"] {
                if let Some(p) = number(entry.get(field)) {
                    found = true;
                    percent = percent.max(p);
                }
            }
            if let Some(minutes) = number(entry.get("estimated_time_to_regain_access")) {
                found = true;
                if minutes > 0 {
                    regain = Some(regain.map_or(minutes, |r| r.max(minutes)));
                }
            }
        }
        found.then_some(MetaUsage {
            percent,
            regain_after_minutes: regain,
        })
    }
}

fn is_entry(value: &Value) -> bool {
    ["call_count", "total_cputime", "total_time"]
        .iter()
        .any(|field| value.get(field).is_some())
}

/// A whole non-negative number, sent as a number or as a string.
fn number(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f.ceil() as i64)),
        Value::String(s) => s.trim().parse::<f64>().ok().map(|f| f.ceil() as i64),
        _ => None,
    }
    .filter(|n| *n >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_business_header_gives_the_highest_share_and_the_wait() {
        let header = r#"{"102290129340398":[
            {"type":"whatsapp_business_management","call_count":28,"total_cputime":9,"total_time":31,"estimated_time_to_regain_access":0},
            {"type":"other","call_count":"40","total_cputime":1,"total_time":2,"estimated_time_to_regain_access":7}]}"#;
        assert_eq!(
            MetaUsage::from_headers(Some(header), None),
            Some(MetaUsage {
                percent: 40,
                regain_after_minutes: Some(7)
            })
        );
    }

    #[test]
    fn other_shapes_and_the_app_header_are_read_too() {
        let bare = r#"{"call_count":91,"total_cputime":3,"total_time":5}"#;
        let listed = r#"[{"call_count":12,"total_time":64}]"#;
        assert_eq!(
            MetaUsage::from_headers(Some(bare), None).map(|u| u.percent),
            Some(91)
        );
        assert_eq!(
            MetaUsage::from_headers(Some(listed), None).map(|u| u.percent),
            Some(64)
        );
        // The business header wins; the app's is read when it is alone.
        let app = r#"{"call_count":55,"total_cputime":0,"total_time":0}"#;
        assert_eq!(
            MetaUsage::from_headers(Some(bare), Some(app)).map(|u| u.percent),
            Some(91)
        );
        assert_eq!(
            MetaUsage::from_headers(None, Some(app)),
            Some(MetaUsage {
                percent: 55,
                regain_after_minutes: None
            })
        );
    }

    #[test]
    fn headers_that_say_nothing_usable_are_none() {
        for header in ["", "not json", "{}", "[]", r#"{"1":[{"type":"x"}]}"#, "42"] {
            assert_eq!(
                MetaUsage::from_headers(Some(header), None),
                None,
                "{header}"
            );
        }
        assert_eq!(MetaUsage::from_headers(None, None), None);
    }
}
