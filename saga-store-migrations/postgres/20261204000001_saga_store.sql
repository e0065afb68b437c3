-- The coordinator's saga store. Ids, statuses and timings only: no names, emails, phone
-- numbers or addresses. Times that the coordinator compares are unix milliseconds (BIGINT);
-- times that operators read are RFC 3339 text.

CREATE TABLE sagas (
    id TEXT PRIMARY KEY,
    saga_type TEXT NOT NULL,
    status TEXT NOT NULL,
    phase TEXT NOT NULL,
    entity_type TEXT NOT NULL,
    entity_id BIGINT NOT NULL,
    entity_lock TEXT UNIQUE,
    payload TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    dedupe_key TEXT UNIQUE,
    request_hash TEXT NOT NULL,
    current_step BIGINT NOT NULL,
    failed_rounds BIGINT NOT NULL DEFAULT 0,
    outcome_reason TEXT,
    failure_kind TEXT,
    next_attempt_at BIGINT,
    lease_owner TEXT,
    lease_expires_at BIGINT,
    trace_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    finished_at TEXT
);

CREATE INDEX sagas_due ON sagas (next_attempt_at)
    WHERE status IN ('running', 'compensating', 'needs_attention');
CREATE INDEX sagas_entity ON sagas (entity_type, entity_id);
CREATE INDEX sagas_status ON sagas (status);
CREATE INDEX sagas_lease_owner ON sagas (lease_owner) WHERE lease_owner IS NOT NULL;

CREATE TABLE saga_steps (
    saga_id TEXT NOT NULL REFERENCES sagas (id),
    step_index BIGINT NOT NULL,
    name TEXT NOT NULL,
    participant TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    possibly_applied BIGINT NOT NULL DEFAULT 0,
    started_at TEXT,
    finished_at TEXT,
    duration_ms BIGINT,
    last_status_code BIGINT,
    last_answer TEXT,
    last_error TEXT,
    compensation_status TEXT NOT NULL,
    compensation_attempts BIGINT NOT NULL DEFAULT 0,
    compensation_started_at TEXT,
    compensation_finished_at TEXT,
    compensation_status_code BIGINT,
    compensation_answer TEXT,
    compensation_error TEXT,
    PRIMARY KEY (saga_id, step_index)
);
