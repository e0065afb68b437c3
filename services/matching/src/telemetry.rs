//! Names of the metrics this service records, described once at start.

/// Duration of a cascade or its compensation, labelled by `operation`.
pub const CASCADE_DURATION: &str = "cascade_operation_duration_seconds";

/// Cascade and compensation calls, labelled by `operation` and `outcome`.
pub const CASCADE_OPERATIONS: &str = "cascade_operations_total";

/// Describes the metrics so that `/metrics` lists their help text.
pub fn describe_metrics() {
    metrics::describe_histogram!(
        CASCADE_DURATION,
        metrics::Unit::Seconds,
        "Time a cascade or compensation call took, including its database transaction"
    );
    metrics::describe_counter!(
        CASCADE_OPERATIONS,
        "Cascade and compensation calls by operation and outcome: completed, replayed, \
         rejected (4xx) or failed (5xx)"
    );
}
