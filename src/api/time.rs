//! Timestamps in responses, written the way chrono's serde writes a `DateTime<Utc>` (RFC 3339, `Z`,
//! the fraction in 3, 6 or 9 digits when there is one), without its general formatting machinery:
//! the numbers table writes five per row.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Serializer;

/// `serialize_with` for a `DateTime<Utc>`.
pub fn rfc3339<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 32];
    match write(at, &mut buf) {
        Some(len) => serializer.serialize_str(std::str::from_utf8(&buf[..len]).unwrap_or_default()),
        None => serializer.collect_str(&at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)),
    }
}

/// `serialize_with` for an `Option<DateTime<Utc>>`.
pub fn rfc3339_opt<S: Serializer>(
    at: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => rfc3339(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// Writes `value` in `digits` digits at `buf[at..]`; returns the end.
fn put(buf: &mut [u8; 32], at: usize, value: u32, digits: usize) -> usize {
    let mut rest = value;
    for i in (at..at + digits).rev() {
        buf[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    at + digits
}

/// Writes `at` into `buf`; `None` for years outside 0..=9999 (left to chrono).
fn write(at: &DateTime<Utc>, buf: &mut [u8; 32]) -> Option<usize> {
    let year = u32::try_from(at.year()).ok().filter(|y| *y <= 9999)?;
    // A leap second is carried in the nanoseconds (up to 1,999,999,999): second 60.
    let (second, nanos) = match at.nanosecond() {
        n if n >= 1_000_000_000 => (at.second() + 1, n - 1_000_000_000),
        n => (at.second(), n),
    };
    let mut end = 0;
    for (value, digits, then) in [
        (year, 4, b'-'),
        (at.month(), 2, b'-'),
        (at.day(), 2, b'T'),
        (at.hour(), 2, b':'),
        (at.minute(), 2, b':'),
    ] {
        end = put(buf, end, value, digits);
        buf[end] = then;
        end += 1;
    }
    end = put(buf, end, second, 2);
    if nanos != 0 {
        buf[end] = b'.';
        end += 1;
        end = if nanos % 1_000_000 == 0 {
            put(buf, end, nanos / 1_000_000, 3)
        } else if nanos % 1_000 == 0 {
            put(buf, end, nanos / 1_000, 6)
        } else {
            put(buf, end, nanos, 9)
        };
    }
    buf[end] = b'Z';
    Some(end + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct Ours(#[serde(serialize_with = "rfc3339")] DateTime<Utc>);

    #[test]
    fn written_exactly_as_chrono_writes_it() {
        let base = DateTime::from_timestamp(1_795_000_000, 0).unwrap();
        let times = [
            base,
            base + chrono::TimeDelta::milliseconds(120),
            base + chrono::TimeDelta::microseconds(123_456),
            base + chrono::TimeDelta::microseconds(1),
            base + chrono::TimeDelta::nanoseconds(7),
            DateTime::from_timestamp(0, 0).unwrap(),
            DateTime::from_timestamp(253_402_300_799, 999_999_999).unwrap(),
            DateTime::from_timestamp(1_483_228_799, 1_500_000_000).unwrap(),
        ];
        for at in times {
            assert_eq!(
                serde_json::to_string(&Ours(at)).unwrap(),
                serde_json::to_string(&at).unwrap()
            );
        }
    }
}
