//! `block-therapist`: cancel the therapist's unsent inquiries and exclude them from the
//! affected searches in matching, then set the therapist gesperrt.

use super::definition::*;

pub(super) const CASCADE_ANSWER: &[&str] = &[
    "platzsuchen_abgebrochen",
    "anfragen_storniert",
    "anfragen_geaendert",
    "ausschluesse_hinzugefuegt",
    "ausschluesse_aufgehoben",
];

pub static DEFINITION: SagaDefinition = SagaDefinition {
    saga_type: SagaType::BlockTherapist,
    entity: EntityKind::Therapist,
    locks_entity: true,
    steps: &[
        StepDefinition {
            name: "cancel-therapeutenanfragen",
            participant: Participant::Matching,
            forward: CallTemplate {
                method: "POST",
                path: "/api/matching/cascade/therapist-blocked",
                body: &[
                    BodyField {
                        name: "therapist_id",
                        value: ValueSource::Payload("therapist_id"),
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
                path: "/api/matching/cascade/therapist-blocked/compensate",
                body: &[],
                required_answer_fields: &["forward_call"],
            }),
            on_not_found: NotFoundRule::Refused,
        },
        StepDefinition {
            name: "set-gesperrt",
            participant: Participant::Therapist,
            forward: CallTemplate {
                method: "PATCH",
                path: "/api/therapists/{therapist_id}",
                body: &[
                    BodyField {
                        name: "status",
                        value: ValueSource::Text("gesperrt"),
                    },
                    BodyField {
                        name: "sperrgrund",
                        value: ValueSource::Payload("reason"),
                    },
                ],
                required_answer_fields: &["status"],
            },
            compensation: None,
            on_not_found: NotFoundRule::Refused,
        },
    ],
    pivot: 1,
};
