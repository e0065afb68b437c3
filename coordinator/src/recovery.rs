//! Recovery: each replica periodically renews the leases of the sagas it drives, claims
//! unfinished sagas that are due and whose lease is free or expired, and refreshes the
//! gauge of unfinished sagas. At start it first resumes the sagas that an earlier process
//! with the same replica id left behind.

use std::sync::Arc;

use tokio::sync::watch;

use crate::engine::Engine;
use crate::metrics;
use crate::saga::SagaStatus;

/// Sagas claimed per sweep.
const CLAIM_BATCH: i64 = 100;

/// Runs sweeps until `shutdown` changes.
pub async fn run_sweeper(engine: Arc<Engine>, mut shutdown: watch::Receiver<bool>) {
    match engine.store.expire_own_leases(&engine.replica_id).await {
        Ok(0) => {}
        Ok(count) => tracing::info!(count, "resuming sagas of an earlier run of this replica"),
        Err(error) => tracing::warn!(error = %error, "cannot release leases of an earlier run"),
    }

    let mut consecutive_failures: u32 = 0;
    loop {
        match sweep(&engine).await {
            Ok(()) => {
                if consecutive_failures > 0 {
                    tracing::info!(consecutive_failures, "saga store reachable again");
                }
                consecutive_failures = 0;
            }
            Err(error) => {
                consecutive_failures += 1;
                // The first failure and then every tenth, so that an outage does not flood.
                if consecutive_failures == 1 || consecutive_failures.is_multiple_of(10) {
                    tracing::warn!(error = %error, consecutive_failures, "sweep failed");
                }
            }
        }

        tokio::select! {
            () = tokio::time::sleep(engine.settings.sweep_interval()) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn sweep(engine: &Arc<Engine>) -> Result<(), crate::store::StoreError> {
    let driven = engine.registry.ids();
    if !driven.is_empty() {
        engine
            .store
            .renew_leases(&engine.replica_id, &driven, engine.lease_ms())
            .await?;
    }

    let claimed = engine
        .store
        .claim_due(&engine.replica_id, engine.lease_ms(), CLAIM_BATCH)
        .await?;
    for saga in claimed {
        engine.spawn(saga.id, saga.from_expired_lease);
    }

    let counts = engine.store.count_unfinished().await?;
    for status in [
        SagaStatus::Running,
        SagaStatus::Compensating,
        SagaStatus::NeedsAttention,
    ] {
        let count = counts
            .iter()
            .find(|(counted, _)| *counted == status)
            .map_or(0, |(_, count)| *count);
        metrics::active_sagas(status.as_str(), count);
    }
    Ok(())
}
