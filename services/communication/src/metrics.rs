//! Names of the service's own metrics. The HTTP request metrics come from `kit::server`.

/// Gauge: contact reports waiting for delivery to the coordinator.
pub const CONTACT_OUTBOX_PENDING: &str = "contact_outbox_pending";

/// Counter of delivery attempts by `outcome`: `delivered`, `rejected` or `retried`.
pub const CONTACT_REPORTS_TOTAL: &str = "contact_reports_total";

/// Registers the descriptions of the metrics above. Call it after the recorder is installed.
pub fn describe() {
    metrics::describe_gauge!(
        CONTACT_OUTBOX_PENDING,
        "Contact reports waiting for delivery to the coordinator"
    );
    metrics::describe_counter!(
        CONTACT_REPORTS_TOTAL,
        "Contact report delivery attempts by outcome: delivered, rejected or retried"
    );
}
