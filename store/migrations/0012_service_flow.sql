-- Service flow: firing by prep time, held courses, seats, and tickets that show what changed
-- after they were sent.

-- How long an item takes from the cook's start to the pass. Items of one course fire so they
-- finish together: the longest starts first, the others wait (`held`) until their fire_at.
ALTER TABLE menu_items
    ADD COLUMN prep_seconds integer NOT NULL DEFAULT 0 CHECK (prep_seconds BETWEEN 0 AND 14400);

ALTER TABLE order_items
    ADD COLUMN seat integer CHECK (seat BETWEEN 1 AND 100),
    ADD COLUMN fire_at timestamptz,  -- a held line's time to go to the cook
    DROP CONSTRAINT order_items_status_check,
    ADD CONSTRAINT order_items_status_check CHECK (status IN (
        'new', 'held', 'fired', 'cooking', 'ready', 'served', 'void'));
-- The lines waiting for their time, across restaurants, for the task that fires them.
CREATE INDEX order_items_held ON order_items (fire_at) WHERE status = 'held';

-- Courses a server has held by hand: nothing of them goes until they are fired by hand.
ALTER TABLE orders ADD COLUMN held_courses integer[] NOT NULL DEFAULT '{}';

-- What changed on a ticket after it was sent: [{"at", "kind", "item_id", "name", "text"}],
-- kind one of added, voided, note, qty, moved; changed_at is the last one's time.
ALTER TABLE tickets
    ADD COLUMN changes jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN changed_at timestamptz;
