-- Patients of the matching platform. Dates are TEXT in YYYY-MM-DD form and timestamps RFC 3339
-- text in UTC, so that the same queries run on PostgreSQL and SQLite.
CREATE TABLE patients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    anrede TEXT,
    vorname TEXT NOT NULL,
    nachname TEXT NOT NULL,
    geburtsdatum TEXT,
    email TEXT,
    telefon TEXT,
    strasse TEXT,
    plz TEXT,
    ort TEXT,
    status TEXT NOT NULL DEFAULT 'offen'
        CHECK (status IN ('offen', 'auf_der_suche', 'in_therapie', 'abgeschlossen')),
    letzter_kontakt TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX patients_status_id ON patients (status, id);
