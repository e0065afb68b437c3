//! Status changes of a therapist. Blocking (`gesperrt`) and unblocking must go through the
//! coordinator, because its sagas first update the therapist's requests and the patients'
//! searches. A participant call of such a saga carries an `X-Saga-Id` header.

use kit::ApiError;

use crate::therapists::TherapistStatus;

/// Maximum length of `sperrgrund`, in characters.
pub const MAX_SPERRGRUND_CHARS: usize = 1000;

/// The coordinator command that blocks a therapist.
pub const BLOCK_COMMAND: &str = "POST /api/v1/commands/block-therapist";

/// The coordinator command that unblocks a therapist.
pub const UNBLOCK_COMMAND: &str = "POST /api/v1/commands/unblock-therapist";

/// A status change that the request may not make.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusChangeError {
    #[error(
        "blocking therapist {id} must also update their requests and the patients' searches, \
         so it needs a saga: use {BLOCK_COMMAND} on the coordinator"
    )]
    BlockOutsideSaga { id: i64 },
    #[error(
        "unblocking therapist {id} must also update the patients' searches, so it needs a \
         saga: use {UNBLOCK_COMMAND} on the coordinator"
    )]
    UnblockOutsideSaga { id: i64 },
    #[error(
        "a therapist cannot be created with status gesperrt: create them, then use \
         {BLOCK_COMMAND} on the coordinator"
    )]
    CreateBlocked,
    #[error("sperrgrund is required and must not be empty when the status becomes gesperrt")]
    MissingSperrgrund,
    #[error("sperrgrund must be at most {MAX_SPERRGRUND_CHARS} characters, got {0}")]
    SperrgrundTooLong(usize),
    #[error("sperrgrund can only be set together with \"status\": \"gesperrt\"")]
    SperrgrundWithoutBlock,
}

impl From<StatusChangeError> for ApiError {
    fn from(error: StatusChangeError) -> Self {
        let detail = error.to_string();
        match error {
            StatusChangeError::BlockOutsideSaga { .. }
            | StatusChangeError::UnblockOutsideSaga { .. }
            | StatusChangeError::CreateBlocked => ApiError::conflict(detail),
            StatusChangeError::MissingSperrgrund => ApiError::bad_request("sperrgrund", detail),
            StatusChangeError::SperrgrundTooLong(_) | StatusChangeError::SperrgrundWithoutBlock => {
                ApiError::unprocessable("sperrgrund", detail)
            }
        }
    }
}

/// Effect of a request on a therapist's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusChange {
    /// The status stays as it is, also when the request names the current one.
    Unchanged,
    /// The therapist becomes gesperrt with this reason.
    Block { sperrgrund: String },
    /// The therapist leaves gesperrt for `to`; the block's reason and time are cleared.
    Unblock { to: TherapistStatus },
    /// A change between aktiv and inaktiv.
    Set { to: TherapistStatus },
}

impl StatusChange {
    /// Decides what a request for `requested` does to therapist `id` with status `current`.
    /// `in_saga` is true when the request carries an `X-Saga-Id` header.
    pub fn plan(
        id: i64,
        current: TherapistStatus,
        requested: Option<TherapistStatus>,
        sperrgrund: Option<&str>,
        in_saga: bool,
    ) -> Result<Self, StatusChangeError> {
        use TherapistStatus::Gesperrt;

        let Some(requested) = requested else {
            return match sperrgrund {
                Some(_) => Err(StatusChangeError::SperrgrundWithoutBlock),
                None => Ok(Self::Unchanged),
            };
        };

        if requested == Gesperrt {
            if !in_saga {
                return Err(StatusChangeError::BlockOutsideSaga { id });
            }
            let sperrgrund = checked_sperrgrund(sperrgrund)?;
            // A repeated block keeps the first block's reason and time.
            return Ok(if current == Gesperrt {
                Self::Unchanged
            } else {
                Self::Block { sperrgrund }
            });
        }

        if sperrgrund.is_some() {
            return Err(StatusChangeError::SperrgrundWithoutBlock);
        }
        if current == Gesperrt {
            return match in_saga {
                true => Ok(Self::Unblock { to: requested }),
                false => Err(StatusChangeError::UnblockOutsideSaga { id }),
            };
        }
        Ok(if current == requested {
            Self::Unchanged
        } else {
            Self::Set { to: requested }
        })
    }

    /// Returns the new status, when the status changes.
    pub fn new_status(&self) -> Option<TherapistStatus> {
        match self {
            Self::Unchanged => None,
            Self::Block { .. } => Some(TherapistStatus::Gesperrt),
            Self::Unblock { to } | Self::Set { to } => Some(*to),
        }
    }
}

fn checked_sperrgrund(sperrgrund: Option<&str>) -> Result<String, StatusChangeError> {
    let trimmed = sperrgrund.map(str::trim).unwrap_or_default();
    if trimmed.is_empty() {
        return Err(StatusChangeError::MissingSperrgrund);
    }
    let chars = trimmed.chars().count();
    if chars > MAX_SPERRGRUND_CHARS {
        return Err(StatusChangeError::SperrgrundTooLong(chars));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use TherapistStatus::{Aktiv, Gesperrt, Inaktiv};

    #[test]
    fn transitions_follow_the_table() {
        let block = |reason: &str| {
            Ok(StatusChange::Block {
                sperrgrund: reason.to_owned(),
            })
        };
        // (current, requested, sperrgrund, in saga, expected)
        let cases = [
            (Aktiv, None, None, false, Ok(StatusChange::Unchanged)),
            (Gesperrt, None, None, false, Ok(StatusChange::Unchanged)),
            (
                Aktiv,
                Some(Inaktiv),
                None,
                false,
                Ok(StatusChange::Set { to: Inaktiv }),
            ),
            (
                Inaktiv,
                Some(Aktiv),
                None,
                true,
                Ok(StatusChange::Set { to: Aktiv }),
            ),
            (Aktiv, Some(Aktiv), None, false, Ok(StatusChange::Unchanged)),
            (
                Aktiv,
                Some(Gesperrt),
                Some("x"),
                false,
                Err(StatusChangeError::BlockOutsideSaga { id: 1 }),
            ),
            (Aktiv, Some(Gesperrt), Some(" x "), true, block("x")),
            (Inaktiv, Some(Gesperrt), Some("x"), true, block("x")),
            (
                Aktiv,
                Some(Gesperrt),
                None,
                true,
                Err(StatusChangeError::MissingSperrgrund),
            ),
            (
                Aktiv,
                Some(Gesperrt),
                Some("  "),
                true,
                Err(StatusChangeError::MissingSperrgrund),
            ),
            (
                Gesperrt,
                Some(Gesperrt),
                Some("x"),
                true,
                Ok(StatusChange::Unchanged),
            ),
            (
                Gesperrt,
                Some(Gesperrt),
                Some("x"),
                false,
                Err(StatusChangeError::BlockOutsideSaga { id: 1 }),
            ),
            (
                Gesperrt,
                Some(Aktiv),
                None,
                false,
                Err(StatusChangeError::UnblockOutsideSaga { id: 1 }),
            ),
            (
                Gesperrt,
                Some(Aktiv),
                None,
                true,
                Ok(StatusChange::Unblock { to: Aktiv }),
            ),
            (
                Gesperrt,
                Some(Inaktiv),
                None,
                true,
                Ok(StatusChange::Unblock { to: Inaktiv }),
            ),
            (
                Aktiv,
                None,
                Some("x"),
                true,
                Err(StatusChangeError::SperrgrundWithoutBlock),
            ),
            (
                Gesperrt,
                Some(Aktiv),
                Some("x"),
                true,
                Err(StatusChangeError::SperrgrundWithoutBlock),
            ),
        ];

        for (current, requested, sperrgrund, in_saga, expected) in cases {
            let planned = StatusChange::plan(1, current, requested, sperrgrund, in_saga);

            assert_eq!(
                planned, expected,
                "{current:?} -> {requested:?}, sperrgrund {sperrgrund:?}, in saga {in_saga}"
            );
        }
    }

    #[test]
    fn each_refusal_maps_to_its_status() {
        let cases = [
            (StatusChangeError::BlockOutsideSaga { id: 1 }, 409),
            (StatusChangeError::UnblockOutsideSaga { id: 1 }, 409),
            (StatusChangeError::CreateBlocked, 409),
            (StatusChangeError::MissingSperrgrund, 400),
            (StatusChangeError::SperrgrundTooLong(1001), 422),
            (StatusChangeError::SperrgrundWithoutBlock, 422),
        ];

        for (error, status) in cases {
            let problem = ApiError::from(error.clone()).problem();

            assert_eq!(problem.status, status, "{error:?}");
        }
    }

    #[test]
    fn outside_saga_refusals_name_the_coordinator_command() {
        let block = StatusChangeError::BlockOutsideSaga { id: 3 }.to_string();
        let unblock = StatusChangeError::UnblockOutsideSaga { id: 3 }.to_string();

        assert!(block.contains(BLOCK_COMMAND), "{block}");
        assert!(unblock.contains(UNBLOCK_COMMAND), "{unblock}");
    }
}
