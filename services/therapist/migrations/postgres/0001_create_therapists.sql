-- Therapists of the matching platform. Timestamps are RFC 3339 text in UTC, so that the same
-- queries run on PostgreSQL and SQLite. sperrgrund and gesperrt_seit are set only while the
-- therapist is gesperrt.
CREATE TABLE therapists (
    id BIGSERIAL PRIMARY KEY,
    anrede TEXT,
    titel TEXT,
    vorname TEXT NOT NULL,
    nachname TEXT NOT NULL,
    email TEXT,
    telefon TEXT,
    strasse TEXT,
    plz TEXT,
    ort TEXT,
    status TEXT NOT NULL DEFAULT 'aktiv' CHECK (status IN ('aktiv', 'gesperrt', 'inaktiv')),
    sperrgrund TEXT,
    gesperrt_seit TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX therapists_status_id ON therapists (status, id);
