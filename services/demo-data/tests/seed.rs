//! Seeding the four real services, each on its own PostgreSQL database.

use demo_data::{SeedOptions, ServiceUrls};
use kit::config::{LogFormat, ServiceSettings};
use kit::testing::TestServer;
use serde_json::Value;

/// No coordinator listens here. The contact reports that the demo emails and calls queue
/// stay pending, which this test does not look at.
const NO_COORDINATOR: &str = "http://127.0.0.1:9";

struct Services {
    urls: ServiceUrls,
    _servers: Vec<TestServer>,
}

async fn common_settings(prefix: &str) -> ServiceSettings {
    ServiceSettings {
        database_url: kit::testing::create_postgres_database(prefix)
            .await
            .expect("test database created"),
        bind_addr: None,
        max_body_bytes: 64 * 1024,
        log_format: LogFormat::Text,
        exit_with_parent: false,
    }
}

async fn spawn_services() -> Services {
    let patient = patient_service::build_app(&patient_service::Settings {
        common: common_settings("demo_patient").await,
    })
    .await
    .expect("patient service builds");
    let therapist = therapist_service::build_app(&therapist_service::Settings {
        common: common_settings("demo_therapist").await,
    })
    .await
    .expect("therapist service builds");
    let matching = matching_service::build_app(&matching_service::Settings {
        common: common_settings("demo_matching").await,
    })
    .await
    .expect("matching service builds");
    let communication = communication_service::build_app(&communication_service::Settings {
        common: common_settings("demo_communication").await,
        coordinator_url: NO_COORDINATOR.parse().expect("valid URL"),
        outbox_poll_interval_ms: 60_000,
    })
    .await
    .expect("communication service builds");

    let mut servers = Vec::new();
    for app in [patient, therapist, matching, communication] {
        servers.push(kit::testing::spawn(app).await.expect("service serves"));
    }
    Services {
        urls: ServiceUrls {
            patient: servers[0].base_url.clone(),
            therapist: servers[1].base_url.clone(),
            matching: servers[2].base_url.clone(),
            communication: servers[3].base_url.clone(),
        },
        _servers: servers,
    }
}

async fn get_json(url: String) -> Value {
    let response = reqwest::get(&url).await.expect("GET reaches the service");
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.expect("JSON body")
}

/// Counts every item of a paged list.
async fn count_all(base: &str, path_and_filter: &str) -> usize {
    let separator = if path_and_filter.contains('?') {
        '&'
    } else {
        '?'
    };

    let mut count = 0;
    let mut after = 0;

    loop {
        let page = get_json(format!(
            "{base}{path_and_filter}{separator}limit=500&after={after}"
        ))
        .await;
        count += page["items"].as_array().map_or(0, Vec::len);
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => return count,
        }
    }
}

#[tokio::test]
async fn seed_fills_empty_services_once() {
    let services = spawn_services().await;
    let urls = &services.urls;
    let options = SeedOptions::default();

    let report = demo_data::seed_if_empty(urls, &options)
        .await
        .expect("seeding succeeds");
    let second = demo_data::seed_if_empty(urls, &options)
        .await
        .expect("second run succeeds");

    assert!(!report.skipped);
    assert!(report.patients >= 500, "{report}");
    assert!(report.therapists >= 150, "{report}");
    assert!(report.platzsuchen >= 600, "{report}");
    assert!(report.therapeutenanfragen >= 1_500, "{report}");
    assert!(report.emails > 0, "{report}");
    assert!(report.phone_calls > 0, "{report}");
    assert!(second.skipped);
    assert_eq!(
        count_all(&urls.patient, "/api/patients").await,
        report.patients
    );
    assert_eq!(
        count_all(&urls.matching, "/api/therapeutenanfragen").await,
        report.therapeutenanfragen
    );
    let unsent = count_all(&urls.matching, "/api/therapeutenanfragen?status=offen").await;
    assert!(
        unsent > 0 && unsent < report.therapeutenanfragen / 3,
        "{unsent} unsent"
    );
    for status in ["aktiv", "pausiert", "erfolgreich", "abgebrochen"] {
        let listed = count_all(&urls.matching, &format!("/api/platzsuchen?status={status}")).await;
        assert!(listed > 0, "no Platzsuche with status {status}");
    }
    let inactive = count_all(&urls.therapist, "/api/therapists?status=inaktiv").await;
    assert!(inactive > 0);
    assert_eq!(
        count_all(&urls.communication, "/api/emails").await,
        report.emails
    );
}
