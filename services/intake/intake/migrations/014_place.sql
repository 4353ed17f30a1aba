-- Place (issue #30): a located matter's position and the grid cell (单元网格, GB/T 30428) it is in.
-- PostGIS, the field's standard: a geography point (WGS 84, distances in metres on the spheroid)
-- with a GiST index answers "open matters of this item within 50 m" from the index alone.
-- Added only: v1.2 neither reads nor writes these columns.
CREATE EXTENSION IF NOT EXISTS postgis;
ALTER TABLE requests ADD COLUMN IF NOT EXISTS point geography(Point, 4326);
ALTER TABLE requests ADD COLUMN IF NOT EXISTS grid_cell text;
CREATE INDEX IF NOT EXISTS requests_point ON requests USING gist (point) WHERE point IS NOT NULL;
