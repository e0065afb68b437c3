-- Emails and phone calls with patients and therapists, and the outbox of patient contact
-- reports that wait for the coordinator. Flags are BIGINT 0/1 and times RFC 3339 text, so
-- that the same code reads PostgreSQL and SQLite.

CREATE TABLE emails (
    id BIGSERIAL PRIMARY KEY,
    patient_id BIGINT,
    therapist_id BIGINT,
    betreff TEXT NOT NULL,
    inhalt TEXT NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('Entwurf', 'In_Warteschlange', 'Gesendet', 'Fehlgeschlagen')),
    antwort_erhalten BIGINT NOT NULL DEFAULT 0 CHECK (antwort_erhalten IN (0, 1)),
    gesendet_am TEXT,
    antwort_am TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK (patient_id IS NOT NULL OR therapist_id IS NOT NULL)
);

CREATE INDEX emails_patient_id ON emails (patient_id);
CREATE INDEX emails_therapist_id ON emails (therapist_id);

CREATE TABLE phone_calls (
    id BIGSERIAL PRIMARY KEY,
    patient_id BIGINT,
    therapist_id BIGINT,
    geplant_fuer TEXT NOT NULL,
    dauer_minuten BIGINT,
    status TEXT NOT NULL
        CHECK (status IN ('geplant', 'abgeschlossen', 'fehlgeschlagen', 'abgesagt')),
    abgeschlossen_am TEXT,
    notizen TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    CHECK (patient_id IS NOT NULL OR therapist_id IS NOT NULL)
);

CREATE INDEX phone_calls_patient_id ON phone_calls (patient_id);
CREATE INDEX phone_calls_therapist_id ON phone_calls (therapist_id);

CREATE TABLE contact_outbox (
    id BIGSERIAL PRIMARY KEY,
    patient_id BIGINT NOT NULL,
    contact_date TEXT NOT NULL,
    channel TEXT NOT NULL CHECK (channel IN ('email', 'phone_call')),
    source_id TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'rejected')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT,
    created_at TEXT NOT NULL,
    delivered_at TEXT
);

CREATE INDEX contact_outbox_due ON contact_outbox (state, next_attempt_at);
