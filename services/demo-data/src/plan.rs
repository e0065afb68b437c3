//! The demo data set, drawn from a seeded random generator before anything is sent. Records
//! refer to each other by their position in the plan; `ids` maps positions to the ids the
//! services assign.

use std::collections::HashSet;

use chrono::{Duration, NaiveDate, SecondsFormat, TimeZone, Utc};
use fastrand::Rng;
use serde_json::{json, Map, Value};

use crate::names::{self, City};
use crate::SeedOptions;

/// Share of patients that have at least one Platzsuche; the rest are new and `offen`.
const SHARE_OF_PATIENTS_SEARCHING: f64 = 0.9;

/// Share of Platzsuchen with excluded therapists.
const SHARE_OF_SEARCHES_WITH_EXCLUSIONS: f64 = 0.15;

/// Share of Therapeutenanfragen already sent.
const SHARE_OF_INQUIRIES_SENT: f64 = 0.8;

/// Share of therapists that are `inaktiv`.
const SHARE_OF_THERAPISTS_INACTIVE: f64 = 0.07;

/// Oldest contact, inquiry or call in the data set, in days before `today`.
const MAX_DAYS_AGO: i64 = 120;

/// Largest number of random draws for one inquiry's bundle before it is given up.
const MAX_DRAWS_PER_INQUIRY: usize = 40;

pub struct Plan {
    pub patients: Vec<Value>,
    pub therapists: Vec<Value>,
    pub searches: Vec<PlannedSearch>,
    pub inquiries: Vec<PlannedInquiry>,
    pub emails: Vec<PlannedContact>,
    pub phone_calls: Vec<PlannedContact>,
}

pub struct PlannedSearch {
    pub patient: usize,
    pub status: &'static str,
    pub notizen: Option<&'static str>,
    pub exclusions: Vec<PlannedExclusion>,
}

pub struct PlannedExclusion {
    pub therapist: usize,
    pub ausgeschlossen_von: &'static str,
    pub grund: &'static str,
}

pub struct PlannedInquiry {
    pub therapist: usize,
    pub searches: Vec<usize>,
    pub gesendet_datum: Option<String>,
    pub status: &'static str,
}

/// An email or phone call: its fields apart from the patient and therapist ids.
pub struct PlannedContact {
    pub patient: Option<usize>,
    pub therapist: Option<usize>,
    pub fields: Map<String, Value>,
}

/// The ids the services assigned, by plan position.
#[derive(Debug, Default)]
pub struct Ids {
    pub patients: Vec<i64>,
    pub therapists: Vec<i64>,
    pub searches: Vec<i64>,
}

impl PlannedSearch {
    pub fn body(&self, ids: &Ids) -> Value {
        let ausschluesse: Vec<Value> = self
            .exclusions
            .iter()
            .map(|exclusion| {
                json!({
                    "therapist_id": ids.therapists[exclusion.therapist],
                    "ausgeschlossen_von": exclusion.ausgeschlossen_von,
                    "grund": exclusion.grund,
                })
            })
            .collect();

        let mut body = json!({
            "patient_id": ids.patients[self.patient],
            "status": self.status,
            "ausschluesse": ausschluesse,
        });

        if let Some(notizen) = self.notizen {
            body["notizen"] = json!(notizen);
        }
        body
    }
}

impl PlannedInquiry {
    pub fn body(&self, ids: &Ids) -> Value {
        let platzsuche_ids: Vec<i64> = self
            .searches
            .iter()
            .map(|search| ids.searches[*search])
            .collect();

        let mut body = json!({
            "therapist_id": ids.therapists[self.therapist],
            "platzsuche_ids": platzsuche_ids,
            "status": self.status,
        });

        if let Some(date) = &self.gesendet_datum {
            body["gesendet_datum"] = json!(date);
        }
        body
    }
}

impl PlannedContact {
    pub fn body(&self, ids: &Ids) -> Value {
        let mut body = self.fields.clone();
        if let Some(patient) = self.patient {
            body.insert("patient_id".to_owned(), json!(ids.patients[patient]));
        }
        if let Some(therapist) = self.therapist {
            body.insert("therapist_id".to_owned(), json!(ids.therapists[therapist]));
        }
        Value::Object(body)
    }
}

impl Plan {
    /// Draws the whole data set from `options.seed`; the same options give the same plan.
    pub fn generate(options: &SeedOptions) -> Self {
        let mut rng = Rng::with_seed(options.seed);
        let today = options.today;

        let therapists_active: Vec<bool> = (0..options.therapists)
            .map(|_| rng.f64() >= SHARE_OF_THERAPISTS_INACTIVE)
            .collect();
        let therapists = therapists_active
            .iter()
            .enumerate()
            .map(|(index, active)| therapist(&mut rng, index, *active))
            .collect();

        let searches = plan_searches(&mut rng, options);
        let patients = (0..options.patients)
            .map(|index| {
                let latest = searches.iter().rev().find(|search| search.patient == index);
                patient(&mut rng, index, latest.map(|search| search.status), today)
            })
            .collect();

        let inquiries = plan_inquiries(&mut rng, options, &searches, &therapists_active);
        // Emails and calls need someone to contact.
        let has_people = options.patients > 0 || options.therapists > 0;
        let emails = (0..options.emails)
            .filter(|_| has_people)
            .map(|_| email(&mut rng, options))
            .collect();
        let phone_calls = (0..options.phone_calls)
            .filter(|_| has_people)
            .map(|_| phone_call(&mut rng, options))
            .collect();

        Self {
            patients,
            therapists,
            searches,
            inquiries,
            emails,
            phone_calls,
        }
    }

    pub fn exclusion_count(&self) -> usize {
        self.searches
            .iter()
            .map(|search| search.exclusions.len())
            .sum()
    }
}

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}

fn days_ago(rng: &mut Rng, today: NaiveDate) -> NaiveDate {
    today - Duration::days(rng.i64(1..=MAX_DAYS_AGO))
}

fn date_text(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// Turns a name into the ASCII letters of an email address: `Jürgen` becomes `juergen`.
fn email_part(name: &str) -> String {
    let mut part = String::with_capacity(name.len());
    for character in name.chars().flat_map(char::to_lowercase) {
        match character {
            'ä' => part.push_str("ae"),
            'ö' => part.push_str("oe"),
            'ü' => part.push_str("ue"),
            'ß' => part.push_str("ss"),
            'a'..='z' | '0'..='9' => part.push(character),
            _ => part.push('-'),
        }
    }
    part
}

/// Draws an address and a fictional phone number in one city.
fn address(rng: &mut Rng) -> (&'static City, String, String, String) {
    let city = &names::CITIES[rng.usize(..names::CITIES.len())];
    let plz = format!("{:05}", rng.u32(city.postal_codes.clone()));
    let strasse = format!("{} {}", pick(rng, names::STREETS), rng.u32(1..=120));
    let telefon = format!("{} {:03}", city.phone_prefix, rng.u32(0..1000));
    (city, plz, strasse, telefon)
}

fn patient(rng: &mut Rng, index: usize, latest_search: Option<&str>, today: NaiveDate) -> Value {
    let female = rng.bool();
    let vorname = if female {
        pick(rng, names::FEMALE_FIRST_NAMES)
    } else {
        pick(rng, names::MALE_FIRST_NAMES)
    };
    let nachname = pick(rng, names::SURNAMES);
    let born =
        NaiveDate::from_ymd_opt(1950, 1, 1).unwrap_or(today) + Duration::days(rng.i64(0..20_000));
    let (city, plz, strasse, telefon) = address(rng);
    let status = match latest_search {
        None => "offen",
        Some("aktiv" | "pausiert") => "auf_der_suche",
        Some("erfolgreich") => "in_therapie",
        Some(_) => "abgeschlossen",
    };

    let mut body = json!({
        "vorname": vorname,
        "nachname": nachname,
        "anrede": if female { "Frau" } else { "Herr" },
        "geburtsdatum": date_text(born),
        "email": format!(
            "{}.{}.{}@example.org",
            email_part(vorname),
            email_part(nachname),
            index + 1
        ),
        "telefon": telefon,
        "strasse": strasse,
        "plz": plz,
        "ort": city.name,
        "status": status,
    });
    if latest_search.is_some() && rng.f64() < 0.7 {
        body["letzter_kontakt"] = json!(date_text(days_ago(rng, today)));
    }
    body
}

fn therapist(rng: &mut Rng, index: usize, active: bool) -> Value {
    let female = rng.bool();
    let vorname = if female {
        pick(rng, names::FEMALE_FIRST_NAMES)
    } else {
        pick(rng, names::MALE_FIRST_NAMES)
    };
    let nachname = pick(rng, names::SURNAMES);
    let titel = pick(rng, names::THERAPIST_TITLES);
    let (city, plz, strasse, telefon) = address(rng);

    let mut body = json!({
        "vorname": vorname,
        "nachname": nachname,
        "anrede": if female { "Frau" } else { "Herr" },
        "email": format!("praxis.{}.{}@example.org", email_part(nachname), index + 1),
        "telefon": telefon,
        "strasse": strasse,
        "plz": plz,
        "ort": city.name,
        "status": if active { "aktiv" } else { "inaktiv" },
    });
    if !titel.is_empty() {
        body["titel"] = json!(titel);
    }
    body
}

/// Spreads the Platzsuchen over most patients, some of whom get several. A patient's
/// earlier searches have ended; only the latest may be `aktiv` or `pausiert`.
fn plan_searches(rng: &mut Rng, options: &SeedOptions) -> Vec<PlannedSearch> {
    let searching = ((options.patients as f64 * SHARE_OF_PATIENTS_SEARCHING) as usize)
        .min(options.platzsuchen)
        .max(usize::from(options.patients > 0 && options.platzsuchen > 0));
    if searching == 0 {
        return Vec::new();
    }
    let mut patient_order: Vec<usize> = (0..options.patients).collect();
    rng.shuffle(&mut patient_order);
    let mut searches_per_patient = vec![0_usize; options.patients];
    for patient in &patient_order[..searching] {
        searches_per_patient[*patient] = 1;
    }
    for _ in searching..options.platzsuchen {
        searches_per_patient[patient_order[rng.usize(..searching)]] += 1;
    }

    let mut searches = Vec::with_capacity(options.platzsuchen);
    for (patient, count) in searches_per_patient.into_iter().enumerate() {
        for position in 0..count {
            let status = if position + 1 < count {
                if rng.f64() < 0.7 {
                    "abgebrochen"
                } else {
                    "erfolgreich"
                }
            } else {
                latest_search_status(rng.f64())
            };
            let notizen = (rng.f64() < 0.3).then(|| pick(rng, names::SEARCH_NOTES));
            let exclusions = plan_exclusions(rng, options.therapists);
            searches.push(PlannedSearch {
                patient,
                status,
                notizen,
                exclusions,
            });
        }
    }
    searches
}

fn latest_search_status(roll: f64) -> &'static str {
    match roll {
        roll if roll < 0.80 => "aktiv",
        roll if roll < 0.88 => "pausiert",
        roll if roll < 0.95 => "erfolgreich",
        _ => "abgebrochen",
    }
}

fn plan_exclusions(rng: &mut Rng, therapists: usize) -> Vec<PlannedExclusion> {
    if therapists == 0 || rng.f64() >= SHARE_OF_SEARCHES_WITH_EXCLUSIONS {
        return Vec::new();
    }
    let count = rng.usize(1..=2).min(therapists);
    let mut chosen: Vec<usize> = Vec::with_capacity(count);
    while chosen.len() < count {
        let therapist = rng.usize(..therapists);
        if !chosen.contains(&therapist) {
            chosen.push(therapist);
        }
    }

    chosen
        .into_iter()
        .map(|therapist| {
            let by_patient = rng.f64() < 0.6;
            PlannedExclusion {
                therapist,
                ausgeschlossen_von: if by_patient { "patient" } else { "personal" },
                grund: if by_patient {
                    pick(rng, names::EXCLUSION_REASONS_BY_PATIENT)
                } else {
                    pick(rng, names::EXCLUSION_REASONS_BY_STAFF)
                },
            }
        })
        .collect()
}

/// Bundles 1 to 4 `aktiv` searches per inquiry to an `aktiv` therapist that none of them
/// excludes, and never sends one therapist two inquiries for one search. Stops early when no
/// bundle can be found, which happens only with very small options.
fn plan_inquiries(
    rng: &mut Rng,
    options: &SeedOptions,
    searches: &[PlannedSearch],
    therapists_active: &[bool],
) -> Vec<PlannedInquiry> {
    let active_searches: Vec<usize> = (0..searches.len())
        .filter(|index| searches[*index].status == "aktiv")
        .collect();
    let active_therapists: Vec<usize> = (0..therapists_active.len())
        .filter(|index| therapists_active[*index])
        .collect();
    if active_searches.is_empty() || active_therapists.is_empty() {
        return Vec::new();
    }

    let mut requested: HashSet<(usize, usize)> = HashSet::new();
    let mut inquiries = Vec::with_capacity(options.therapeutenanfragen);
    let mut failed_draws = 0;
    while inquiries.len() < options.therapeutenanfragen && failed_draws < MAX_DRAWS_PER_INQUIRY {
        let therapist = pick(rng, &active_therapists);
        let bundle_size = match rng.f64() {
            roll if roll < 0.4 => 1,
            roll if roll < 0.7 => 2,
            roll if roll < 0.9 => 3,
            _ => 4,
        };
        let mut bundle: Vec<usize> = Vec::with_capacity(bundle_size);
        for _ in 0..MAX_DRAWS_PER_INQUIRY {
            if bundle.len() == bundle_size {
                break;
            }
            let search = pick(rng, &active_searches);
            let excluded = searches[search]
                .exclusions
                .iter()
                .any(|exclusion| exclusion.therapist == therapist);
            if !excluded && !bundle.contains(&search) && !requested.contains(&(therapist, search)) {
                bundle.push(search);
            }
        }
        if bundle.is_empty() {
            failed_draws += 1;
            continue;
        }
        failed_draws = 0;

        for search in &bundle {
            requested.insert((therapist, *search));
        }
        let (gesendet_datum, status) = if rng.f64() < SHARE_OF_INQUIRIES_SENT {
            let status = match rng.f64() {
                roll if roll < 0.6 => "gesendet",
                roll if roll < 0.75 => "angenommen",
                _ => "abgelehnt",
            };
            (Some(date_text(days_ago(rng, options.today))), status)
        } else {
            (None, "offen")
        };
        inquiries.push(PlannedInquiry {
            therapist,
            searches: bundle,
            gesendet_datum,
            status,
        });
    }
    inquiries
}

/// Draws an email. Most go to therapists. Those to patients are reported as contacts by
/// the communication service once they are sent or get a reply.
fn email(rng: &mut Rng, options: &SeedOptions) -> PlannedContact {
    let to_patient = options.therapists == 0 || (options.patients > 0 && rng.f64() < 0.25);
    let status = match rng.f64() {
        roll if roll < 0.65 => "Gesendet",
        roll if roll < 0.80 => "Entwurf",
        roll if roll < 0.92 => "In_Warteschlange",
        _ => "Fehlgeschlagen",
    };
    let answered = status == "Gesendet" && rng.f64() < 0.35;
    let (betreff, inhalt) = if to_patient {
        (
            pick(rng, names::PATIENT_EMAIL_SUBJECTS),
            "Guten Tag,\n\nwir haben Neuigkeiten zu Ihrer Suche nach einem \
             Psychotherapieplatz. Bitte melden Sie sich bei uns.\n\nMit freundlichen Grüßen",
        )
    } else {
        (
            pick(rng, names::THERAPIST_EMAIL_SUBJECTS),
            "Guten Tag,\n\nwir suchen für Patientinnen und Patienten einen \
             Psychotherapieplatz. Haben Sie in den nächsten Wochen Kapazität?\n\n\
             Mit freundlichen Grüßen",
        )
    };

    let mut fields = Map::new();
    fields.insert("betreff".to_owned(), json!(betreff));
    fields.insert("inhalt".to_owned(), json!(inhalt));
    fields.insert("status".to_owned(), json!(status));
    fields.insert("antwort_erhalten".to_owned(), json!(answered));
    contact(rng, options, to_patient, fields)
}

/// Draws a phone call: past calls are completed, failed or cancelled; future ones planned.
fn phone_call(rng: &mut Rng, options: &SeedOptions) -> PlannedContact {
    let to_patient = options.therapists == 0 || (options.patients > 0 && rng.f64() < 0.3);
    let in_past = rng.f64() < 0.75;
    let offset_days = if in_past {
        -rng.i64(1..=MAX_DAYS_AGO)
    } else {
        rng.i64(1..=21)
    };
    let day = options.today + Duration::days(offset_days);
    let start = day
        .and_hms_opt(rng.u32(8..=17), pick(rng, &[0, 15, 30, 45]), 0)
        .map(|time| Utc.from_utc_datetime(&time))
        .unwrap_or_else(Utc::now);
    let status = if !in_past {
        "geplant"
    } else {
        match rng.f64() {
            roll if roll < 0.7 => "abgeschlossen",
            roll if roll < 0.9 => "fehlgeschlagen",
            _ => "abgesagt",
        }
    };

    let mut fields = Map::new();
    fields.insert(
        "geplant_fuer".to_owned(),
        json!(start.to_rfc3339_opts(SecondsFormat::Secs, true)),
    );
    fields.insert("status".to_owned(), json!(status));
    if status == "abgeschlossen" {
        fields.insert("dauer_minuten".to_owned(), json!(rng.i64(5..=30)));
    }
    if rng.f64() < 0.5 {
        fields.insert("notizen".to_owned(), json!(pick(rng, names::CALL_NOTES)));
    }
    contact(rng, options, to_patient, fields)
}

fn contact(
    rng: &mut Rng,
    options: &SeedOptions,
    to_patient: bool,
    fields: Map<String, Value>,
) -> PlannedContact {
    if to_patient {
        PlannedContact {
            patient: Some(rng.usize(..options.patients)),
            therapist: None,
            fields,
        }
    } else {
        PlannedContact {
            patient: None,
            therapist: Some(rng.usize(..options.therapists)),
            fields,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        Plan::generate(&SeedOptions::default())
    }

    fn share(part: usize, whole: usize) -> f64 {
        part as f64 / whole as f64
    }

    #[test]
    fn default_plan_has_the_promised_sizes() {
        let plan = plan();

        assert!(plan.patients.len() >= 500);
        assert!(plan.therapists.len() >= 150);
        assert!(plan.searches.len() >= 600);
        assert!(plan.inquiries.len() >= 1500);
        assert!(!plan.emails.is_empty());
        assert!(!plan.phone_calls.is_empty());
    }

    #[test]
    fn same_seed_gives_same_plan() {
        let first = plan();
        let second = plan();

        assert_eq!(first.patients, second.patients);
        assert_eq!(first.therapists, second.therapists);
        let bundles = |plan: &Plan| -> Vec<Vec<usize>> {
            plan.inquiries
                .iter()
                .map(|inquiry| inquiry.searches.clone())
                .collect()
        };
        assert_eq!(bundles(&first), bundles(&second));
    }

    #[test]
    fn most_searches_are_active_and_some_are_not() {
        let plan = plan();
        let count = |status: &str| plan.searches.iter().filter(|s| s.status == status).count();

        let active = share(count("aktiv"), plan.searches.len());
        assert!((0.6..0.85).contains(&active), "aktiv share {active}");
        assert!(count("pausiert") > 0);
        assert!(count("erfolgreich") > 0);
        assert!(count("abgebrochen") > 0);
    }

    #[test]
    fn some_patients_search_several_times() {
        let plan = plan();
        let mut per_patient = vec![0; plan.patients.len()];
        for search in &plan.searches {
            per_patient[search.patient] += 1;
        }

        assert!(per_patient.iter().any(|count| *count >= 2));
        assert!(per_patient.contains(&0));
    }

    #[test]
    fn about_four_in_five_inquiries_are_sent() {
        let plan = plan();
        let sent: Vec<&PlannedInquiry> = plan
            .inquiries
            .iter()
            .filter(|inquiry| inquiry.gesendet_datum.is_some())
            .collect();

        let sent_share = share(sent.len(), plan.inquiries.len());
        assert!(
            (0.75..0.85).contains(&sent_share),
            "sent share {sent_share}"
        );
        assert!(sent
            .iter()
            .all(|inquiry| ["gesendet", "angenommen", "abgelehnt"].contains(&inquiry.status)));
        assert!(plan
            .inquiries
            .iter()
            .filter(|inquiry| inquiry.gesendet_datum.is_none())
            .all(|inquiry| inquiry.status == "offen"));
    }

    #[test]
    fn sent_dates_lie_in_the_past() {
        let options = SeedOptions::default();
        let today = date_text(options.today);

        let plan = Plan::generate(&options);

        assert!(plan
            .inquiries
            .iter()
            .filter_map(|inquiry| inquiry.gesendet_datum.as_ref())
            .all(|date| *date < today));
    }

    #[test]
    fn inquiries_bundle_active_searches_for_active_therapists() {
        let plan = plan();

        for inquiry in &plan.inquiries {
            assert!((1..=4).contains(&inquiry.searches.len()));
            assert_eq!(plan.therapists[inquiry.therapist]["status"], "aktiv");
            for search in &inquiry.searches {
                let search = &plan.searches[*search];
                assert_eq!(search.status, "aktiv");
                assert!(search
                    .exclusions
                    .iter()
                    .all(|exclusion| exclusion.therapist != inquiry.therapist));
            }
        }
    }

    #[test]
    fn some_therapists_are_excluded_and_some_inactive() {
        let plan = plan();
        let by = |who: &str| {
            plan.searches
                .iter()
                .flat_map(|search| &search.exclusions)
                .filter(|exclusion| exclusion.ausgeschlossen_von == who)
                .count()
        };
        let inactive = plan
            .therapists
            .iter()
            .filter(|therapist| therapist["status"] == "inaktiv")
            .count();

        assert!(by("patient") > 0);
        assert!(by("personal") > 0);
        assert!(inactive > 0);
        assert!(inactive < plan.therapists.len() / 5);
    }

    #[test]
    fn contact_data_is_fictional() {
        let plan = plan();
        let prefixes: Vec<&str> = names::CITIES.iter().map(|city| city.phone_prefix).collect();

        for person in plan.patients.iter().chain(&plan.therapists) {
            let email = person["email"].as_str().unwrap_or_default();
            let phone = person["telefon"].as_str().unwrap_or_default();
            assert!(email.ends_with("@example.org"), "{email}");
            assert!(email.is_ascii(), "{email}");
            assert!(
                prefixes.iter().any(|prefix| phone.starts_with(prefix)),
                "{phone}"
            );
        }
    }

    #[test]
    fn tiny_options_give_a_consistent_plan() {
        let cases = [(0, 0), (0, 3), (3, 0), (2, 1)];

        for (patients, therapists) in cases {
            let options = SeedOptions {
                patients,
                therapists,
                platzsuchen: 4,
                therapeutenanfragen: 10,
                emails: 3,
                phone_calls: 3,
                ..SeedOptions::default()
            };
            let plan = Plan::generate(&options);

            assert!(plan.searches.iter().all(|search| search.patient < patients));
            assert!(plan
                .inquiries
                .iter()
                .all(|inquiry| inquiry.therapist < therapists));
            assert!(plan
                .emails
                .iter()
                .all(|email| email.patient.is_none_or(|patient| patient < patients)));
        }
    }

    #[test]
    fn email_part_spells_umlauts_out() {
        assert_eq!(email_part("Jürgen"), "juergen");
        assert_eq!(email_part("Weiß"), "weiss");
        assert_eq!(email_part("Köhler"), "koehler");
    }
}
