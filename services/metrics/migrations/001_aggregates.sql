-- What metrics remembers per dossier (for exact transitions and the index), the exact counters
-- exposed to Prometheus, and the event ids already counted (idempotency).
CREATE TABLE dossiers (
    id                    uuid PRIMARY KEY,
    receiving_unit        text NOT NULL,
    competent_unit        text NOT NULL,
    receiving_province    text,
    competent_province    text,
    channel               text NOT NULL,
    status                smallint NOT NULL,
    received_at           timestamptz NOT NULL,
    appointment_at        timestamptz NOT NULL,
    ended_at              timestamptz,
    timeliness            text,
    elapsed_working_days  double precision,
    components_total      integer NOT NULL,
    components_digitized  integer NOT NULL,
    components_reused     integer NOT NULL,
    approved              boolean,
    result_electronic     boolean NOT NULL,
    digitized             boolean NOT NULL,
    overdue               boolean NOT NULL,
    satisfied             boolean,
    rated_at              timestamptz,
    last_event_at         timestamptz NOT NULL
);
CREATE INDEX dossiers_received ON dossiers (received_at);
CREATE INDEX dossiers_ended ON dossiers (ended_at);

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
