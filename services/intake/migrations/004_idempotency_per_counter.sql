-- An Idempotency-Key is the counter's own (the token's subject) within its unit, no longer the
-- unit's: two counters of one unit picking the same key must not get each other's receipt.
-- `received_by` is the counter that received the dossier ("import" for the importer). Dossiers
-- stored without it (before this migration, or by a pod of the previous release during the
-- rolling update) get '' (a constant default: no table rewrite), which no counter's subject
-- matches: a retry of such a request after the upgrade is received as a new dossier.
ALTER TABLE dossiers ADD COLUMN received_by text NOT NULL DEFAULT '';
ALTER TABLE dossiers DROP CONSTRAINT dossiers_receiving_unit_idempotency_key_key;
-- Only keyed dossiers need the index (most receptions send no key). Built in the migration's
-- transaction: receptions wait for it once, at the upgrade.
CREATE UNIQUE INDEX dossiers_counter_idempotency_key
    ON dossiers (receiving_unit, received_by, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
