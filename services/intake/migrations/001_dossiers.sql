-- Dossiers received at the counters, their daily code sequences and the transactional outbox.
CREATE TABLE dossiers (
    id              uuid PRIMARY KEY,
    code            text NOT NULL UNIQUE,
    receiving_unit  text NOT NULL,
    competent_unit  text NOT NULL,
    procedure_code  text NOT NULL,
    channel         text NOT NULL,
    applicant_kind  text NOT NULL,
    applicant_ref   text NOT NULL,
    applicant_name  text NOT NULL,
    received_at     timestamptz NOT NULL,
    appointment_at  timestamptz,
    components      jsonb NOT NULL,
    -- The status as processing last reported it (a read model fed by status events), so the
    -- counter can refuse an impossible action at once; processing stays the authority.
    status          smallint NOT NULL,
    status_at       timestamptz,
    rated           boolean NOT NULL DEFAULT false,
    refusal_reason  text,
    idempotency_key text,
    request_hash    text,
    UNIQUE (receiving_unit, idempotency_key)
);
CREATE INDEX dossiers_unit_received ON dossiers (receiving_unit, received_at);

CREATE TABLE daily_sequences (
    unit  text NOT NULL,
    day   date NOT NULL,
    last  integer NOT NULL,
    PRIMARY KEY (unit, day)
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
