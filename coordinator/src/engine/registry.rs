//! The sagas this process drives right now, each with a channel of its latest status so
//! that a waiting command learns the outcome without polling the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::saga::SagaStatus;
use crate::store::{SagaRecord, StepRecord};

/// The latest state of a saga that its task published after a commit.
#[derive(Debug, Clone)]
pub struct SagaSnapshot {
    pub status: SagaStatus,
    /// The saga and its steps as committed; absent until the task loaded them.
    pub records: Option<Arc<(SagaRecord, Vec<StepRecord>)>>,
}

/// Sagas driven by this process.
#[derive(Default)]
pub struct Registry {
    running: Mutex<HashMap<String, Arc<watch::Sender<SagaSnapshot>>>>,
}

impl Registry {
    /// Registers a saga about to be driven and returns its status channel, or `None` when
    /// a task of this process drives it already.
    pub(super) fn begin(&self, saga_id: &str) -> Option<Arc<watch::Sender<SagaSnapshot>>> {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());

        if running.contains_key(saga_id) {
            return None;
        }

        let sender = Arc::new(
            watch::channel(SagaSnapshot {
                status: SagaStatus::Running,
                records: None,
            })
            .0,
        );

        running.insert(saga_id.to_owned(), Arc::clone(&sender));
        Some(sender)
    }

    pub(super) fn end(&self, saga_id: &str) {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        running.remove(saga_id);
    }

    /// Returns a receiver of the saga's status while this process drives it.
    pub fn subscribe(&self, saga_id: &str) -> Option<watch::Receiver<SagaSnapshot>> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        running.get(saga_id).map(|sender| sender.subscribe())
    }

    /// Returns the ids of every saga this process drives, for lease renewal.
    pub fn ids(&self) -> Vec<String> {
        let running = self
            .running
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        running.keys().cloned().collect()
    }
}
