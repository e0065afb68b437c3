//! Harness of the end-to-end suite. It runs the coordinator and the four participant services
//! as real processes of the `e2e-stack` binary, each with its own fresh PostgreSQL database
//! (or SQLite file). It adds optional fault-injecting proxies between the coordinator and a
//! participant, and typed helpers for the requests the tests make.
//!
//! Process output goes to files in a per-test folder whose path the test prints to its
//! captured output, so the path shows when the test fails. With `TEST_LOG` set, the output
//! goes to the test's own output instead. The folder stays after the test. Every process is killed
//! (SIGKILL) when the [`Stack`] is dropped, and its PostgreSQL databases are dropped too
//! unless the test panicked or `E2E_KEEP_DATABASES` is set. A test that fails by returning an
//! error does not panic, so set that variable to inspect its databases.

mod processes;
pub mod proxy;
mod requests;
pub mod tcp_link;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;
use sqlx::{Connection, Executor};

use crate::processes::{CoordinatorProcess, Process, ServiceProcess};
use crate::proxy::Proxy;
use crate::tcp_link::TcpLink;

/// How long a process may take to become ready after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Default deadline of the polling helpers.
pub const POLL_TIMEOUT: Duration = Duration::from_secs(20);

/// Interval of the polling helpers.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Environment of every coordinator: fast sweeps, short leases and short timeouts, so that
/// retries, recovery and takeover happen within a test's time.
const COORDINATOR_TIMINGS: [(&str, &str); 17] = [
    ("SWEEP_INTERVAL_MS", "200"),
    ("LEASE_DURATION_MS", "2000"),
    ("ROUND_BACKOFF_BASE_MS", "200"),
    ("ROUND_BACKOFF_MAX_MS", "1000"),
    ("ATTENTION_AFTER_ROUNDS", "3"),
    ("RETRY_MIN_INTERVAL_MS", "20"),
    ("RETRY_MAX_INTERVAL_MS", "100"),
    ("PATIENT_TIMEOUT_MS", "1000"),
    ("THERAPIST_TIMEOUT_MS", "1000"),
    ("MATCHING_TIMEOUT_MS", "1000"),
    ("PATIENT_MAX_RETRIES", "3"),
    ("THERAPIST_MAX_RETRIES", "3"),
    ("MATCHING_MAX_RETRIES", "3"),
    ("COMMAND_WAIT_MS", "5000"),
    ("MAX_BODY_BYTES", "65536"),
    ("LOG_FORMAT", "text"),
    ("EXIT_WITH_PARENT", "false"),
];

/// The coordinator's call timeout in these tests, as set in [`COORDINATOR_TIMINGS`].
pub const PARTICIPANT_TIMEOUT: Duration = Duration::from_millis(1000);

/// Environment variable that keeps the PostgreSQL databases of passing tests; those of a
/// test that panics are always kept.
pub const KEEP_DATABASES: &str = "E2E_KEEP_DATABASES";

/// The coordinator's lease duration in these tests, as set in [`COORDINATOR_TIMINGS`].
pub const LEASE_DURATION: Duration = Duration::from_millis(2000);

/// The participant services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Patient,
    Therapist,
    Matching,
    Communication,
}

impl Service {
    pub const ALL: [Service; 4] = [
        Service::Patient,
        Service::Therapist,
        Service::Matching,
        Service::Communication,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Therapist => "therapist",
            Self::Matching => "matching",
            Self::Communication => "communication",
        }
    }
}

/// Where the processes keep their data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh database per process on the local PostgreSQL server.
    Postgres,
    /// An SQLite file per process in the test's folder.
    Sqlite,
}

/// What [`Stack::start`] sets up.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub backend: Backend,
    /// Participants the coordinator reaches through a [`Proxy`].
    pub proxied: Vec<Service>,
    /// Whether the coordinators reach their PostgreSQL store through a [`TcpLink`], so that
    /// the test can cut it.
    pub store_link: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Postgres,
            proxied: Vec::new(),
            store_link: false,
        }
    }
}

impl StackOptions {
    /// Returns options for PostgreSQL with proxies in front of the given participants.
    pub fn proxied(services: &[Service]) -> Self {
        Self {
            backend: Backend::Postgres,
            proxied: services.to_vec(),
            store_link: false,
        }
    }
}

/// A response of any service, with its body as JSON (or a JSON string when it is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Returns the header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Returns the saga the response names: `id` of a saga body, or `saga_id` of a problem.
    pub fn saga_id(&self) -> Option<String> {
        self.body
            .get("saga_id")
            .or_else(|| self.body.get("id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
    }

    /// Fails with the whole response unless the status is `expected`.
    pub fn expect(self, expected: StatusCode) -> anyhow::Result<Self> {
        if self.status != expected {
            bail!("expected {expected}, got {}: {}", self.status, self.body);
        }
        Ok(self)
    }
}

/// The coordinator, the four participant services and the proxies of one test.
pub struct Stack {
    binary: PathBuf,
    pub dir: PathBuf,
    pub backend: Backend,
    client: reqwest::Client,
    services: HashMap<Service, ServiceProcess>,
    proxies: HashMap<Service, Proxy>,
    coordinators: Vec<CoordinatorProcess>,
    /// URL of the saga store that every coordinator of this stack shares.
    pub store_url: String,
    store_link: Option<TcpLink>,
    /// Names of the PostgreSQL databases this stack created.
    databases: Vec<String>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        for process in self.processes_mut() {
            process.start_kill();
        }

        let keep = std::thread::panicking() || std::env::var_os(KEEP_DATABASES).is_some();
        if keep || self.databases.is_empty() {
            return;
        }

        // Drop runs inside the test's runtime, which cannot block on async work, so the
        // databases are dropped from a thread with its own runtime.
        let names = std::mem::take(&mut self.databases);
        let dropped = std::thread::spawn(move || drop_databases(&names)).join();
        if let Ok(Err(error)) = dropped {
            eprintln!("cannot drop the test databases: {error:#}");
        }
    }
}

/// Returns a port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

fn local_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Returns today's date in UTC, the date the services record for a contact.
pub fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

/// Returns a key that no other request of the suite uses.
pub fn new_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl Stack {
    /// Starts the four services, the proxies the options name and one coordinator with
    /// replica id `replica-a`, and waits until all of them are ready.
    pub async fn start(binary: &str, options: StackOptions) -> anyhow::Result<Self> {
        let dir = std::env::temp_dir().join(format!("e2e-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        // The test harness shows this only for a failed test.
        eprintln!("e2e process logs: {}", dir.display());
        let mut stack = Stack {
            binary: PathBuf::from(binary),
            dir,
            backend: options.backend,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            services: HashMap::new(),
            proxies: HashMap::new(),
            coordinators: Vec::new(),
            store_url: String::new(),
            store_link: None,
            databases: Vec::new(),
        };
        stack.store_url = stack.database_url("saga_store").await?;
        if options.store_link {
            let (url, link) = link_database(&stack.store_url).await?;
            stack.store_url = url;
            stack.store_link = Some(link);
        }
        let mut database_urls = HashMap::new();
        for service in Service::ALL {
            database_urls.insert(service, stack.database_url(service.name()).await?);
        }

        // The coordinator needs the participants' addresses, and the communication service
        // needs the coordinator's, so they start in that order.
        let (patient, therapist, matching) = tokio::try_join!(
            stack.launch_service(Service::Patient, None, &database_urls[&Service::Patient]),
            stack.launch_service(
                Service::Therapist,
                None,
                &database_urls[&Service::Therapist]
            ),
            stack.launch_service(Service::Matching, None, &database_urls[&Service::Matching]),
        )?;
        for (service, (port, process)) in [
            (Service::Patient, patient),
            (Service::Therapist, therapist),
            (Service::Matching, matching),
        ] {
            stack.insert_service(service, port, &database_urls, process);
        }
        for service in options.proxied {
            let proxy = Proxy::start(&stack.service_url(service)).await?;
            stack.proxies.insert(service, proxy);
        }
        stack.add_coordinator("replica-a").await?;
        let communication = &database_urls[&Service::Communication];
        let (port, process) = stack
            .launch_service(Service::Communication, None, communication)
            .await?;
        stack.insert_service(Service::Communication, port, &database_urls, process);
        Ok(stack)
    }

    fn insert_service(
        &mut self,
        service: Service,
        port: u16,
        database_urls: &HashMap<Service, String>,
        process: Process,
    ) {
        let database_url = database_urls[&service].clone();

        self.services.insert(
            service,
            ServiceProcess {
                port,
                database_url,
                process,
            },
        );
    }

    async fn database_url(&mut self, name: &str) -> anyhow::Result<String> {
        match self.backend {
            Backend::Postgres => {
                let url = kit::testing::create_postgres_database(&format!("e2e_{name}"))
                    .await
                    .context("cannot create a test database on 127.0.0.1:5432")?;
                if let Some((_, database)) = url.rsplit_once('/') {
                    self.databases.push(database.to_owned());
                }
                Ok(url)
            }
            Backend::Sqlite => Ok(format!(
                "sqlite://{}",
                self.dir.join(format!("{name}.db")).display()
            )),
        }
    }

    fn processes_mut(&mut self) -> impl Iterator<Item = &mut Process> {
        let services = self.services.values_mut().map(|entry| &mut entry.process);
        let coordinators = self.coordinators.iter_mut().map(|entry| &mut entry.process);
        services.chain(coordinators)
    }

    /// Returns the base URL of coordinator `index` (0 is the one `start` began with).
    pub fn coordinator_url(&self, index: usize) -> String {
        local_url(self.coordinators[index].port)
    }

    /// Returns the base URL of a participant service itself, not of its proxy.
    pub fn service_url(&self, service: Service) -> String {
        local_url(self.services[&service].port)
    }

    /// Returns the proxy in front of a participant; panics if the stack has none there.
    pub fn proxy(&self, service: Service) -> &Proxy {
        self.proxies
            .get(&service)
            .unwrap_or_else(|| panic!("no proxy in front of {}", service.name()))
    }

    /// Returns the database name of the saga store (PostgreSQL only).
    pub fn store_database_name(&self) -> anyhow::Result<String> {
        match self.backend {
            Backend::Postgres => self
                .store_url
                .rsplit_once('/')
                .map(|(_, name)| name.to_owned())
                .ok_or_else(|| anyhow!("store URL without a database name")),
            Backend::Sqlite => bail!("the SQLite store has no database name"),
        }
    }

    /// Makes the saga store unreachable: open connections break and new ones are refused.
    /// Needs `store_link` in the options.
    pub async fn cut_store(&self) -> anyhow::Result<()> {
        let link = self
            .store_link
            .as_ref()
            .context("the stack has no store link")?;
        link.cut().await;
        Ok(())
    }

    /// Makes the saga store reachable again after [`Stack::cut_store`].
    pub async fn restore_store(&self) -> anyhow::Result<()> {
        let link = self
            .store_link
            .as_ref()
            .context("the stack has no store link")?;
        link.restore().await
    }

    /// Returns the folder with the process logs.
    pub fn log_dir(&self) -> &Path {
        &self.dir
    }
}

/// Drops the named databases, ending their connections first.
fn drop_databases(names: &[String]) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    runtime.block_on(async {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| kit::testing::DEFAULT_ADMIN_URL.to_owned());
        let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
        for name in names {
            let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            admin.execute(statement.as_str()).await?;
        }

        admin.close().await?;
        Ok(())
    })
}

/// Starts a [`TcpLink`] to the server of a PostgreSQL URL and returns the URL that goes
/// through it.
async fn link_database(url: &str) -> anyhow::Result<(String, TcpLink)> {
    let (scheme, rest) = url
        .split_once("://")
        .context("database URL without a scheme")?;
    let (credentials, rest) = match rest.split_once('@') {
        Some((credentials, rest)) => (format!("{credentials}@"), rest),
        None => (String::new(), rest),
    };
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));

    let target = tokio::net::lookup_host(authority)
        .await
        .with_context(|| format!("cannot resolve {authority}"))?
        .next()
        .with_context(|| format!("{authority} has no address"))?;

    let link = TcpLink::start(target).await?;
    let linked = format!("{scheme}://{credentials}127.0.0.1:{}/{path}", link.port);
    Ok((linked, link))
}

/// Returns a JSON object without the named members, for comparing resources whose
/// timestamps may differ.
pub fn without(value: &Value, members: &[&str]) -> Value {
    let mut value = value.clone();
    if let Value::Object(object) = &mut value {
        for member in members {
            object.remove(*member);
        }
    }
    value
}
