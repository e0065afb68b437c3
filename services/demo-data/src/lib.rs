//! Fills the four participant services with a synthetic demo data set when they are empty.
//!
//! Everything goes through the services' public create endpoints, so the data passes the
//! same checks as any client's. The data set is drawn from a seeded generator: the same
//! `SeedOptions` give the same records. Names are drawn from small built-in lists, emails
//! use `example.org`, and phone numbers come from ranges kept free for fictional use.

mod http;
mod names;
mod plan;

use std::fmt;

use anyhow::Context;
use chrono::NaiveDate;

use crate::http::Creator;
use crate::plan::{Ids, Plan};

/// Base URLs of the four services, such as `http://127.0.0.1:8081`.
#[derive(Debug, Clone)]
pub struct ServiceUrls {
    pub patient: String,
    pub therapist: String,
    pub matching: String,
    pub communication: String,
}

/// Size and seed of the data set.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    /// Seed of the random generator.
    pub seed: u64,
    pub patients: usize,
    pub therapists: usize,
    pub platzsuchen: usize,
    pub therapeutenanfragen: usize,
    pub emails: usize,
    pub phone_calls: usize,
    /// Maximum number of requests in flight at once.
    pub concurrency: usize,
    /// Day that contact dates, send dates and calls are placed around.
    pub today: NaiveDate,
}

impl Default for SeedOptions {
    fn default() -> Self {
        Self {
            seed: 20_240_917,
            patients: 540,
            therapists: 150,
            platzsuchen: 600,
            therapeutenanfragen: 1_500,
            emails: 400,
            phone_calls: 200,
            concurrency: 8,
            today: chrono::Utc::now().date_naive(),
        }
    }
}

/// Counts of the records `seed_if_empty` created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeedReport {
    /// True when the patient service had patients already, so nothing was created.
    pub skipped: bool,
    pub patients: usize,
    pub therapists: usize,
    pub platzsuchen: usize,
    /// Excluded therapists, created inside their Platzsuchen.
    pub ausschluesse: usize,
    pub therapeutenanfragen: usize,
    pub emails: usize,
    pub phone_calls: usize,
}

impl fmt::Display for SeedReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.skipped {
            return write!(
                formatter,
                "demo data skipped: the patient service already has patients"
            );
        }

        write!(
            formatter,
            "demo data created: {} patients, {} therapists, {} Platzsuchen with {} Ausschlüsse, \
             {} Therapeutenanfragen, {} emails, {} phone calls",
            self.patients,
            self.therapists,
            self.platzsuchen,
            self.ausschluesse,
            self.therapeutenanfragen,
            self.emails,
            self.phone_calls
        )
    }
}

/// Creates the demo data set through the services' HTTP APIs unless `GET /api/patients`
/// lists a patient already. Stops at the first request that fails; records created before
/// it stay, and a second run then skips because patients exist.
pub async fn seed_if_empty(
    urls: &ServiceUrls,
    options: &SeedOptions,
) -> anyhow::Result<SeedReport> {
    let creator = Creator::new(options.concurrency)?;
    if creator.has_patients(&urls.patient).await? {
        return Ok(SeedReport {
            skipped: true,
            ..SeedReport::default()
        });
    }

    let plan = Plan::generate(options);
    let patients = creator
        .create_all(
            &endpoint(&urls.patient, "/api/patients"),
            plan.patients.clone(),
        )
        .await
        .context("creating the demo patients failed")?;
    let therapists = creator
        .create_all(
            &endpoint(&urls.therapist, "/api/therapists"),
            plan.therapists.clone(),
        )
        .await
        .context("creating the demo therapists failed")?;
    let mut ids = Ids {
        patients,
        therapists,
        searches: Vec::new(),
    };

    let searches = plan
        .searches
        .iter()
        .map(|search| search.body(&ids))
        .collect();
    ids.searches = creator
        .create_all(&endpoint(&urls.matching, "/api/platzsuchen"), searches)
        .await
        .context("creating the demo Platzsuchen failed")?;
    let inquiries = plan
        .inquiries
        .iter()
        .map(|inquiry| inquiry.body(&ids))
        .collect();
    let inquiry_ids = creator
        .create_all(
            &endpoint(&urls.matching, "/api/therapeutenanfragen"),
            inquiries,
        )
        .await
        .context("creating the demo Therapeutenanfragen failed")?;

    let emails = plan.emails.iter().map(|email| email.body(&ids)).collect();
    let email_ids = creator
        .create_all(&endpoint(&urls.communication, "/api/emails"), emails)
        .await
        .context("creating the demo emails failed")?;
    let calls = plan
        .phone_calls
        .iter()
        .map(|call| call.body(&ids))
        .collect();
    let call_ids = creator
        .create_all(&endpoint(&urls.communication, "/api/phone-calls"), calls)
        .await
        .context("creating the demo phone calls failed")?;

    Ok(SeedReport {
        skipped: false,
        patients: ids.patients.len(),
        therapists: ids.therapists.len(),
        platzsuchen: ids.searches.len(),
        ausschluesse: plan.exclusion_count(),
        therapeutenanfragen: inquiry_ids.len(),
        emails: email_ids.len(),
        phone_calls: call_ids.len(),
    })
}

fn endpoint(base_url: &str, path: &str) -> String {
    format!("{}{path}", base_url.trim_end_matches('/'))
}
