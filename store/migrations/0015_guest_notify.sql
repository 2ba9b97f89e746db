-- "Your table is ready": what a party was told, how, and whether it reached them.
--
-- notify_via: the restaurant's notifier when it was sent ('webhook', or 'sms:<provider>');
-- notify_message: the words sent; notify_count: how many times the party was told (a host may
-- tell them again). notify_status follows the last message: queued (handed over), retrying (a
-- receiver failed, tried again later), delivered, failed (given up, or no way to send it).
-- notify_seq: for the webhook notifier, the seq of the `guest.notify` event whose webhook
-- deliveries are the message; their outcome is copied here (server/notify.py follows them).
ALTER TABLE waitlist_parties
    ADD COLUMN notify_via text CHECK (notify_via = 'webhook' OR notify_via ~ '^sms:[a-z0-9_]{1,40}$'),
    ADD COLUMN notify_message text CHECK (length(notify_message) <= 500),
    ADD COLUMN notify_count integer NOT NULL DEFAULT 0 CHECK (notify_count >= 0),
    ADD COLUMN notify_status text CHECK (notify_status IN ('queued', 'retrying', 'delivered', 'failed')),
    ADD COLUMN notify_attempts integer NOT NULL DEFAULT 0 CHECK (notify_attempts >= 0),
    ADD COLUMN notify_error text CHECK (length(notify_error) <= 500),
    ADD COLUMN notify_status_at timestamptz,
    ADD COLUMN notify_seq bigint,
    ADD CONSTRAINT waitlist_parties_notified CHECK ((notify_count = 0) = (notify_status IS NULL));

-- The messages still on their way, across restaurants, for the task that follows them.
CREATE INDEX waitlist_parties_notifying ON waitlist_parties (notify_seq)
    WHERE notify_status IN ('queued', 'retrying');

-- A `guest.notify` event's deliveries, found by its seq (whatever endpoints took it).
CREATE INDEX webhook_deliveries_seq ON webhook_deliveries (restaurant_id, seq);
