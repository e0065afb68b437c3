//! Metrics of the therapist service, described once at start.

use crate::therapists::TherapistStatus;

/// Counter of status changes of existing therapists, labelled with the new status (`to`).
pub const STATUS_CHANGES_TOTAL: &str = "therapist_status_changes_total";

/// Registers the descriptions of the service's metrics with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        STATUS_CHANGES_TOTAL,
        "Status changes of existing therapists, by new status (label to)"
    );
}

/// Counts one status change to `to`.
pub fn record_status_change(to: TherapistStatus) {
    metrics::counter!(STATUS_CHANGES_TOTAL, "to" => to.as_str()).increment(1);
}
