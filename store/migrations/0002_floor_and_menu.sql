-- First cut of the floor and the menu, enough for the demo restaurant.
-- Keys are (restaurant_id, id) so that foreign keys also hold tenancy:
-- a table can only sit in an area of its own restaurant.

CREATE TABLE areas (
    restaurant_id  bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    sort           integer NOT NULL DEFAULT 0,
    version        integer NOT NULL DEFAULT 1,
    PRIMARY KEY (restaurant_id, id),
    UNIQUE (restaurant_id, name)
);

CREATE TABLE dining_tables (
    restaurant_id      bigint NOT NULL,
    id                 bigint GENERATED ALWAYS AS IDENTITY,
    area_id            bigint NOT NULL,
    label              text NOT NULL CHECK (length(label) BETWEEN 1 AND 20),
    seats              integer NOT NULL CHECK (seats BETWEEN 1 AND 50),
    x                  integer NOT NULL DEFAULT 0,
    y                  integer NOT NULL DEFAULT 0,
    shape              text NOT NULL DEFAULT 'square' CHECK (shape IN ('square', 'round', 'rect')),
    status             text NOT NULL DEFAULT 'free' CHECK (status IN (
                           'free', 'seated', 'ordering', 'waiting_food', 'eating',
                           'paying', 'dirty', 'blocked')),
    status_changed_at  timestamptz NOT NULL DEFAULT now(),
    version            integer NOT NULL DEFAULT 1,
    PRIMARY KEY (restaurant_id, id),
    UNIQUE (restaurant_id, label),
    FOREIGN KEY (restaurant_id, area_id) REFERENCES areas (restaurant_id, id)
);
CREATE INDEX dining_tables_area ON dining_tables (restaurant_id, area_id);

CREATE TABLE menu_categories (
    restaurant_id  bigint NOT NULL REFERENCES restaurants ON DELETE CASCADE,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    sort           integer NOT NULL DEFAULT 0,
    version        integer NOT NULL DEFAULT 1,
    PRIMARY KEY (restaurant_id, id),
    UNIQUE (restaurant_id, name)
);

CREATE TABLE menu_items (
    restaurant_id  bigint NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    category_id    bigint NOT NULL,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description    text NOT NULL DEFAULT '',
    price_minor    integer NOT NULL CHECK (price_minor >= 0),   -- minor units of restaurants.currency
    station        text NOT NULL CHECK (station ~ '^[a-z][a-z0-9_]{0,30}$'),
    available      boolean NOT NULL DEFAULT true,
    sort           integer NOT NULL DEFAULT 0,
    version        integer NOT NULL DEFAULT 1,
    PRIMARY KEY (restaurant_id, id),
    UNIQUE (restaurant_id, name),
    FOREIGN KEY (restaurant_id, category_id) REFERENCES menu_categories (restaurant_id, id)
);
CREATE INDEX menu_items_category ON menu_items (restaurant_id, category_id, sort, id);

CREATE TABLE menu_modifiers (
    restaurant_id  bigint NOT NULL,
    id             bigint GENERATED ALWAYS AS IDENTITY,
    item_id        bigint NOT NULL,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    price_delta_minor  integer NOT NULL DEFAULT 0,
    sort           integer NOT NULL DEFAULT 0,
    PRIMARY KEY (restaurant_id, id),
    UNIQUE (restaurant_id, item_id, name),
    FOREIGN KEY (restaurant_id, item_id) REFERENCES menu_items (restaurant_id, id) ON DELETE CASCADE
);
