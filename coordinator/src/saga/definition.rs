//! The shape of a saga definition. Definitions are static data so that the status API and
//! the docs show exactly what the engine runs.

use serde::Serialize;

/// The commands the coordinator accepts, one saga type each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SagaType {
    DeletePatient,
    BlockTherapist,
    UnblockTherapist,
    RecordPatientContact,
}

impl SagaType {
    pub const ALL: [SagaType; 4] = [
        Self::DeletePatient,
        Self::BlockTherapist,
        Self::UnblockTherapist,
        Self::RecordPatientContact,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::DeletePatient => "delete-patient",
            Self::BlockTherapist => "block-therapist",
            Self::UnblockTherapist => "unblock-therapist",
            Self::RecordPatientContact => "record-patient-contact",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// The kind of entity a saga acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Patient,
    Therapist,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Therapist => "therapist",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "patient" => Some(Self::Patient),
            "therapist" => Some(Self::Therapist),
            _ => None,
        }
    }
}

/// The services the coordinator calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Participant {
    Patient,
    Therapist,
    Matching,
}

impl Participant {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Therapist => "therapist",
            Self::Matching => "matching",
        }
    }
}

/// Source of the value of a request body field.
#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueSource {
    /// The field of the command's payload with this name.
    Payload(&'static str),
    /// This fixed text.
    Text(&'static str),
}

/// One field of a participant request body.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct BodyField {
    pub name: &'static str,
    pub value: ValueSource,
}

/// One HTTP call: method, path with `{payload_field}` placeholders, and body fields.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CallTemplate {
    pub method: &'static str,
    pub path: &'static str,
    pub body: &'static [BodyField],
    /// Fields a 2xx response must contain. A response without them breaks the contract and
    /// parks the saga instead of guessing.
    pub required_answer_fields: &'static [&'static str],
}

/// Meaning of a 404 response to a forward call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotFoundRule {
    /// A definite refusal like any other 4xx.
    Refused,
    /// The call deletes the resource: after an attempt with unknown outcome, 404 means an
    /// earlier attempt deleted it, so the step is done.
    DoneAfterUnknownAttempt,
    /// The entity is gone, so the saga has nothing to do and ends as skipped.
    SkipSaga,
}

/// One step of a saga.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StepDefinition {
    pub name: &'static str,
    pub participant: Participant,
    pub forward: CallTemplate,
    /// The call that undoes `forward`. It gets `{"forward_idempotency_key": ...}`.
    pub compensation: Option<CallTemplate>,
    pub on_not_found: NotFoundRule,
}

/// A saga type: its steps in order and the entity it locks.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SagaDefinition {
    pub saga_type: SagaType,
    pub entity: EntityKind,
    /// Whether the saga takes the entity's lock, so that no other locking saga runs on the
    /// same entity at the same time.
    pub locks_entity: bool,
    pub steps: &'static [StepDefinition],
    /// Index of the pivot step. A definite failure before it compensates the steps before;
    /// at or after it, the saga only goes forward.
    pub pivot: usize,
}

impl SagaDefinition {
    /// Returns the step at `index`, which the engine only requests within bounds.
    pub fn step(&self, index: usize) -> &'static StepDefinition {
        &self.steps[index]
    }
}
