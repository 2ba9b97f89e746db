-- One open order per table: two iPads taking an order for one table at the same moment make
-- one order (the second is told which, and adds to it), never two.

-- Tables that already have several open orders (written before this rule) keep the oldest; the
-- others' lines and tickets join it, and the emptied orders go.
CREATE TEMPORARY TABLE folded ON COMMIT DROP AS
SELECT restaurant_id, id, keeper FROM (
    SELECT restaurant_id, id,
           min(id) OVER (PARTITION BY restaurant_id, table_id) AS keeper
    FROM orders WHERE status = 'open' AND table_id IS NOT NULL
) o
WHERE id <> keeper;

UPDATE order_items oi SET order_id = f.keeper, version = oi.version + 1
FROM folded f WHERE oi.restaurant_id = f.restaurant_id AND oi.order_id = f.id;

UPDATE tickets k SET order_id = f.keeper, version = k.version + 1
FROM folded f WHERE k.restaurant_id = f.restaurant_id AND k.order_id = f.id;

UPDATE orders o SET fired_course = greatest(o.fired_course, extra.fired_course),
                    guests = coalesce(o.guests, extra.guests), version = o.version + 1
FROM (SELECT f.restaurant_id, f.keeper, max(x.fired_course) AS fired_course,
             max(x.guests) AS guests
      FROM folded f JOIN orders x ON x.restaurant_id = f.restaurant_id AND x.id = f.id
      GROUP BY f.restaurant_id, f.keeper) extra
WHERE o.restaurant_id = extra.restaurant_id AND o.id = extra.keeper;

DELETE FROM orders o USING folded f WHERE o.restaurant_id = f.restaurant_id AND o.id = f.id;

-- The rule itself, and the index that finds a table's open order (it replaces orders_table).
DROP INDEX orders_table;
CREATE UNIQUE INDEX orders_one_open_per_table ON orders (restaurant_id, table_id)
    WHERE status = 'open';
