"""The demo restaurant: a floor of 20 tables in two areas, a 40-item menu, one login per role."""
from __future__ import annotations

import asyncpg

from store import events

ROLES = ("owner", "manager", "host", "server", "kitchen")
NAMES = {"owner": "Olivia Park", "manager": "Marco Rossi", "host": "Hana Sato",
         "server": "Sam Rivera", "kitchen": "Kai Chen"}
SEED_LOCK = 0x5E27E11F

# (area, [(label, seats, x, y, shape)])
FLOOR = [
    ("Dining room", [(f"D{n}", 4 if n % 3 else 6, 80 + ((n - 1) % 4) * 140,
                      80 + ((n - 1) // 4) * 130, "round" if n % 3 == 0 else "square")
                     for n in range(1, 13)]),
    ("Patio", [(f"P{n}", 2 if n % 2 else 4, 680 + ((n - 1) % 2) * 130,
                80 + ((n - 1) // 2) * 120, "square") for n in range(1, 9)]),
]

# (category, station, [(item, price in cents, [(modifier, delta)])])
MENU = [
    ("Starters", "cold", [
        ("Burrata", 1400, [("Extra bread", 200)]), ("Caesar salad", 1200, [("Add chicken", 500)]),
        ("Tuna tartare", 1600, []), ("Beet salad", 1100, [("No goat cheese", 0)]),
        ("Oysters (6)", 1800, []), ("Gazpacho", 900, []),
    ]),
    ("Fried", "fry", [
        ("Calamari", 1300, [("Extra aioli", 100)]), ("Fries", 600, [("Truffle", 300)]),
        ("Wings", 1200, [("Hot", 0), ("Extra hot", 0)]), ("Onion rings", 700, []),
        ("Fish and chips", 2100, []), ("Croquettes", 900, []),
    ]),
    ("Grill", "grill", [
        ("Ribeye", 3800, [("Rare", 0), ("Medium rare", 0), ("Medium", 0), ("Well done", 0)]),
        ("Burger", 1800, [("Add bacon", 300), ("No onion", 0), ("Medium", 0)]),
        ("Half chicken", 2400, []), ("Salmon", 2600, [("Sauce on side", 0)]),
        ("Pork chop", 2500, []), ("Lamb skewers", 2300, []), ("Grilled vegetables", 1600, []),
        ("Swordfish", 2900, []),
    ]),
    ("Pasta", "saute", [
        ("Cacio e pepe", 1900, []), ("Bolognese", 2100, [("Gluten free", 300)]),
        ("Mushroom risotto", 2000, []), ("Lobster linguine", 3200, []),
        ("Pesto gnocchi", 1800, []),
    ]),
    ("Desserts", "pastry", [
        ("Tiramisu", 900, []), ("Chocolate cake", 900, [("Add ice cream", 250)]),
        ("Panna cotta", 800, []), ("Affogato", 700, []), ("Cheese plate", 1400, []),
    ]),
    ("Drinks", "bar", [
        ("Espresso", 300, [("Double", 100)]), ("Cappuccino", 450, [("Oat milk", 50)]),
        ("Lemonade", 500, []), ("Sparkling water", 400, []), ("House red", 1100, []),
        ("House white", 1100, []), ("Negroni", 1400, []), ("Spritz", 1200, []),
        ("IPA draft", 800, []), ("Cola", 400, []),
    ]),
]

# Minutes from the cook's start to the pass, for the demo's firing by prep time (an item not
# named takes none). Restaurants seeded for tests leave them at 0 unless asked.
PREP_MINUTES = {
    "Burrata": 4, "Caesar salad": 5, "Tuna tartare": 6, "Beet salad": 5, "Oysters (6)": 4,
    "Gazpacho": 2, "Calamari": 6, "Fries": 5, "Wings": 10, "Onion rings": 5,
    "Fish and chips": 9, "Croquettes": 6, "Ribeye": 14, "Burger": 10, "Half chicken": 18,
    "Salmon": 11, "Pork chop": 13, "Lamb skewers": 9, "Grilled vegetables": 7, "Swordfish": 10,
    "Cacio e pepe": 9, "Bolognese": 10, "Mushroom risotto": 18, "Lobster linguine": 12,
    "Pesto gnocchi": 8, "Tiramisu": 2, "Chocolate cake": 3, "Panna cotta": 2, "Affogato": 2,
    "Cheese plate": 4, "Espresso": 1, "Cappuccino": 2, "Negroni": 2, "Spritz": 2,
}

HAS_RESTAURANTS = "SELECT EXISTS (SELECT 1 FROM restaurants)"

INSERT_RESTAURANT = """
INSERT INTO restaurants (slug, name, timezone, currency) VALUES ($1, $2, $3, $4) RETURNING id
"""

INSERT_USERS = """
INSERT INTO users (email, name, password_hash)
SELECT e, n, $3 FROM unnest($1::text[], $2::text[]) AS u(e, n)
RETURNING id, email
"""

INSERT_STAFF = """
INSERT INTO staff (restaurant_id, user_id, role)
SELECT $1, u, r FROM unnest($2::bigint[], $3::text[]) AS s(u, r)
"""

INSERT_AREA = "INSERT INTO areas (restaurant_id, name, sort) VALUES ($1, $2, $3) RETURNING id"

INSERT_TABLES = """
INSERT INTO dining_tables (restaurant_id, area_id, label, seats, x, y, shape)
SELECT $1, $2, l, s, x, y, sh
FROM unnest($3::text[], $4::int[], $5::int[], $6::int[], $7::text[]) AS t(l, s, x, y, sh)
"""

INSERT_CATEGORY = """
INSERT INTO menu_categories (restaurant_id, name, sort) VALUES ($1, $2, $3) RETURNING id
"""

INSERT_ITEMS = """
INSERT INTO menu_items (restaurant_id, category_id, name, price_minor, station, sort, prep_seconds)
SELECT $1, $2, n, p, $3, o, s
FROM unnest($4::text[], $5::int[], $6::int[]) WITH ORDINALITY AS i(n, p, s, o)
RETURNING id, name
"""

INSERT_MODIFIERS = """
INSERT INTO menu_modifiers (restaurant_id, item_id, name, price_delta_minor, sort)
SELECT $1, i, n, d, o FROM unnest($2::bigint[], $3::text[], $4::int[]) WITH ORDINALITY AS m(i, n, d, o)
"""


async def seed_restaurant(pool: asyncpg.Pool, *, slug: str, name: str, password_hash: str,
                          email_domain: str, timezone: str = "America/New_York",
                          prep_times: bool = False) -> int:
    """Create a restaurant laid out like the demo, with `<role>@<email_domain>` staff (and the
    demo's prep times if `prep_times`)."""
    async with events.write(pool) as tx:
        conn = tx.conn
        rid = await conn.fetchval(INSERT_RESTAURANT, slug, name, timezone, "USD")
        users = await conn.fetch(INSERT_USERS, [f"{role}@{email_domain}" for role in ROLES],
                                 [NAMES[role] for role in ROLES], password_hash)
        by_email = {row["email"]: row["id"] for row in users}
        await conn.execute(INSERT_STAFF, rid, [by_email[f"{r}@{email_domain}"] for r in ROLES],
                           list(ROLES))
        for sort, (area, tables) in enumerate(FLOOR):
            area_id = await conn.fetchval(INSERT_AREA, rid, area, sort)
            await conn.execute(INSERT_TABLES, rid, area_id, *map(list, zip(*tables)))
        for sort, (category, station, items) in enumerate(MENU):
            category_id = await conn.fetchval(INSERT_CATEGORY, rid, category, sort)
            rows = await conn.fetch(INSERT_ITEMS, rid, category_id, station,
                                    [i[0] for i in items], [i[1] for i in items],
                                    [60 * PREP_MINUTES.get(i[0], 0) * prep_times for i in items])
            ids = {row["name"]: row["id"] for row in rows}
            modifiers = [(ids[item], mod, delta) for item, _, mods in items for mod, delta in mods]
            if modifiers:
                await conn.execute(INSERT_MODIFIERS, rid, *map(list, zip(*modifiers)))
        tx.emit(rid, "manager", "restaurant.created", {"restaurant_id": rid, "slug": slug})
    return rid


async def seed_demo_if_empty(pool: asyncpg.Pool, password_hash: str) -> bool:
    """Seed the demo restaurant on an empty database; True if this call seeded it."""
    async with pool.acquire() as conn:
        # Two instances starting together: one seeds, the other then sees it done.
        await conn.execute("SELECT pg_advisory_lock($1)", SEED_LOCK)
        try:
            if await conn.fetchval(HAS_RESTAURANTS):
                return False
            await seed_restaurant(pool, slug="demo", name="Demo Bistro",
                                  password_hash=password_hash, email_domain="demo.test",
                                  prep_times=True)
            return True
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", SEED_LOCK)
