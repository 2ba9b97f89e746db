-- Reservation pacing: a booking past a pacing limit (covers or parties per slot or per service
-- period, or the stricter limit while the kitchen is behind) is made only by a host who gives a
-- reason; who, when and why stay on the reservation.
ALTER TABLE reservations
    ADD COLUMN override_reason  text CHECK (length(override_reason) BETWEEN 1 AND 200),
    ADD COLUMN override_by      bigint REFERENCES users ON DELETE SET NULL,  -- the staff member
    ADD COLUMN override_by_name text CHECK (length(override_by_name) <= 200),  -- or device, key
    ADD COLUMN override_at      timestamptz,
    ADD CONSTRAINT reservations_override_whole
        CHECK ((override_reason IS NULL) = (override_at IS NULL)
               AND (override_reason IS NULL) = (override_by_name IS NULL));
