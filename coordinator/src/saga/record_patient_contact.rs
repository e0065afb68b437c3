//! `record-patient-contact`: move the patient's letzter_kontakt forward. It has one step and
//! nothing to undo; it is retried until the patient service responds, and skipped when the
//! patient no longer exists.

use super::definition::*;

pub static DEFINITION: SagaDefinition = SagaDefinition {
    saga_type: SagaType::RecordPatientContact,
    entity: EntityKind::Patient,
    locks_entity: false,
    steps: &[StepDefinition {
        name: "update-letzter-kontakt",
        participant: Participant::Patient,
        forward: CallTemplate {
            method: "PATCH",
            path: "/api/patients/{patient_id}/last-contact",
            body: &[BodyField {
                name: "date",
                value: ValueSource::Payload("date"),
            }],
            required_answer_fields: &["letzter_kontakt"],
        },
        compensation: None,
        on_not_found: NotFoundRule::SkipSaga,
    }],
    pivot: 0,
};
