-- The live service: table turns, waitlist, reservations, orders, kitchen tickets,
-- and idempotency keys. State machines are data (the *_transitions tables), so a
-- status change is one UPDATE that only matches a legal step.

ALTER TABLE restaurants
    ADD COLUMN settings jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN version  integer NOT NULL DEFAULT 1;

-- Floor ----------------------------------------------------------------------

CREATE TABLE table_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO table_transitions VALUES
    ('free', 'seated'), ('free', 'blocked'),
    ('seated', 'ordering'), ('seated', 'dirty'), ('seated', 'free'),
    ('ordering', 'waiting_food'), ('ordering', 'eating'), ('ordering', 'paying'), ('ordering', 'dirty'),
    ('waiting_food', 'eating'), ('waiting_food', 'ordering'),
    ('eating', 'ordering'), ('eating', 'waiting_food'), ('eating', 'paying'),
    ('paying', 'dirty'), ('paying', 'free'),
    ('dirty', 'free'),
    ('blocked', 'free');

-- One row per party at a table, seat to free, with a timestamp per step: table
-- turns and covers are facts, not guesses.
CREATE TABLE table_turns (
    restaurant_id    bigint NOT NULL,
    id               bigint GENERATED ALWAYS AS IDENTITY,
    table_id         bigint NOT NULL,
    party_size       integer CHECK (party_size BETWEEN 1 AND 100),
    seated_at        timestamptz NOT NULL DEFAULT now(),
    ordering_at      timestamptz,
    waiting_food_at  timestamptz,
    eating_at        timestamptz,
    paying_at        timestamptz,
    dirty_at         timestamptz,
    freed_at         timestamptz,
    PRIMARY KEY (restaurant_id, id),
    FOREIGN KEY (restaurant_id, table_id) REFERENCES dining_tables (restaurant_id, id)
);
CREATE INDEX table_turns_seated ON table_turns (restaurant_id, seated_at);
CREATE INDEX table_turns_open ON table_turns (restaurant_id, table_id) WHERE freed_at IS NULL;

ALTER TABLE dining_tables ADD COLUMN turn_id bigint;
ALTER TABLE dining_tables ADD FOREIGN KEY (restaurant_id, turn_id) REFERENCES table_turns (restaurant_id, id);

-- Waitlist -------------------------------------------------------------------

CREATE TABLE waitlist_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO waitlist_transitions VALUES
    ('waiting', 'notified'), ('waiting', 'seated'), ('waiting', 'left'), ('waiting', 'no_show'),
    ('notified', 'seated'), ('notified', 'left'), ('notified', 'no_show');

CREATE TABLE waitlist_parties (
    restaurant_id   bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    size            integer NOT NULL CHECK (size BETWEEN 1 AND 100),
    phone           text CHECK (length(phone) <= 40),
    note            text NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    quoted_minutes  integer CHECK (quoted_minutes BETWEEN 0 AND 600),
    status          text NOT NULL DEFAULT 'waiting' CHECK (status IN (
                        'waiting', 'notified', 'seated', 'left', 'no_show')),
    table_id        bigint,
    joined_at       timestamptz NOT NULL DEFAULT now(),
    notified_at     timestamptz,
    seated_at       timestamptz,
    left_at         timestamptz,
    version         integer NOT NULL DEFAULT 1,
    PRIMARY KEY (restaurant_id, id),
    FOREIGN KEY (restaurant_id, table_id) REFERENCES dining_tables (restaurant_id, id)
);
CREATE INDEX waitlist_open ON waitlist_parties (restaurant_id, id)
    WHERE status IN ('waiting', 'notified');
CREATE INDEX waitlist_joined ON waitlist_parties (restaurant_id, joined_at);

-- Reservations ---------------------------------------------------------------

CREATE TABLE reservation_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO reservation_transitions VALUES
    ('booked', 'confirmed'), ('booked', 'seated'), ('booked', 'cancelled'), ('booked', 'no_show'),
    ('confirmed', 'seated'), ('confirmed', 'cancelled'), ('confirmed', 'no_show'),
    ('seated', 'completed');

CREATE TABLE reservations (
    restaurant_id  bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    phone          text CHECK (length(phone) <= 40),
    note           text NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    size           integer NOT NULL CHECK (size BETWEEN 1 AND 100),
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    table_id       bigint,
    status         text NOT NULL DEFAULT 'booked' CHECK (status IN (
                       'booked', 'confirmed', 'seated', 'completed', 'cancelled', 'no_show')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    status_changed_at timestamptz NOT NULL DEFAULT now(),
    version        integer NOT NULL DEFAULT 1,
    PRIMARY KEY (restaurant_id, id),
    FOREIGN KEY (restaurant_id, table_id) REFERENCES dining_tables (restaurant_id, id),
    CHECK (ends_at > starts_at),
    -- A table can never be double-booked: live reservations of one table never overlap.
    CONSTRAINT reservations_no_double_booking EXCLUDE USING gist (
        restaurant_id WITH =, table_id WITH =, tstzrange(starts_at, ends_at, '[)') WITH &&
    ) WHERE (table_id IS NOT NULL AND status IN ('booked', 'confirmed', 'seated'))
);
CREATE INDEX reservations_day ON reservations (restaurant_id, starts_at, id);

-- Orders and items -----------------------------------------------------------

CREATE TABLE orders (
    restaurant_id  bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    table_id       bigint,
    party_id       bigint,
    server_id      bigint REFERENCES users ON DELETE SET NULL,
    guests         integer CHECK (guests BETWEEN 1 AND 100),
    note           text NOT NULL DEFAULT '' CHECK (length(note) <= 500),
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    fired_course   integer NOT NULL DEFAULT 0,
    payment        jsonb,
    created_at     timestamptz NOT NULL DEFAULT now(),
    closed_at      timestamptz,
    version        integer NOT NULL DEFAULT 1,
    PRIMARY KEY (restaurant_id, id),
    FOREIGN KEY (restaurant_id, table_id) REFERENCES dining_tables (restaurant_id, id),
    FOREIGN KEY (restaurant_id, party_id) REFERENCES waitlist_parties (restaurant_id, id),
    CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE INDEX orders_open ON orders (restaurant_id, id) WHERE status = 'open';
CREATE INDEX orders_closed ON orders (restaurant_id, closed_at) WHERE status = 'closed';
CREATE INDEX orders_created ON orders (restaurant_id, created_at);
CREATE INDEX orders_table ON orders (restaurant_id, table_id) WHERE status = 'open';

CREATE TABLE tickets (
    restaurant_id  bigint NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    order_id       bigint NOT NULL,
    station        text NOT NULL,
    course         integer NOT NULL,
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'started', 'bumped')),
    fired_at       timestamptz NOT NULL DEFAULT now(),
    started_at     timestamptz,
    bumped_at      timestamptz,
    recalled_at    timestamptz,
    version        integer NOT NULL DEFAULT 1,
    PRIMARY KEY (restaurant_id, id),
    FOREIGN KEY (restaurant_id, order_id) REFERENCES orders (restaurant_id, id)
);
CREATE INDEX tickets_open ON tickets (restaurant_id, station, id) WHERE status <> 'bumped';
CREATE INDEX tickets_open_all ON tickets (restaurant_id, id) WHERE status <> 'bumped';
CREATE INDEX tickets_order ON tickets (restaurant_id, order_id);
CREATE INDEX tickets_bumped ON tickets (restaurant_id, bumped_at) WHERE status = 'bumped';

CREATE TABLE order_items (
    restaurant_id     bigint NOT NULL,
    id                bigint GENERATED ALWAYS AS IDENTITY,
    order_id          bigint NOT NULL,
    menu_item_id      bigint NOT NULL,
    name              text NOT NULL,
    station           text NOT NULL,
    qty               integer NOT NULL CHECK (qty BETWEEN 1 AND 99),
    unit_price_minor  integer NOT NULL CHECK (unit_price_minor >= 0),
    modifiers         jsonb NOT NULL DEFAULT '[]',  -- [{"id", "name", "price_delta_minor"}] as ordered
    modifiers_minor   integer NOT NULL DEFAULT 0,
    line_total_minor  integer GENERATED ALWAYS AS (qty * (unit_price_minor + modifiers_minor)) STORED,
    note              text NOT NULL DEFAULT '' CHECK (length(note) <= 300),
    course            integer NOT NULL DEFAULT 1 CHECK (course BETWEEN 1 AND 9),
    status            text NOT NULL DEFAULT 'new' CHECK (status IN (
                          'new', 'fired', 'cooking', 'ready', 'served', 'void')),
    ticket_id         bigint,
    created_at        timestamptz NOT NULL DEFAULT now(),
    fired_at          timestamptz,
    cooking_at        timestamptz,
    ready_at          timestamptz,
    served_at         timestamptz,
    voided_at         timestamptz,
    void_reason       text,
    version           integer NOT NULL DEFAULT 1,
    PRIMARY KEY (restaurant_id, id),
    FOREIGN KEY (restaurant_id, order_id) REFERENCES orders (restaurant_id, id),
    FOREIGN KEY (restaurant_id, menu_item_id) REFERENCES menu_items (restaurant_id, id),
    FOREIGN KEY (restaurant_id, ticket_id) REFERENCES tickets (restaurant_id, id)
);
CREATE INDEX order_items_order ON order_items (restaurant_id, order_id, id);
CREATE INDEX order_items_ticket ON order_items (restaurant_id, ticket_id, id) WHERE ticket_id IS NOT NULL;

-- Idempotency ----------------------------------------------------------------

-- A POST with an Idempotency-Key claims its row in the same transaction as its
-- write and stores its response there, so a retry gets the first answer and
-- concurrent duplicates wait for the first to commit: exactly one effect.
CREATE TABLE idempotency_keys (
    restaurant_id  bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    key            text NOT NULL,
    request_hash   bytea NOT NULL,
    status         integer,
    headers        jsonb,
    body           bytea,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
