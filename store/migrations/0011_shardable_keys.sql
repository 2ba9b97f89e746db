-- Ready to shard: every primary, unique and foreign key of a per-restaurant table leads with
-- restaurant_id, so the schema can be distributed by restaurant (Citus and the like) as it is.
-- tests/test_shardable.py reads the catalog and names any key that breaks the rule.

-- Pairings are a reference table (global, replicated whole): a screen shows its code before any
-- restaurant is known, and the manager's claim finds the screen by that code alone. Two waiting
-- screens with one code would let a claim hand a device to the wrong browser, so the code stays
-- unique across all restaurants, held by the database (the insert draws again on a clash). The
-- rows are few (live codes, purged after an hour) and written rarely. A reference table cannot
-- reference a per-restaurant one, so the links to restaurants and devices become plain columns:
-- handing over finds the device by (restaurant_id, device_id) and answers "gone" if it is not
-- there, and a claim always sets both together.
ALTER TABLE pairings
    DROP CONSTRAINT pairings_device_id_fkey,
    DROP CONSTRAINT pairings_restaurant_id_fkey,
    ADD CONSTRAINT pairings_claimed CHECK ((device_id IS NULL) = (restaurant_id IS NULL));

-- Token hashes are the SHA-256 of 256 random bits: unique by construction (as event seqs are),
-- so the lookup by hash needs only a plain index; the unique key is the restaurant's own.
ALTER TABLE devices DROP CONSTRAINT devices_pkey;
ALTER TABLE devices DROP CONSTRAINT devices_token_hash_key;
ALTER TABLE devices ADD CONSTRAINT devices_pkey PRIMARY KEY (restaurant_id, id);
ALTER TABLE devices ADD CONSTRAINT devices_token_hash_key UNIQUE (restaurant_id, token_hash);
DROP INDEX devices_restaurant;  -- (restaurant_id, id): the primary key now
CREATE INDEX devices_token_hash ON devices (token_hash);

ALTER TABLE api_keys DROP CONSTRAINT api_keys_pkey;
ALTER TABLE api_keys DROP CONSTRAINT api_keys_key_hash_key;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_pkey PRIMARY KEY (restaurant_id, id);
ALTER TABLE api_keys ADD CONSTRAINT api_keys_key_hash_key UNIQUE (restaurant_id, key_hash);
DROP INDEX api_keys_restaurant;  -- (restaurant_id, id): the primary key now
CREATE INDEX api_keys_key_hash ON api_keys (key_hash);
