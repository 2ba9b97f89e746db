"""Storage: the asyncpg pool, SQL per resource, migrations, the event outbox, embedded PostgreSQL."""
