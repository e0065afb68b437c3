//! Timestamps and dates as the services store them: RFC 3339 text in UTC with microseconds,
//! so that text order is time order in PostgreSQL and SQLite alike.

use chrono::{NaiveDate, SecondsFormat, Utc};

/// Returns the current time as stored in every table.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Returns today's date in UTC as `YYYY-MM-DD`.
pub fn today() -> String {
    Utc::now().date_naive().format("%Y-%m-%d").to_string()
}

/// Parses a calendar date in exactly the `YYYY-MM-DD` form; chrono alone would also take
/// `2024-2-3` or a signed five-digit year.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let digits_at = |range: std::ops::Range<usize>| {
        text.get(range)
            .is_some_and(|part| part.bytes().all(|byte| byte.is_ascii_digit()))
    };
    let well_formed = text.len() == 10
        && digits_at(0..4)
        && digits_at(5..7)
        && digits_at(8..10)
        && text.as_bytes()[4] == b'-'
        && text.as_bytes()[7] == b'-';
    if !well_formed {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_date_takes_only_the_full_form() {
        assert!(parse_date("2024-02-03").is_some());
        assert!(parse_date("2024-2-3").is_none());
        assert!(parse_date("+99999-01-01").is_none());
        assert!(parse_date("2024-13-01").is_none());
        assert!(parse_date("2024-02-30").is_none());
    }
}
