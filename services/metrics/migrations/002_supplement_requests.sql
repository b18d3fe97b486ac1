-- How many supplementations were requested: more than one makes a dossier overdue at once (index
-- rule), which the index's on-time count of open dossiers needs to know.
ALTER TABLE dossiers ADD COLUMN supplement_requests integer NOT NULL DEFAULT 0;
