-- When each dossier row last changed. The overdue watch leaves a dossier alone until it has been
-- quiet for a moment, so a dossier whose history is still arriving (a historical import whose
-- steps land in consecutive batches) is judged on its whole history, not half of it.
ALTER TABLE dossiers ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
