//! Small built-in lists from which the synthetic people and places are drawn. Names are
//! common German first names and surnames combined at random, so no record describes a real
//! person.

pub const FEMALE_FIRST_NAMES: &[&str] = &[
    "Anna",
    "Maria",
    "Julia",
    "Laura",
    "Lea",
    "Sarah",
    "Katharina",
    "Lena",
    "Sophie",
    "Hannah",
    "Johanna",
    "Clara",
    "Emma",
    "Mia",
    "Lina",
    "Paula",
    "Charlotte",
    "Greta",
    "Ida",
    "Marie",
    "Sabine",
    "Petra",
    "Claudia",
    "Monika",
    "Ursula",
    "Andrea",
    "Birgit",
    "Karin",
    "Heike",
    "Nicole",
];

pub const MALE_FIRST_NAMES: &[&str] = &[
    "Lukas",
    "Jonas",
    "Leon",
    "Felix",
    "Maximilian",
    "Paul",
    "Elias",
    "Noah",
    "Tim",
    "Jan",
    "Niklas",
    "Moritz",
    "Jakob",
    "David",
    "Simon",
    "Thomas",
    "Michael",
    "Andreas",
    "Stefan",
    "Markus",
    "Frank",
    "Jürgen",
    "Klaus",
    "Wolfgang",
    "Peter",
    "Uwe",
    "Dirk",
    "Matthias",
    "Tobias",
    "Florian",
];

pub const SURNAMES: &[&str] = &[
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Schmitt",
    "Werner",
    "Schmitz",
    "Krause",
    "Meier",
    "Lehmann",
    "Schmid",
    "Schulze",
    "Maier",
    "Köhler",
    "Herrmann",
    "König",
    "Walter",
    "Mayer",
    "Huber",
    "Kaiser",
    "Fuchs",
    "Peters",
    "Lang",
    "Scholz",
    "Möller",
    "Weiß",
    "Jung",
    "Hahn",
    "Vogel",
];

pub const STREETS: &[&str] = &[
    "Hauptstraße",
    "Schulstraße",
    "Gartenstraße",
    "Bahnhofstraße",
    "Dorfstraße",
    "Bergstraße",
    "Birkenweg",
    "Lindenstraße",
    "Kirchstraße",
    "Waldstraße",
    "Ringstraße",
    "Schillerstraße",
    "Goethestraße",
    "Feldstraße",
    "Mühlenweg",
    "Am Markt",
    "Rosenweg",
    "Wiesenstraße",
];

/// Academic titles of therapists; the empty string means none.
pub const THERAPIST_TITLES: &[&str] = &["", "", "Dr.", "Dipl.-Psych.", "M.Sc. Psych."];

/// A city with a range of its postal codes and a telephone prefix for fictional numbers.
pub struct City {
    pub name: &'static str,
    pub postal_codes: std::ops::RangeInclusive<u32>,
    /// The Bundesnetzagentur keeps the 1,000 numbers after each of these prefixes unassigned
    /// for use in media ("Drama Numbers", Amtsblatt 7/2021, Mitteilung 148/2021).
    pub phone_prefix: &'static str,
}

pub const CITIES: &[City] = &[
    City {
        name: "Berlin",
        postal_codes: 10115..=14199,
        phone_prefix: "+49 30 23125",
    },
    City {
        name: "Hamburg",
        postal_codes: 20095..=22769,
        phone_prefix: "+49 40 66969",
    },
    City {
        name: "München",
        postal_codes: 80331..=81929,
        phone_prefix: "+49 89 99998",
    },
    City {
        name: "Köln",
        postal_codes: 50667..=51149,
        phone_prefix: "+49 221 4710",
    },
    City {
        name: "Frankfurt am Main",
        postal_codes: 60306..=60599,
        phone_prefix: "+49 69 90009",
    },
];

/// Reasons a patient or the staff give for excluding a therapist.
pub const EXCLUSION_REASONS_BY_PATIENT: &[&str] = &[
    "Patientin oder Patient wünscht eine andere Praxis",
    "Anfahrt zu lang",
    "Frühere Behandlung dort abgebrochen",
    "Wunsch nach anderem Therapieverfahren",
];

pub const EXCLUSION_REASONS_BY_STAFF: &[&str] = &[
    "Praxis nimmt derzeit keine Anfragen an",
    "Keine passende Altersgruppe",
    "Wiederholt keine Rückmeldung",
];

pub const SEARCH_NOTES: &[&str] = &[
    "Bevorzugt Termine am Nachmittag",
    "Nur Verhaltenstherapie",
    "Barrierefreier Zugang nötig",
    "Flexibel bei der Anfahrt",
    "Bevorzugt Einzeltherapie",
];

pub const THERAPIST_EMAIL_SUBJECTS: &[&str] = &[
    "Anfrage Psychotherapieplatz",
    "Erinnerung: Anfrage Therapieplatz",
    "Rückfrage zu Ihrer Verfügbarkeit",
];

pub const PATIENT_EMAIL_SUBJECTS: &[&str] = &[
    "Ihre Platzsuche",
    "Neue Informationen zu Ihrer Platzsuche",
    "Terminbestätigung Erstgespräch",
];

pub const CALL_NOTES: &[&str] = &[
    "Rückruf vereinbart",
    "Freie Plätze ab nächstem Quartal",
    "Warteliste erfragt",
    "Erstgespräch besprochen",
];
