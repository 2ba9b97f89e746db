-- Merged tables and split checks.

-- A table pushed against another for a large party: it joins that (main) table's party, takes
-- its status and has no turn of its own while merged, so the party's turn and covers are the
-- main table's and count once.
ALTER TABLE dining_tables ADD COLUMN merged_into bigint,
    ADD FOREIGN KEY (restaurant_id, merged_into) REFERENCES dining_tables (restaurant_id, id),
    ADD CHECK (merged_into <> id);
CREATE INDEX dining_tables_merged ON dining_tables (restaurant_id, merged_into)
    WHERE merged_into IS NOT NULL;

-- An order split into checks paid separately: by items, by seats or evenly. `lines` are what the
-- check covers, as shown to the guest: [{"item_id", "name", "qty", "amount_minor", "share"}]
-- (item_id null and share "1/3" for an even split's one line). A split is replaced as a whole
-- while nothing of it is paid.
CREATE TABLE checks (
    restaurant_id   bigint NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    order_id        bigint NOT NULL,
    number          integer NOT NULL CHECK (number BETWEEN 1 AND 100),
    split_by        text NOT NULL CHECK (split_by IN ('items', 'seats', 'even')),
    seat            integer CHECK (seat BETWEEN 1 AND 100),  -- split by seats: whose check
    lines           jsonb NOT NULL DEFAULT '[]',
    subtotal_minor  integer NOT NULL CHECK (subtotal_minor >= 0),
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'paid')),
    payment         jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    paid_at         timestamptz,
    version         integer NOT NULL DEFAULT 1,
    PRIMARY KEY (restaurant_id, id),
    UNIQUE (restaurant_id, order_id, number),
    -- Old orders are purged once rolled up (store/order_retention.py); their checks go with them.
    FOREIGN KEY (restaurant_id, order_id) REFERENCES orders (restaurant_id, id) ON DELETE CASCADE,
    CHECK ((status = 'paid') = (paid_at IS NOT NULL AND payment IS NOT NULL))
);
