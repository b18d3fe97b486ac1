-- The outbox's DDL now lives in shared/ (one definition for every service): here it replaces
-- the notification, which goes to this schema's own channel instead of the one both services
-- shared.
\ir ../../../shared/outbox_v1.sql
