-- While a supplementation request is outstanding, its instant: the end of processing for
-- timeliness (DOMAIN.md), so the index counts a dossier waiting after a request made in time as
-- on time, even once its original appointment has passed.
ALTER TABLE dossiers ADD COLUMN supplement_requested_at timestamptz;
