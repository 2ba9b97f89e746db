-- Restaurants, staff and their roles, credentials, and the event outbox.

CREATE EXTENSION IF NOT EXISTS btree_gist;
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- `seq` is the restaurant's event counter: every write bumps it with
-- UPDATE … RETURNING inside its own transaction, so events are numbered in
-- commit order with no gaps. `epoch` names this database's history of the
-- restaurant; a client holding another epoch must reset.
CREATE TABLE restaurants (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone    text NOT NULL DEFAULT 'UTC',
    currency    text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
    epoch       uuid NOT NULL DEFAULT gen_random_uuid(),
    seq         bigint NOT NULL DEFAULT 0 CHECK (seq >= 0),
    created_at  timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 50);  -- the counter is updated on every write: leave room for HOT updates

-- People who log in. A person may work in several restaurants, so users and
-- their sessions are the one place without a restaurant_id; `staff` ties a
-- user to a restaurant with a role.
CREATE TABLE users (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email          text NOT NULL CHECK (email = lower(email) AND email LIKE '%_@_%'),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    password_hash  text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE staff (
    restaurant_id  bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    user_id        bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    role           text NOT NULL CHECK (role IN ('owner', 'manager', 'host', 'server', 'kitchen')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, user_id)
);
CREATE INDEX staff_user ON staff (user_id);

-- Tokens are random and stored only as their SHA-256.
CREATE TABLE sessions (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token_hash    bytea NOT NULL UNIQUE,
    user_id       bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz,
    address       text,
    user_agent    text
);
CREATE INDEX sessions_user ON sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE devices (
    restaurant_id  bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind           text NOT NULL CHECK (kind IN ('ipad', 'screen', 'other')),
    role           text NOT NULL CHECK (role IN ('manager', 'host', 'server', 'kitchen')),
    token_hash     bytea NOT NULL UNIQUE,
    created_by     bigint REFERENCES users ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_seen_at   timestamptz,
    last_ack_seq   bigint NOT NULL DEFAULT 0,
    revoked_at     timestamptz
);
CREATE INDEX devices_restaurant ON devices (restaurant_id, id);

CREATE TABLE api_keys (
    restaurant_id  bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    prefix         text NOT NULL,
    key_hash       bytea NOT NULL UNIQUE,
    scopes         text[] NOT NULL CHECK (cardinality(scopes) > 0
                                          AND scopes <@ ARRAY['read', 'write', 'events']),
    created_by     bigint REFERENCES users ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz,
    revoked_at     timestamptz
);
CREATE INDEX api_keys_restaurant ON api_keys (restaurant_id, id);

-- The transactional outbox and the durable offline queue in one: a row per
-- event, numbered per restaurant by restaurants.seq in the writing transaction.
CREATE TABLE events (
    restaurant_id  bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    seq            bigint NOT NULL,
    epoch          uuid NOT NULL,
    channel        text NOT NULL,
    name           text NOT NULL,
    data           jsonb NOT NULL DEFAULT '{}',
    at             timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, seq)
);
CREATE INDEX events_at ON events (restaurant_id, at);
