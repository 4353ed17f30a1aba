-- Place (issue #30): a located matter's position and the grid cell (单元网格, GB/T 30428) it is in.
-- PostGIS, the field's standard: a geography point (WGS 84, distances in metres on the spheroid)
-- with a GiST index answers "open matters of this item within 50 m" from the index.
-- A table beside `requests`, not columns on it: the previous release's replicas cache `SELECT *
-- FROM requests` statements, which a column added would invalidate (011's lesson). v1.2 neither
-- reads nor writes it. A row is written in the filing's transaction, only for a filing with a point.
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE TABLE IF NOT EXISTS request_places (
    request_id uuid PRIMARY KEY REFERENCES requests (request_id),
    town_code  text NOT NULL,
    item_code  text NOT NULL,
    filed_at   timestamptz NOT NULL,
    point      geography(Point, 4326) NOT NULL,
    grid_cell  text                          -- NULL: in the town, in no cell of its grid.geojson
);
CREATE INDEX IF NOT EXISTS request_places_point ON request_places USING gist (point);
