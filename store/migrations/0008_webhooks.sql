-- Outgoing webhooks: endpoints a restaurant's managers register, and one delivery per event
-- that matched an endpoint. A delivery holds a copy of the event's JSON (the exact bytes that
-- are signed and sent), so purging old events never loses one that is still undelivered.

-- `enqueued_seq`: the restaurant seq up to which events were turned into deliveries (set to
-- the restaurant's seq at registration: only later events are sent). `leased_until` and
-- `lease_owner`: the process delivering this endpoint now, so no two deliver it at once.
-- The secret is kept in clear: it signs every delivery (HMAC), so it cannot be a hash.
CREATE TABLE webhook_endpoints (
    restaurant_id  bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    url            text NOT NULL CHECK (length(url) <= 2000 AND url ~ '^https?://[^/?#]'),
    description    text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    events         text[] NOT NULL CHECK (cardinality(events) BETWEEN 1 AND 100),
    secret         text NOT NULL CHECK (secret LIKE 'whsec\_%'),
    active         boolean NOT NULL DEFAULT true,
    enqueued_seq   bigint NOT NULL CHECK (enqueued_seq >= 0),
    leased_until   timestamptz,
    lease_owner    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    version        integer NOT NULL DEFAULT 1,
    PRIMARY KEY (restaurant_id, id)
);

-- One event for one endpoint. An endpoint's pending deliveries go out in seq order: the oldest
-- pending one holds back the later ones until it is delivered or given up (`failed`).
CREATE TABLE webhook_deliveries (
    restaurant_id     bigint NOT NULL,
    id                bigint GENERATED ALWAYS AS IDENTITY,
    endpoint_id       bigint NOT NULL,
    seq               bigint NOT NULL,  -- the event's seq
    name              text NOT NULL,    -- the event's name
    body              bytea NOT NULL,   -- the event as the feed and the socket send it
    status            text NOT NULL DEFAULT 'pending'
                      CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    first_attempt_at  timestamptz,      -- the give-up clock runs from here
    last_attempt_at   timestamptz,
    next_attempt_at   timestamptz NOT NULL DEFAULT now(),
    last_status       integer,          -- the receiver's HTTP status (none: no answer)
    last_error        text,
    delivered_at      timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (restaurant_id, id),
    UNIQUE (restaurant_id, endpoint_id, seq),  -- an event is queued once per endpoint
    FOREIGN KEY (restaurant_id, endpoint_id) REFERENCES webhook_endpoints ON DELETE CASCADE
);
-- The oldest pending delivery of each endpoint (what goes out next).
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (restaurant_id, endpoint_id, seq)
    WHERE status = 'pending';
-- An endpoint's deliveries, newest first (the list).
CREATE INDEX webhook_deliveries_listed ON webhook_deliveries (restaurant_id, endpoint_id, id);
-- Finished deliveries, by age (purged after a while).
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (created_at) WHERE status <> 'pending';
