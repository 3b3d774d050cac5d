//! The query language of event sets: `q` holds full-text terms and
//! `field:value` filters, `from`/`to` are RFC 3339 times or times relative
//! to now (`-15m`, `-2h`, `-7d`, `now`); and the patterns the OpenAPI
//! document gives for both, which are exactly what is understood.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use regex::Regex;

/// The characters `q` is split at: those Rust takes for whitespace
/// (Unicode's `White_Space`), spelled out so that every regex dialect
/// reads the same class.
macro_rules! white_space {
    () => {
        r"\t\n\x0B\f\r \x85\xA0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000"
    };
}

/// A field name of a `field:value` filter: names of letters, digits, `_`
/// and `-`, joined by `.` (a path into nested objects).
macro_rules! field {
    () => {
        r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*"
    };
}

/// One word of `q`: a term without `:`, a word ending in its first `:`
/// (a term), one starting with `:` (a term), or a filter `field:value`.
macro_rules! word {
    () => {
        concat!(
            "([^",
            white_space!(),
            ":]+",
            "|[^",
            white_space!(),
            ":]*:",
            "|:[^",
            white_space!(),
            "]+",
            "|",
            field!(),
            ":[^",
            white_space!(),
            "]+)"
        )
    };
}

/// `q` as the document gives it: words between whitespace, where a word
/// holding `:` after a non-empty part and before a non-empty part is a
/// filter whose field is a field name.
pub const QUERY_PATTERN: &str = concat!(
    "^[",
    white_space!(),
    "]*(",
    word!(),
    "([",
    white_space!(),
    "]+",
    word!(),
    ")*)?[",
    white_space!(),
    "]*$"
);

/// A date of the proleptic Gregorian calendar, `YYYY-MM-DD`, that exists:
/// the 29th of February only in leap years.
macro_rules! date {
    () => {
        concat!(
            "([0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])",
            "|[0-9]{4}-(0[13-9]|1[0-2])-(29|30)",
            "|[0-9]{4}-(0[13578]|1[02])-31",
            "|([0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)-02-29)"
        )
    };
}

/// `from` and `to` as the document gives them and the server takes them:
/// `now`, a time relative to now (`-` and up to nine digits of seconds,
/// minutes, hours or days), or an RFC 3339 time (with a leap second, any
/// number of fractional digits, and `T`, `t` or a space between date and
/// time, as RFC 3339 allows).
pub const TIME_PATTERN: &str = concat!(
    "^(now|-[0-9]{1,9}[smhd]|",
    date!(),
    "[Tt ]([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]+)?",
    "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9]))$"
);

static TIME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(TIME_PATTERN).expect("the time pattern compiles"));

/// A parsed query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// Terms every event must contain (full text).
    pub terms: Vec<String>,
    /// `field:value` pairs every event must have; the field may be a dotted
    /// path into nested objects.
    pub fields: Vec<(String, String)>,
    /// Events at or after this time (ms since the epoch).
    pub from_ms: Option<i64>,
    /// Events before this time (ms since the epoch).
    pub to_ms: Option<i64>,
}

/// Why a query is not understood.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum QueryError {
    /// A time that is neither RFC 3339 nor relative.
    #[error(
        "`{0}` is not a time: use RFC 3339 (2026-11-23T10:00:00Z) or a time relative to now (-15m, -2h, -7d, now)"
    )]
    Time(String),
    /// A field name outside the safe charset.
    #[error("`{0}` is not a field name: letters, digits, `_`, `-` and `.` between names")]
    Field(String),
}

/// Parses `q`, `from` and `to` at `now`.
pub fn parse(
    q: Option<&str>,
    from: Option<&str>,
    to: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Query, QueryError> {
    let mut query = Query::default();
    for word in q.unwrap_or_default().split_whitespace() {
        match word.split_once(':') {
            Some((field, value)) if !field.is_empty() && !value.is_empty() => {
                let valid = field.split('.').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
                });
                if !valid {
                    return Err(QueryError::Field(field.to_owned()));
                }
                query.fields.push((field.to_owned(), value.to_owned()));
            }
            // Control characters match nothing and would end the
            // full-text query early; they are left out.
            _ => {
                let term: String = word.chars().filter(|c| !c.is_control()).collect();
                if !term.is_empty() {
                    query.terms.push(term);
                }
            }
        }
    }
    query.from_ms = from.map(|text| time_ms(text, now)).transpose()?;
    query.to_ms = to.map(|text| time_ms(text, now)).transpose()?;
    Ok(query)
}

/// A time as ms since the epoch: one [`TIME_PATTERN`] matches.
pub fn time_ms(text: &str, now: DateTime<Utc>) -> Result<i64, QueryError> {
    let bad = || QueryError::Time(text.to_owned());
    if !TIME.is_match(text) {
        return Err(bad());
    }
    if text == "now" {
        return Ok(now.timestamp_millis());
    }
    if let Some(relative) = text.strip_prefix('-') {
        let (amount, unit) = relative.split_at(relative.len() - 1);
        let unit_ms = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => 86_400_000,
        };
        // Nine digits of days are far from overflowing.
        let amount: i64 = amount.parse().map_err(|_| bad())?;
        return Ok(now.timestamp_millis() - amount * unit_ms);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.timestamp_millis())
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use regex::Regex;

    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-23T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn terms_fields_and_times_are_told_apart() {
        let query = parse(
            Some("error host:worker1 disk  labels.zone:a"),
            Some("-15m"),
            Some("2026-11-23T11:59:00Z"),
            now(),
        )
        .unwrap();
        assert_eq!(query.terms, ["error", "disk"]);
        assert_eq!(
            query.fields,
            [
                ("host".to_owned(), "worker1".to_owned()),
                ("labels.zone".to_owned(), "a".to_owned())
            ]
        );
        assert_eq!(query.from_ms, Some(now().timestamp_millis() - 15 * 60_000));
        assert_eq!(query.to_ms, Some(now().timestamp_millis() - 60_000));
    }

    #[test]
    fn control_characters_are_left_out_of_terms() {
        let query = parse(Some("a\u{0}b \u{7}"), None, None, now()).unwrap();
        assert_eq!(query.terms, ["ab"]);
    }

    #[test]
    fn a_unit_of_several_bytes_or_a_time_out_of_range_is_refused() {
        // Found by `proptests::any_query_is_parsed_or_refused`: the unit was
        // split off at a byte, not a character (a panic), and a negative
        // amount could overflow the subtraction from now.
        for text in ["-5é", "-é", "--9223372036854775s"] {
            assert_eq!(time_ms(text, now()), Err(QueryError::Time(text.to_owned())));
        }
    }

    #[test]
    fn relative_times_are_a_dash_up_to_nine_digits_and_a_unit() {
        let ago = |text| time_ms(text, now()).map(|ms| now().timestamp_millis() - ms);
        assert_eq!(ago("now"), Ok(0));
        assert_eq!(ago("-0s"), Ok(0));
        assert_eq!(ago("-15m"), Ok(15 * 60_000));
        assert_eq!(ago("-999999999d"), Ok(999_999_999 * 86_400_000));
        for bad in [
            "",
            "-",
            "-m",
            "-1234567890s",
            "-+5m",
            "--5m",
            "-5w",
            " now",
            "-5m ",
            "NOW",
        ] {
            assert_eq!(ago(bad), Err(QueryError::Time(bad.to_owned())), "{bad:?}");
        }
    }

    /// RFC 3339 times near every edge of their fields.
    fn times() -> Vec<String> {
        let mut times = Vec::new();
        for year in ["0000", "1900", "2000", "2023", "2024", "2100", "9999"] {
            for month in 0..=13 {
                for day in [0, 1, 28, 29, 30, 31, 32] {
                    times.push(format!("{year}-{month:02}-{day:02}T12:00:00Z"));
                }
            }
        }
        for clock in [
            "00:00:00", "23:59:59", "23:59:60", "24:00:00", "12:60:00", "12:00:61",
        ] {
            times.push(format!("2024-02-29T{clock}Z"));
        }
        for offset in [
            "z",
            "+00:00",
            "-23:59",
            "+24:00",
            "+12:60",
            "+1200",
            "",
            "\u{2212}05:00",
        ] {
            times.push(format!("2024-01-01T00:00:00{offset}"));
        }
        for fraction in [".", ".1", ".123456789", ".1234567890123", ".x"] {
            times.push(format!("2024-01-01T00:00:00{fraction}Z"));
        }
        for separator in ["t", " ", "_", "  "] {
            times.push(format!("2024-01-01{separator}00:00:00Z"));
        }
        times.extend(
            [
                "2024-1-01T00:00:00Z",
                "24-01-01T00:00:00Z",
                "2024-01-01T00:00:00Z ",
            ]
            .map(String::from),
        );
        times
    }

    #[test]
    fn rfc3339_times_are_exactly_those_of_the_pattern() {
        let pattern = Regex::new(TIME_PATTERN).unwrap();
        for time in times() {
            let parses = DateTime::parse_from_rfc3339(&time).is_ok() && time.is_ascii();
            assert_eq!(pattern.is_match(&time), parses, "{time:?}");
            assert_eq!(time_ms(&time, now()).is_ok(), parses, "{time:?}");
        }
    }

    #[test]
    fn queries_are_exactly_those_of_the_pattern() {
        let pattern = Regex::new(QUERY_PATTERN).unwrap();
        let words = [
            "",
            "error",
            "host:worker1",
            "labels.zone:a",
            "a'b:c",
            "a'b:",
            ":c",
            ":",
            "::",
            "a:b:c",
            "a.:b",
            ".a:b",
            "a..b:c",
            "a-_9:\u{1}",
            "é:x",
            "x:é",
            "a\u{85}b:c",
            "a\u{feff}b:c",
            "a\tb:c",
            "a\u{3000}:b",
            "\u{0}",
        ];
        for first in words {
            for second in words {
                for gap in [
                    " ", "\t", "\u{85}", "\u{a0}", "\u{2029}", "\u{feff}", "\n  ",
                ] {
                    let q = format!("{gap}{first}{gap}{second}");
                    let parses = parse(Some(&q), None, None, now()).is_ok();
                    assert_eq!(pattern.is_match(&q), parses, "{q:?}");
                }
            }
        }
    }

    #[test]
    fn bad_times_and_fields_are_named() {
        let err = parse(None, Some("yesterday"), None, now()).unwrap_err();
        assert!(err.to_string().contains("`yesterday`"));
        assert!(parse(None, Some("-5w"), None, now()).is_err());
        let err = parse(Some("a'b:c"), None, None, now()).unwrap_err();
        assert_eq!(err, QueryError::Field("a'b".to_owned()));
    }
}
