-- Alerts: a rule's condition holding for a subject (a late ticket, a dark screen, a slow
-- instance). Raised and cleared once, whichever instance sees it first.
CREATE TABLE alerts (
    restaurant_id  bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    rule           text NOT NULL CHECK (rule IN ('late_ticket', 'device_dark', 'device_lagging',
                                                 'slow_requests', 'pool_waiters', 'event_lag')),
    subject        text NOT NULL,
    message        text NOT NULL,
    details        jsonb NOT NULL DEFAULT '{}',
    raised_at      timestamptz NOT NULL DEFAULT now(),
    seen_at        timestamptz NOT NULL DEFAULT now(),  -- last time its condition was seen to hold
    cleared_at     timestamptz,
    PRIMARY KEY (restaurant_id, id)
);
CREATE UNIQUE INDEX alerts_open ON alerts (restaurant_id, rule, subject) WHERE cleared_at IS NULL;
CREATE INDEX alerts_raised ON alerts (raised_at);
