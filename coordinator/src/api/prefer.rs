//! The RFC 7240 `Prefer` header of commands: `respond-async` responds once the saga is
//! committed, and `wait=N` waits up to N seconds for the outcome.

use std::time::Duration;

use axum::http::HeaderMap;

/// Maximum wait a client may request.
const MAX_WAIT: Duration = Duration::from_secs(60);

/// How long a command waits for its saga's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitPreference {
    pub wait: Duration,
    /// The preference to echo in `Preference-Applied`, if one was applied.
    pub applied: Option<AppliedPreference>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppliedPreference {
    RespondAsync,
    Wait(u64),
}

impl AppliedPreference {
    pub fn header_value(self) -> String {
        match self {
            Self::RespondAsync => "respond-async".to_owned(),
            Self::Wait(seconds) => format!("wait={seconds}"),
        }
    }
}

/// Reads the `Prefer` headers. Unknown preferences are ignored, as RFC 7240 requires.
pub fn parse(headers: &HeaderMap, default_wait: Duration) -> WaitPreference {
    let mut respond_async = false;
    let mut wait_seconds: Option<u64> = None;
    for value in headers.get_all("prefer") {
        let Ok(text) = value.to_str() else { continue };
        for preference in text.split(',') {
            let preference = preference.split(';').next().unwrap_or("").trim();
            let (name, value) = match preference.split_once('=') {
                Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
                None => (preference, None),
            };
            if name.eq_ignore_ascii_case("respond-async") {
                respond_async = true;
            } else if name.eq_ignore_ascii_case("wait") {
                wait_seconds = value.and_then(|value| value.parse().ok());
            }
        }
    }

    if respond_async {
        return WaitPreference {
            wait: Duration::ZERO,
            applied: Some(AppliedPreference::RespondAsync),
        };
    }
    match wait_seconds {
        Some(seconds) => {
            let wait = Duration::from_secs(seconds).min(MAX_WAIT);
            WaitPreference {
                wait,
                applied: Some(AppliedPreference::Wait(wait.as_secs())),
            }
        }
        None => WaitPreference {
            wait: default_wait,
            applied: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("prefer", HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn respond_async_wins_over_wait() {
        let preference = parse(&headers("wait=10, respond-async"), Duration::from_secs(5));

        assert_eq!(preference.wait, Duration::ZERO);
        assert_eq!(preference.applied, Some(AppliedPreference::RespondAsync));
    }

    #[test]
    fn wait_is_capped() {
        let preference = parse(&headers("wait=3600"), Duration::from_secs(5));

        assert_eq!(preference.wait, MAX_WAIT);
    }

    #[test]
    fn no_header_uses_the_default() {
        let preference = parse(&HeaderMap::new(), Duration::from_secs(5));

        assert_eq!(preference.wait, Duration::from_secs(5));
        assert_eq!(preference.applied, None);
    }
}
