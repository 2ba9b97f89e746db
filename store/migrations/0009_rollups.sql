-- Daily rollups: each restaurant day's figures, kept so reports read one row a day and stay
-- true after old orders are gone. A party that moves tables keeps one stay across its turns.

-- The first turn of a party's stay, on every later turn after a move (NULL on the first).
ALTER TABLE table_turns ADD COLUMN stay_id bigint;
ALTER TABLE table_turns ADD FOREIGN KEY (restaurant_id, stay_id) REFERENCES table_turns (restaurant_id, id);
CREATE INDEX table_turns_stay ON table_turns (restaurant_id, stay_id) WHERE stay_id IS NOT NULL;
CREATE INDEX table_turns_freed ON table_turns (restaurant_id, freed_at) WHERE freed_at IS NOT NULL;
CREATE INDEX waitlist_seated ON waitlist_parties (restaurant_id, seated_at) WHERE status = 'seated';

CREATE TABLE daily_rollups (
    restaurant_id  bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    day            date NOT NULL,        -- the restaurant's local day
    figures        jsonb NOT NULL,       -- the report's day, as answered
    through_seq    bigint NOT NULL,      -- the restaurant's seq the figures reflect
    computed_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, day)
);
