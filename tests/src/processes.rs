//! Starting, stopping and killing the stack's processes, and waiting until they are ready.

use std::fs::OpenOptions;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

use crate::{
    free_port, local_url, Service, Stack, COORDINATOR_TIMINGS, POLL_INTERVAL, READY_TIMEOUT,
};

/// Attempts to start a process on a newly picked port before giving up. Another test can
/// take a port from [`free_port`] before the process binds it. The process then exits, so the
/// next attempt picks another port.
const PORT_ATTEMPTS: u32 = 3;

/// Text that every service and the coordinator log once they have bound their port.
const LISTENING_LINE: &str = "listening";

/// A child process of the `e2e-stack` binary and its log file.
pub(crate) struct Process {
    name: String,
    child: Option<Child>,
    log_path: PathBuf,
    /// Length of the log file before this process started, or `None` when the output is
    /// not written to the file (`TEST_LOG`).
    log_start: Option<u64>,
}

impl Process {
    fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends SIGKILL without waiting for the process to end.
    pub(crate) fn start_kill(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.start_kill();
        }
    }

    /// Kills the process with SIGKILL and waits until it is gone.
    pub(crate) async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child
                .kill()
                .await
                .with_context(|| format!("cannot kill {}", self.name))?;
        }
        Ok(())
    }

    /// Returns whether this run of the process logged that it has bound its port. Another
    /// test's process on the same port also returns 200 from `/readyz`, so that response alone
    /// does not prove that this process is the one listening. Without a log file it returns true.
    fn has_bound(&self) -> bool {
        let Some(start) = self.log_start else {
            return true;
        };
        let mut text = String::new();
        let read = std::fs::File::open(&self.log_path).and_then(|mut file| {
            file.seek(SeekFrom::Start(start))?;
            file.read_to_string(&mut text)
        });
        read.is_ok() && text.contains(LISTENING_LINE)
    }
}

pub(crate) struct ServiceProcess {
    pub port: u16,
    pub database_url: String,
    pub process: Process,
}

pub(crate) struct CoordinatorProcess {
    pub port: u16,
    pub replica_id: String,
    pub process: Process,
}

impl Stack {
    /// Spawns a command with its output appended to `{name}.log` in the test's folder, or
    /// passed through with `TEST_LOG` set.
    fn spawn(&self, name: &str, command: &mut Command) -> anyhow::Result<Process> {
        let log_path = self.dir.join(format!("{name}.log"));
        let (stdout, stderr, log_start) = if std::env::var_os("TEST_LOG").is_some() {
            (Stdio::inherit(), Stdio::inherit(), None)
        } else {
            let mut file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("cannot open {}", log_path.display()))?;
            writeln!(file, "==== {name} starts ====")?;
            let start = file.metadata()?.len();
            let stderr = file.try_clone()?;
            (Stdio::from(file), Stdio::from(stderr), Some(start))
        };

        if std::env::var_os("RUST_LOG").is_none() {
            // The readiness check reads the info line that reports the bound port.
            command.env("RUST_LOG", "info,sqlx=warn");
        }

        let child = command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {name} from {}", self.binary.display()))?;

        Ok(Process {
            name: name.to_owned(),
            child: Some(child),
            log_path,
            log_start,
        })
    }

    /// Polls until the process has bound its port and returns 200 from `/readyz`. Fails
    /// when the process exits or the deadline passes.
    async fn wait_until_ready(&self, port: u16, process: &mut Process) -> anyhow::Result<()> {
        let url = format!("{}/readyz", local_url(port));
        let deadline = tokio::time::Instant::now() + READY_TIMEOUT;

        loop {
            if process.has_bound() {
                let ready = self
                    .client
                    .get(&url)
                    .timeout(std::time::Duration::from_secs(1))
                    .send()
                    .await
                    .is_ok_and(|answer| answer.status().is_success());
                if ready {
                    return Ok(());
                }
            }

            if !process.is_running() {
                bail!(
                    "{} exited before it became ready on port {port}; see {}",
                    process.name,
                    process.log_path.display()
                );
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} was not ready on port {port} within {READY_TIMEOUT:?}; see {}",
                    process.name,
                    process.log_path.display()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Starts the command that `command` builds for a port and waits until the process is
    /// ready. With `fixed_port` it uses that port once; otherwise it picks a free one and
    /// picks another when the process exits before it is ready.
    async fn launch(
        &self,
        name: &str,
        fixed_port: Option<u16>,
        command: impl Fn(u16) -> Command,
    ) -> anyhow::Result<(u16, Process)> {
        let mut attempt = 1;
        loop {
            let port = match fixed_port {
                Some(port) => port,
                None => free_port()?,
            };

            let mut process = self.spawn(name, &mut command(port))?;
            match self.wait_until_ready(port, &mut process).await {
                Ok(()) => return Ok((port, process)),
                Err(error) => {
                    let may_retry = fixed_port.is_none() && attempt < PORT_ATTEMPTS;
                    if !may_retry || process.is_running() {
                        return Err(error);
                    }
                    attempt += 1;
                }
            }
        }
    }

    fn service_command(
        &self,
        service: Service,
        port: u16,
        database_url: &str,
        coordinator_port: u16,
    ) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("participant")
            .arg(service.name())
            .arg("--database-url")
            .arg(database_url)
            .arg("--bind-addr")
            .arg(format!("127.0.0.1:{port}"))
            .env_remove("DATABASE_URL")
            .env_remove("BIND_ADDR");

        if service == Service::Communication {
            command
                .arg("--coordinator-url")
                .arg(local_url(coordinator_port))
                .arg("--outbox-poll-interval-ms")
                .arg("200");
        }

        command
    }

    fn coordinator_command(&self, replica_id: &str, port: u16) -> Command {
        let participant_url = |service: Service| match self.proxies.get(&service) {
            Some(proxy) => proxy.url.clone(),
            None => self.service_url(service),
        };

        let mut command = Command::new(&self.binary);
        command
            .arg("serve")
            .env("DATABASE_URL", &self.store_url)
            .env("BIND_ADDR", format!("127.0.0.1:{port}"))
            .env("PATIENT_SERVICE_URL", participant_url(Service::Patient))
            .env("THERAPIST_SERVICE_URL", participant_url(Service::Therapist))
            .env("MATCHING_SERVICE_URL", participant_url(Service::Matching))
            .env("REPLICA_ID", replica_id)
            .envs(COORDINATOR_TIMINGS);

        command
    }

    /// Starts a participant service on a free port (or `fixed_port`) and its database.
    pub(crate) async fn launch_service(
        &self,
        service: Service,
        fixed_port: Option<u16>,
        database_url: &str,
    ) -> anyhow::Result<(u16, Process)> {
        let coordinator_port = self.coordinators.first().map_or(0, |c| c.port);
        self.launch(service.name(), fixed_port, |port| {
            self.service_command(service, port, database_url, coordinator_port)
        })
        .await
    }

    /// Starts a coordinator on a free port (or `fixed_port`).
    pub(crate) async fn launch_coordinator(
        &self,
        replica_id: &str,
        fixed_port: Option<u16>,
    ) -> anyhow::Result<(u16, Process)> {
        let name = format!("coordinator-{replica_id}");
        self.launch(&name, fixed_port, |port| {
            self.coordinator_command(replica_id, port)
        })
        .await
    }

    fn service_entry(&mut self, service: Service) -> &mut ServiceProcess {
        self.services
            .get_mut(&service)
            .expect("every service is part of the stack")
    }

    /// Kills a participant service (SIGKILL). Its port and database stay for a restart.
    pub async fn stop_service(&mut self, service: Service) -> anyhow::Result<()> {
        self.service_entry(service).process.kill().await
    }

    /// Starts a stopped participant service again on its port and database.
    pub async fn start_service(&mut self, service: Service) -> anyhow::Result<()> {
        let (port, database_url) = {
            let entry = self.service_entry(service);
            (entry.port, entry.database_url.clone())
        };
        let (_, process) = self
            .launch_service(service, Some(port), &database_url)
            .await?;
        self.service_entry(service).process = process;
        Ok(())
    }

    /// Starts another coordinator on the same saga store and participants and returns its
    /// index for [`Stack::coordinator_url`].
    pub async fn add_coordinator(&mut self, replica_id: &str) -> anyhow::Result<usize> {
        let (port, process) = self.launch_coordinator(replica_id, None).await?;
        self.coordinators.push(CoordinatorProcess {
            port,
            replica_id: replica_id.to_owned(),
            process,
        });
        Ok(self.coordinators.len() - 1)
    }

    /// Kills coordinator `index` with SIGKILL, as a crash would.
    pub async fn kill_coordinator(&mut self, index: usize) -> anyhow::Result<()> {
        self.coordinators[index].process.kill().await
    }

    /// Starts coordinator `index` again with its port and replica id.
    pub async fn restart_coordinator(&mut self, index: usize) -> anyhow::Result<()> {
        let (replica_id, port) = {
            let entry = &self.coordinators[index];
            (entry.replica_id.clone(), entry.port)
        };
        let (_, process) = self.launch_coordinator(&replica_id, Some(port)).await?;
        self.coordinators[index].process = process;
        Ok(())
    }
}
