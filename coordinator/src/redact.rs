//! Reduces participant responses to ids, statuses and counts before they go into the saga
//! store, which must hold no personal data such as names, emails or phone numbers.

use serde_json::{Map, Value};

/// Keys kept besides `id` and those ending in `_id` or `_ids`.
const KEPT_KEYS: &[&str] = &[
    "status",
    "title",
    "detail",
    "field",
    "changed",
    "deleted",
    "letzter_kontakt",
    "gesperrt_seit",
    "forward_call",
    "restored",
    "skipped",
    "platzsuchen_abgebrochen",
    "anfragen_storniert",
    "anfragen_geaendert",
    "ausschluesse_hinzugefuegt",
    "ausschluesse_aufgehoben",
];

/// Returns `answer` with only the kept keys, recursively. Text that is not JSON is dropped.
pub fn ids_only(answer: &Value) -> Value {
    match answer {
        Value::Object(map) => {
            let kept: Map<String, Value> = map
                .iter()
                .filter(|(key, _)| is_kept(key))
                .map(|(key, value)| (key.clone(), ids_only(value)))
                .collect();
            Value::Object(kept)
        }
        Value::Array(items) => Value::Array(items.iter().map(ids_only).collect()),
        Value::String(_) => Value::String("(not JSON; omitted)".to_owned()),
        other => other.clone(),
    }
}

/// Returns whether `key` is kept: `id`, keys ending in `_id` or `_ids`, and [`KEPT_KEYS`].
fn is_kept(key: &str) -> bool {
    key == "id" || key.ends_with("_id") || key.ends_with("_ids") || KEPT_KEYS.contains(&key)
}

/// Reduces a response for storage: objects keep only kept keys with their values as they
/// are, so statuses and dates survive, while top-level text is dropped.
pub fn for_store(answer: &Value) -> Value {
    match answer {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(key, _)| is_kept(key))
                .map(|(key, value)| (key.clone(), keep_nested(value)))
                .collect(),
        ),
        other => ids_only(other),
    }
}

/// Reduces a nested value as [`ids_only`] does, but keeps strings inside kept keys.
fn keep_nested(value: &Value) -> Value {
    match value {
        Value::Object(_) => for_store(value),
        Value::Array(items) => Value::Array(items.iter().map(keep_nested).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn therapist_answer_keeps_ids_and_status_only() {
        let answer = json!({
            "id": 5, "vorname": "Erika", "nachname": "Beispiel", "email": "e@example.org",
            "telefon": "+49 30 000", "status": "gesperrt", "gesperrt_seit": "2026-12-04T10:00:00Z"
        });

        let stored = for_store(&answer);

        assert_eq!(
            stored,
            json!({"id": 5, "status": "gesperrt", "gesperrt_seit": "2026-12-04T10:00:00Z"})
        );
    }

    #[test]
    fn cascade_answer_keeps_nested_ids() {
        let answer =
            json!({"ausschluesse_hinzugefuegt": [{"platzsuche_id": 1, "therapist_id": 2}]});

        assert_eq!(for_store(&answer), answer);
    }

    #[test]
    fn plain_text_answer_is_dropped() {
        assert_eq!(
            for_store(&json!("Patient Erika")),
            json!("(not JSON; omitted)")
        );
    }
}
