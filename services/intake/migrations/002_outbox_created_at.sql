-- When each event was written, so the relay can report the age of the oldest unpublished one
-- (motcua_outbox_oldest_age_seconds). clock_timestamp(): the insert itself, not the start of a
-- long transaction. Every writer names its columns, so the default applies to all of them.
-- Added with now() first: a stable default is a catalogue change, while a volatile one would
-- rewrite the table under an exclusive lock (receptions blocked while a large backlog is copied).
ALTER TABLE outbox ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE outbox ALTER COLUMN created_at SET DEFAULT clock_timestamp();
