-- The event log partitioned by month of `at`, so retention drops whole months (detach and
-- drop: no DELETE, no bloat, no vacuum debt) while a month being written stays small.
-- PostgreSQL needs the partition key in every unique key: (restaurant_id, seq, at). Seqs stay
-- unique per restaurant by construction (the counter row hands each one out once).

-- Seqs up to here may be gone (their month was dropped): a client behind it resets. The log
-- is numbered in lock order but dated at transaction start, so a dropped month can hold a
-- seq above one still kept; the mark, not min(seq), says where the unbroken log begins.
ALTER TABLE restaurants ADD COLUMN purged_through_seq bigint NOT NULL DEFAULT 0;
UPDATE restaurants r SET purged_through_seq = coalesce(
    (SELECT min(seq) - 1 FROM events e WHERE e.restaurant_id = r.id), r.seq);

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER INDEX events_at RENAME TO events_unpartitioned_at;

CREATE TABLE events (
    restaurant_id  bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    seq            bigint NOT NULL,
    epoch          uuid NOT NULL,
    channel        text NOT NULL,
    name           text NOT NULL,
    data           jsonb NOT NULL DEFAULT '{}',
    at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, seq, at)
) PARTITION BY RANGE (at);
CREATE INDEX events_at ON events (restaurant_id, at);
-- A row with no month to go to lands here rather than fail a write; the upkeep task moves
-- such rows into their month when it creates it.
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- A month (UTC) for every month with events, and the current and next two.
DO $$
DECLARE
    month timestamp;
BEGIN
    FOR month IN
        SELECT generate_series(
            date_trunc('month', least(coalesce((SELECT min(at) FROM events_unpartitioned), now()),
                                      now()) AT TIME ZONE 'UTC'),
            date_trunc('month', now() AT TIME ZONE 'UTC') + interval '2 months', interval '1 month')
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                       'events_' || to_char(month, 'YYYY_MM'), month AT TIME ZONE 'UTC',
                       (month + interval '1 month') AT TIME ZONE 'UTC');
    END LOOP;
END $$;

INSERT INTO events SELECT restaurant_id, seq, epoch, channel, name, data, at FROM events_unpartitioned;
DROP TABLE events_unpartitioned;
