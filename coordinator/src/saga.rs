//! Saga types as data: each one an ordered list of steps with their participant calls and
//! compensations, plus the statuses a saga and a step move through.

mod block_therapist;
mod definition;
mod delete_patient;
mod record_patient_contact;
mod status;
mod unblock_therapist;

pub use definition::{
    BodyField, CallTemplate, EntityKind, NotFoundRule, Participant, SagaDefinition, SagaType,
    StepDefinition, ValueSource,
};
pub use status::{CompensationStatus, Phase, SagaStatus, StepStatus};

/// Every saga type the coordinator runs.
pub static DEFINITIONS: [&SagaDefinition; 4] = [
    &delete_patient::DEFINITION,
    &block_therapist::DEFINITION,
    &unblock_therapist::DEFINITION,
    &record_patient_contact::DEFINITION,
];

/// Returns the definition of a saga type.
pub fn definition(saga_type: SagaType) -> &'static SagaDefinition {
    match saga_type {
        SagaType::DeletePatient => &delete_patient::DEFINITION,
        SagaType::BlockTherapist => &block_therapist::DEFINITION,
        SagaType::UnblockTherapist => &unblock_therapist::DEFINITION,
        SagaType::RecordPatientContact => &record_patient_contact::DEFINITION,
    }
}
