//! `delete-patient`: cancel the patient's searches in matching, then delete the patient.
//! The delete is the pivot: once it succeeds there is nothing left to undo.

use super::definition::*;

const CASCADE_ANSWER: &[&str] = &[
    "platzsuchen_abgebrochen",
    "anfragen_storniert",
    "anfragen_geaendert",
    "ausschluesse_hinzugefuegt",
    "ausschluesse_aufgehoben",
];

pub static DEFINITION: SagaDefinition = SagaDefinition {
    saga_type: SagaType::DeletePatient,
    entity: EntityKind::Patient,
    locks_entity: true,
    steps: &[
        StepDefinition {
            name: "cancel-platzsuchen",
            participant: Participant::Matching,
            forward: CallTemplate {
                method: "POST",
                path: "/api/matching/cascade/patient-deleted",
                body: &[
                    BodyField {
                        name: "patient_id",
                        value: ValueSource::Payload("patient_id"),
                    },
                    BodyField {
                        name: "reason",
                        value: ValueSource::Payload("reason"),
                    },
                ],
                required_answer_fields: CASCADE_ANSWER,
            },
            compensation: Some(CallTemplate {
                method: "POST",
                path: "/api/matching/cascade/patient-deleted/compensate",
                body: &[],
                required_answer_fields: &["forward_call"],
            }),
            on_not_found: NotFoundRule::Refused,
        },
        StepDefinition {
            name: "delete-patient",
            participant: Participant::Patient,
            forward: CallTemplate {
                method: "DELETE",
                path: "/api/patients/{patient_id}",
                body: &[],
                required_answer_fields: &["deleted"],
            },
            compensation: None,
            on_not_found: NotFoundRule::DoneAfterUnknownAttempt,
        },
    ],
    pivot: 1,
};
