-- Each dossier's current state, its timeline (the process control slip), consumed event ids
-- (idempotency) and the transactional outbox of status events.
CREATE TABLE dossiers (
    id              uuid PRIMARY KEY,
    code            text NOT NULL,
    competent_unit  text NOT NULL,
    receiving_unit  text NOT NULL,
    status          smallint NOT NULL,
    procedure_code  text NOT NULL,
    received_at     timestamptz NOT NULL,
    appointment_at  timestamptz NOT NULL,
    ended_at        timestamptz,
    overdue         boolean NOT NULL DEFAULT false,
    watch           boolean NOT NULL DEFAULT true,
    state           jsonb NOT NULL
);
CREATE INDEX dossiers_competent_received ON dossiers (competent_unit, received_at DESC, id);
CREATE INDEX dossiers_competent_status ON dossiers (competent_unit, status);
-- The overdue watch reads only open, not-yet-notified dossiers in deadline order.
CREATE INDEX dossiers_watch ON dossiers (appointment_at) WHERE watch;

CREATE TABLE timeline (
    id           bigserial PRIMARY KEY,
    dossier_id   uuid NOT NULL REFERENCES dossiers (id),
    occurred_at  timestamptz NOT NULL,
    status       smallint NOT NULL,
    note         text NOT NULL,
    actor        text,
    event_id     uuid NOT NULL
);
CREATE INDEX timeline_dossier ON timeline (dossier_id, occurred_at);

CREATE TABLE processed_events (
    event_id     uuid PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox (
    id     bigserial PRIMARY KEY,
    topic  text NOT NULL,
    key    bytea NOT NULL,
    value  bytea NOT NULL
);
CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('motcua_outbox', '');
    RETURN NULL;
END $$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
