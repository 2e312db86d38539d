//! Keyset (cursor) pagination. A cursor is the sort key and id of the last row a page showed,
//! so the next page is a range scan on an index, whatever the table's size.

use chrono::NaiveDateTime;

use super::text::TextRule;
use super::RuleError;

/// Default page size when `limit` is not given.
pub const DEFAULT_LIMIT: i64 = 50;
/// Largest page a client may ask for.
pub const MAX_LIMIT: i64 = 200;

/// A cursor of a list ordered by text: the hex of the last row's key, a dot, its id (32 hex digits).
/// No byte of the key is below 0x20: no stored key holds a control character (every text the API
/// takes is refused one), and PostgreSQL refuses NUL in any text it is given.
pub const TEXT_CURSOR_PATTERN: &str = r"^([2-9a-f][0-9a-f]){0,1024}\.[0-9a-f]{32}$";
/// A cursor of a list ordered by time: the last row's time in microseconds (hex), a dot, its id.
pub const TIME_CURSOR_PATTERN: &str = r"^[0-9a-f]{1,15}\.[0-9a-f]{32}$";

static TEXT_CURSOR: TextRule = TextRule::new("cursor", Some(TEXT_CURSOR_PATTERN), 33, 2081);
static TIME_CURSOR: TextRule = TextRule::new("cursor", Some(TIME_CURSOR_PATTERN), 34, 48);

/// How a list is ordered, which decides its cursors' form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorKind {
    Text,
    Time,
}

impl CursorKind {
    /// The pattern every cursor of such a list matches; any string matching it is a position.
    pub fn pattern(self) -> &'static str {
        match self {
            CursorKind::Text => TEXT_CURSOR_PATTERN,
            CursorKind::Time => TIME_CURSOR_PATTERN,
        }
    }
}

/// A position in a list: after the row with this sort key and id. Any well-formed cursor is a
/// position (a list simply continues after it), so the document can state exactly which cursors
/// the server takes; the server only ever hands out cursors of rows it showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The sort key: text (read leniently as UTF-8), or microseconds since 1970 for time lists.
    pub key: String,
    /// Our id of the row, hyphenated as stored.
    pub id: String,
    kind: CursorKind,
}

impl Cursor {
    /// The cursor of a row in a list ordered by text.
    pub fn text(key: impl Into<String>, id: impl std::fmt::Display) -> Self {
        Cursor {
            key: key.into(),
            id: id.to_string(),
            kind: CursorKind::Text,
        }
    }

    /// The cursor of a row in a list ordered by time.
    pub fn time(at: NaiveDateTime, id: impl std::fmt::Display) -> Self {
        Cursor {
            key: at.and_utc().timestamp_micros().max(0).to_string(),
            id: id.to_string(),
            kind: CursorKind::Time,
        }
    }

    /// The opaque token a client passes back.
    pub fn encode(&self) -> String {
        let key = match self.kind {
            CursorKind::Text => self.key.bytes().map(|b| format!("{b:02x}")).collect(),
            CursorKind::Time => format!("{:x}", self.key.parse::<u64>().unwrap_or(0)),
        };
        format!("{key}.{}", self.id.replace('-', ""))
    }

    /// Reads a token of the list's kind.
    pub fn decode(token: &str, kind: CursorKind) -> Result<Self, RuleError> {
        match kind {
            CursorKind::Text => TEXT_CURSOR.check(token)?,
            CursorKind::Time => TIME_CURSOR.check(token)?,
        }
        let invalid = || RuleError::Invalid("`cursor` is not a cursor this API returned".into());
        let (key, id) = token.split_once('.').ok_or_else(invalid)?;
        let id = uuid::Uuid::parse_str(id)
            .map_err(|_| invalid())?
            .to_string();
        let key = match kind {
            CursorKind::Text => {
                let bytes: Vec<u8> = (0..key.len())
                    .step_by(2)
                    .filter_map(|i| u8::from_str_radix(key.get(i..i + 2)?, 16).ok())
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            CursorKind::Time => u64::from_str_radix(key, 16)
                .map_err(|_| invalid())?
                .to_string(),
        };
        Ok(Cursor { key, id, kind })
    }
}

/// A validated page request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: i64,
    pub after: Option<Cursor>,
}

impl PageRequest {
    pub fn new(
        limit: Option<i64>,
        cursor: Option<&str>,
        kind: CursorKind,
    ) -> Result<Self, RuleError> {
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(RuleError::Invalid(format!(
                "`limit` must be between 1 and {MAX_LIMIT}"
            )));
        }
        let after = cursor
            .map(|token| Cursor::decode(token, kind))
            .transpose()?;
        Ok(PageRequest { limit, after })
    }

    /// For lists newest first: where the page starts, as the time and id of the last row shown.
    pub fn time_after<I: std::str::FromStr>(
        &self,
    ) -> Result<Option<(NaiveDateTime, I)>, RuleError> {
        let invalid = || RuleError::Invalid("`cursor` is not a cursor this API returned".into());
        match &self.after {
            None => Ok(None),
            Some(cursor) => {
                let micros: i64 = cursor.key.parse().map_err(|_| invalid())?;
                let at = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
                let id = cursor.id.parse().map_err(|_| invalid())?;
                Ok(Some((at.naive_utc(), id)))
            }
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

    const ID: &str = "6f1c2a34-0b5e-4c7d-9e8f-0a1b2c3d4e5f";

    #[test]
    fn cursors_round_trip_and_malformed_ones_are_rejected() {
        let cursor = Cursor::text("jaspers märket", ID);
        let token = cursor.encode();
        assert_eq!(Cursor::decode(&token, CursorKind::Text).unwrap(), cursor);
        let at = chrono::DateTime::from_timestamp_micros(1_764_150_000_123_456)
            .unwrap()
            .naive_utc();
        let timed = Cursor::time(at, ID);
        let page = PageRequest::new(Some(5), Some(&timed.encode()), CursorKind::Time).unwrap();
        assert_eq!(page.time_after::<uuid::Uuid>().unwrap().unwrap().0, at);
        for bad in [
            "not a cursor!",
            "abc.123",
            "zz.6f1c2a340b5e4c7d9e8f0a1b2c3d4e5f",
            "",
            // Control characters, NUL first: no stored key holds one.
            "3100.6f1c2a340b5e4c7d9e8f0a1b2c3d4e5f",
            "1f.6f1c2a340b5e4c7d9e8f0a1b2c3d4e5f",
        ] {
            assert!(Cursor::decode(bad, CursorKind::Text).is_err(), "{bad}");
        }
        assert!(Cursor::decode(&token, CursorKind::Time).is_err() || token.len() <= 48);
    }

    #[test]
    fn any_well_formed_cursor_is_a_position() {
        // Bytes that are not UTF-8 still name a position between keys.
        let odd = "ff20e9.6f1c2a340b5e4c7d9e8f0a1b2c3d4e5f";
        let cursor = Cursor::decode(odd, CursorKind::Text).unwrap();
        assert_eq!(cursor.id, ID);
        let far = "fffffffffffffff.6f1c2a340b5e4c7d9e8f0a1b2c3d4e5f";
        let page = PageRequest::new(None, Some(far), CursorKind::Time).unwrap();
        assert!(page.time_after::<uuid::Uuid>().unwrap().is_some());
    }

    #[test]
    fn limit_defaults_to_50_and_stays_within_1_to_200() {
        let page = |limit| PageRequest::new(limit, None, CursorKind::Text);
        assert_eq!(page(None).unwrap().limit, 50);
        assert!(page(Some(0)).is_err());
        assert!(page(Some(201)).is_err());
        assert_eq!(page(Some(200)).unwrap().limit, 200);
    }

    #[test]
    fn finish_returns_a_cursor_only_when_more_rows_follow() {
        let page = PageRequest::new(Some(2), None, CursorKind::Text).unwrap();
        let key = |n: &i32| Cursor::text(n.to_string(), ID);
        let (rows, next) = page.finish(vec![1, 2, 3], key);
        assert_eq!(rows, vec![1, 2]);
        let next = Cursor::decode(&next.unwrap(), CursorKind::Text).unwrap();
        assert_eq!(next.key, "2");
        let (rows, next) = page.finish(vec![1, 2], key);
        assert_eq!((rows.len(), next), (2, None));
    }
}
