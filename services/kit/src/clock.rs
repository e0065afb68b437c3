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

/// Parses a calendar date in `YYYY-MM-DD` form.
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}
