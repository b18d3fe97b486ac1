-- Exact aggregates of status events and the event ids already counted (idempotency).
CREATE TABLE counters (
    name    text NOT NULL,
    unit    text NOT NULL,
    label   text NOT NULL,
    value   bigint NOT NULL,
    PRIMARY KEY (name, unit, label)
);

CREATE TABLE processed_events (
    event_id     uuid PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
