//! Keyset (cursor) pagination. A cursor is the sort key and id of the last row a page showed,
//! so the next page is a range scan on an index, whatever the table's size.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::RuleError;

/// Default page size when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page a client may ask for.
pub const MAX_LIMIT: i64 = 200;

/// Where a page starts: after the row with this sort key and id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor {
    #[serde(rename = "k")]
    pub key: String,
    #[serde(rename = "i")]
    pub id: String,
}

impl Cursor {
    /// An opaque, URL-safe token.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    pub fn decode(token: &str) -> Result<Self, RuleError> {
        let invalid = || RuleError::Invalid("`cursor` is not a cursor this API returned".into());
        let bytes = URL_SAFE_NO_PAD
            .decode(token.trim())
            .map_err(|_| invalid())?;
        serde_json::from_slice(&bytes).map_err(|_| invalid())
    }
}

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    pub after: Option<Cursor>,
}

impl PageRequest {
    pub fn new(limit: Option<i64>, cursor: Option<&str>) -> Result<Self, RuleError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(RuleError::Invalid(format!(
                "`limit` must be between 1 and {MAX_LIMIT}"
            )));
        }
        let after = match cursor {
            Some(token) if !token.is_empty() => Some(Cursor::decode(token)?),
            _ => None,
        };
        Ok(PageRequest { limit, after })
    }

    /// For lists newest first: the cursor's key read as the RFC 3339 time of the last row shown,
    /// and its id as the row's id.
    pub fn time_after<I: std::str::FromStr>(
        &self,
    ) -> Result<Option<(chrono::NaiveDateTime, I)>, RuleError> {
        let invalid = || RuleError::Invalid("`cursor` is not a cursor this API returned".into());
        match &self.after {
            None => Ok(None),
            Some(cursor) => {
                let at =
                    chrono::DateTime::parse_from_rfc3339(&cursor.key).map_err(|_| invalid())?;
                let id = cursor.id.parse().map_err(|_| invalid())?;
                Ok(Some((at.naive_utc(), id)))
            }
        }
    }

    /// The cursor of a row in a newest-first list.
    pub fn time_cursor(at: chrono::NaiveDateTime, id: impl std::fmt::Display) -> Cursor {
        Cursor {
            key: at
                .and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            id: id.to_string(),
        }
    }

    /// Rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.limit + 1
    }

    /// Cuts the extra row off and returns the next cursor if there was one.
    pub fn finish<T>(
        &self,
        mut rows: Vec<T>,
        key_of: impl Fn(&T) -> Cursor,
    ) -> (Vec<T>, Option<String>) {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        if rows.len() > limit {
            rows.truncate(limit);
            let next = rows.last().map(|row| key_of(row).encode());
            (rows, next)
        } else {
            (rows, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips_and_garbage_is_rejected() {
        let cursor = Cursor {
            key: "15555550100".into(),
            id: "abc".into(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        assert!(Cursor::decode("not a cursor!").is_err());
        assert!(Cursor::decode(&URL_SAFE_NO_PAD.encode(b"{\"x\":1}")).is_err());
    }

    #[test]
    fn limit_defaults_to_50_and_stays_within_1_to_200() {
        assert_eq!(PageRequest::new(None, None).unwrap().limit, 50);
        assert!(PageRequest::new(Some(0), None).is_err());
        assert!(PageRequest::new(Some(201), None).is_err());
        assert_eq!(PageRequest::new(Some(200), None).unwrap().limit, 200);
    }

    #[test]
    fn finish_returns_a_cursor_only_when_more_rows_follow() {
        let page = PageRequest::new(Some(2), None).unwrap();
        let key = |n: &i32| Cursor {
            key: n.to_string(),
            id: n.to_string(),
        };
        let (rows, next) = page.finish(vec![1, 2, 3], key);
        assert_eq!(rows, vec![1, 2]);
        assert_eq!(Cursor::decode(&next.unwrap()).unwrap().key, "2");
        let (rows, next) = page.finish(vec![1, 2], key);
        assert_eq!((rows.len(), next), (2, None));
    }
}
