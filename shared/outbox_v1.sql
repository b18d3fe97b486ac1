-- The transactional outbox of one service's schema (shared/outbox.py writes and relays it),
-- included by a migration of each service that has one (`\ir`, see shared/db.py). Idempotent:
-- on a schema whose outbox older migrations made (intake's and processing's 001), it only
-- replaces the notification; the table is created here for a service that has none yet.
-- FROZEN: databases already ran it. A change to the outbox is a new file (outbox_v2.sql)
-- included by a new migration of each service (tests/unit/test_migrations.py pins this one).
CREATE TABLE IF NOT EXISTS outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         bytea NOT NULL,
    value       bytea NOT NULL,
    -- The insert itself, not the start of a long transaction: the age of the oldest unpublished
    -- event (motcua_outbox_oldest_age_seconds).
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);

-- Wakes the relay of this schema only: its channel is named after the schema
-- (shared.outbox.channel); one channel for every service made each one's inserts wake the
-- other's relay.
CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('motcua_outbox_' || TG_TABLE_SCHEMA, '');
    RETURN NULL;
END $$;

-- Once per statement, however many events it writes. Created only where missing: dropping and
-- recreating it would lock the outbox against writers and the relay.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger
        WHERE tgname = 'outbox_notify' AND tgrelid = 'outbox'::regclass
    ) THEN
        CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
            FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
    END IF;
END $$;
