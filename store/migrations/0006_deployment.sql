-- One row naming this database: caches shared between databases (one Redis) key by it.
CREATE TABLE deployment (
    one       boolean PRIMARY KEY DEFAULT true CHECK (one),
    identity  uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO deployment DEFAULT VALUES;
