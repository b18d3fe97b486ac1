-- From when each open dossier counts as overdue (domain.Dossier.due_at): the appointment, the
-- reception instant once a second supplementation was requested (overdue at once, index rule),
-- NULL while a supplementation wait pauses its clock. The overdue watch and the officers'
-- `overdue` filter read it instead of re-deriving the rule in SQL.
ALTER TABLE dossiers ADD COLUMN due_at timestamptz;
UPDATE dossiers SET due_at = CASE
    WHEN (state->>'supplement_requests')::int > 1 THEN received_at
    WHEN status = 5 AND (state->>'supplement_requested_at')::timestamptz <= appointment_at THEN NULL
    ELSE appointment_at END;
UPDATE dossiers SET watch = (ended_at IS NULL AND NOT overdue AND due_at IS NOT NULL);
DROP INDEX dossiers_watch;
CREATE INDEX dossiers_watch ON dossiers (due_at) WHERE watch;
