-- Every version of the facts the index judges, each valid from the event time that made it
-- (valid_from) until the next version's (valid_to, NULL for the current one): a period is judged
-- on each dossier's facts as they stood at its end, so later events never move a closed period
-- (invariant 9). `dossiers` keeps the latest facts, for the counters and the gauges of now.
CREATE TABLE fact_versions (
    id                       uuid NOT NULL,
    valid_from               timestamptz NOT NULL,
    valid_to                 timestamptz,
    receiving_unit           text NOT NULL,
    competent_unit           text NOT NULL,
    receiving_province       text,
    competent_province       text,
    channel                  text NOT NULL,
    received_at              timestamptz NOT NULL,
    appointment_at           timestamptz NOT NULL,
    ended_at                 timestamptz,
    timeliness               text,
    supplement_requests      integer NOT NULL,
    supplement_requested_at  timestamptz,
    components_reused        integer NOT NULL,
    approved                 boolean,
    result_electronic        boolean NOT NULL,
    digitized                boolean NOT NULL,
    satisfied                boolean,
    rated_at                 timestamptz,
    PRIMARY KEY (id, valid_from)
);
-- The current version of a dossier, which the next event closes.
CREATE UNIQUE INDEX fact_versions_current ON fact_versions (id) WHERE valid_to IS NULL;

-- Facts counted before versions were kept: their history is unknown, so each dossier gets one
-- version valid since its reception (the latest facts, as the index read them until now).
-- `motcua metrics rebuild` recounts the exact versions from the status log.
INSERT INTO fact_versions
SELECT id, received_at, NULL, receiving_unit, competent_unit, receiving_province,
       competent_province, channel, received_at, appointment_at, ended_at, timeliness,
       supplement_requests, supplement_requested_at, components_reused, approved,
       result_electronic, digitized, satisfied, rated_at
FROM dossiers WHERE status <> 3;

-- What lets `/v1/index` skip the history before a period: a version counts in a period only while
-- it is in force and its dossier had not ended before the period, or was rated in it
-- (services/metrics/store.py, `_MATTERS_UNTIL`, the same expression).
CREATE INDEX fact_versions_matters ON fact_versions ((least(
    coalesce(valid_to, 'infinity'::timestamptz),
    greatest(coalesce(ended_at, 'infinity'::timestamptz), rated_at))));
