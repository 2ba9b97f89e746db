-- Device presence: which screens must be up during service, and the alert each is in.
ALTER TABLE devices
    ADD COLUMN expected boolean NOT NULL DEFAULT false,
    ADD COLUMN alert text CHECK (alert IN ('dark', 'lagging')),
    ADD COLUMN version integer NOT NULL DEFAULT 1;
CREATE INDEX devices_expected ON devices (restaurant_id) WHERE expected AND revoked_at IS NULL;
