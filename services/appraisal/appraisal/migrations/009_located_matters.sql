-- Hotspots (热点, issue #30): a located matter's grid cell, item and month, from
-- `intake.request.filed` (its `grid_cell`), so the matters of a town's month are counted per cell
-- and item. One row per matter, not a running count: a filing delivered twice (or replayed by a
-- rebuild) is the same row, and a count is a GROUP BY over one town's month on the index (a
-- county-year's located share is about a hundred rows per town and month). Added only: the previous
-- release neither reads nor writes it. A matter whose point is in no cell has no row.
CREATE TABLE IF NOT EXISTS located_matters (
    town_code  text NOT NULL,
    request_id text NOT NULL,
    period     text NOT NULL,               -- YYYY-MM, the month filed in the town's time zone
    grid_cell  text NOT NULL,               -- 15 digits, GB/T 30428
    item_code  text NOT NULL,
    PRIMARY KEY (town_code, request_id)
);
CREATE INDEX IF NOT EXISTS located_matters_of_month ON located_matters (town_code, period, grid_cell, item_code);
