-- Searches for a therapy place, their excluded therapists, the inquiries sent to therapists
-- for one or more searches, and the log of what each cascade changed.

CREATE TABLE platzsuchen (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    patient_id BIGINT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('aktiv', 'pausiert', 'erfolgreich', 'abgebrochen')),
    notizen TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX platzsuchen_patient_id ON platzsuchen (patient_id);

CREATE TABLE platzsuche_ausschluesse (
    platzsuche_id BIGINT NOT NULL REFERENCES platzsuchen (id) ON DELETE CASCADE,
    therapist_id BIGINT NOT NULL,
    ausgeschlossen_von TEXT NOT NULL
        CHECK (ausgeschlossen_von IN ('patient', 'personal', 'sperre')),
    grund TEXT,
    saga_id TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (platzsuche_id, therapist_id)
);
CREATE INDEX platzsuche_ausschluesse_therapist_id ON platzsuche_ausschluesse (therapist_id);

CREATE TABLE therapeutenanfragen (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    therapist_id BIGINT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('offen', 'gesendet', 'angenommen', 'abgelehnt', 'storniert')),
    gesendet_datum TEXT,
    notizen TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX therapeutenanfragen_therapist_id ON therapeutenanfragen (therapist_id);

CREATE TABLE anfrage_platzsuchen (
    anfrage_id BIGINT NOT NULL REFERENCES therapeutenanfragen (id) ON DELETE CASCADE,
    platzsuche_id BIGINT NOT NULL REFERENCES platzsuchen (id),
    PRIMARY KEY (anfrage_id, platzsuche_id)
);
CREATE INDEX anfrage_platzsuchen_platzsuche_id ON anfrage_platzsuchen (platzsuche_id);

-- One row per entity a cascade changed. before_values and after_values are JSON text with
-- only the fields the cascade changed; NULL means the row did not exist before or after.
CREATE TABLE cascade_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    forward_key TEXT NOT NULL,
    saga_id TEXT,
    saga_step TEXT,
    cascade_name TEXT NOT NULL,
    entity_kind TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    before_values TEXT,
    after_values TEXT,
    created_at TEXT NOT NULL,
    undone_at TEXT
);
CREATE INDEX cascade_changes_forward_key ON cascade_changes (forward_key);
