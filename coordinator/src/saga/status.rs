//! Statuses of sagas and steps, and their text form in the store and the API.

use serde::Serialize;

/// Lifecycle status of a saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SagaStatus {
    /// Steps are going forward.
    Running,
    /// A step failed for good; completed steps are being undone in reverse order.
    Compensating,
    /// Every step succeeded.
    Completed,
    /// Every step that may have changed something was undone.
    Compensated,
    /// There was nothing to do, for example because the patient no longer exists.
    Skipped,
    /// Retries are spent or a response broke the contract. Still retried with backoff unless
    /// parked, and shown until an operator or a later attempt resolves it.
    NeedsAttention,
}

/// Direction in which an unfinished saga moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Forward,
    Backward,
}

/// Status of a step's forward call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    Pending,
    /// Recorded before the call; a step found in this state after a restart is sent again
    /// with the same idempotency key.
    Started,
    Succeeded,
    Failed,
}

/// Status of a step's compensation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompensationStatus {
    /// The step has no compensating call.
    None,
    /// Not needed (yet).
    NotNeeded,
    Started,
    Succeeded,
    /// Not sent because the forward call never reached the participant.
    Skipped,
}

macro_rules! text_form {
    ($type:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $type {
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

text_form!(SagaStatus {
    Running => "running",
    Compensating => "compensating",
    Completed => "completed",
    Compensated => "compensated",
    Skipped => "skipped",
    NeedsAttention => "needs_attention",
});

text_form!(Phase {
    Forward => "forward",
    Backward => "backward",
});

text_form!(StepStatus {
    Pending => "pending",
    Started => "started",
    Succeeded => "succeeded",
    Failed => "failed",
});

text_form!(CompensationStatus {
    None => "none",
    NotNeeded => "not_needed",
    Started => "started",
    Succeeded => "succeeded",
    Skipped => "skipped",
});

impl SagaStatus {
    /// Returns true for the statuses a saga never leaves.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Compensated | Self::Skipped)
    }

    /// Statuses of sagas that are not finished, as stored.
    pub const UNFINISHED: [&'static str; 3] = ["running", "compensating", "needs_attention"];
}
