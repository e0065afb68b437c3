//! `unblock-therapist`: lift the exclusions that blocking added in matching, then set the
//! therapist aktiv.

use super::block_therapist::CASCADE_ANSWER;
use super::definition::*;

pub static DEFINITION: SagaDefinition = SagaDefinition {
    saga_type: SagaType::UnblockTherapist,
    entity: EntityKind::Therapist,
    locks_entity: true,
    steps: &[
        StepDefinition {
            name: "lift-ausschluesse",
            participant: Participant::Matching,
            forward: CallTemplate {
                method: "POST",
                path: "/api/matching/cascade/therapist-unblocked",
                body: &[BodyField {
                    name: "therapist_id",
                    value: ValueSource::Payload("therapist_id"),
                }],
                required_answer_fields: CASCADE_ANSWER,
            },
            compensation: Some(CallTemplate {
                method: "POST",
                path: "/api/matching/cascade/therapist-unblocked/compensate",
                body: &[],
                required_answer_fields: &["forward_call"],
            }),
            on_not_found: NotFoundRule::Refused,
        },
        StepDefinition {
            name: "set-aktiv",
            participant: Participant::Therapist,
            forward: CallTemplate {
                method: "PATCH",
                path: "/api/therapists/{therapist_id}",
                body: &[BodyField {
                    name: "status",
                    value: ValueSource::Text("aktiv"),
                }],
                required_answer_fields: &["status"],
            },
            compensation: None,
            on_not_found: NotFoundRule::Refused,
        },
    ],
    pivot: 1,
};
