-- Screen pairing: a browser shows a short code; a manager claims the code for a new device;
-- the browser then collects that device's token and stays signed in as the device.
CREATE TABLE pairings (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    code           text NOT NULL UNIQUE CHECK (code ~ '^[A-Z0-9]{6}$'),
    secret_hash    bytea NOT NULL UNIQUE,
    address        text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    restaurant_id  bigint REFERENCES restaurants ON DELETE CASCADE,
    device_id      bigint REFERENCES devices ON DELETE CASCADE,
    screen         text,  -- where the paired browser goes
    CHECK ((device_id IS NULL) = (screen IS NULL))
);
CREATE INDEX pairings_expires ON pairings (expires_at);
