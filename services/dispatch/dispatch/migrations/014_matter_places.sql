-- Place (issue #30): where a located matter is — its point and grid cell (单元网格, GB/T 30428) as
-- `intake.request.filed` carries them — for the map and the task lists' filter by cell or box.
-- A table beside `matters` and `tasks`, not columns on them: the previous release's replicas cache
-- `SELECT * FROM tasks` statements during a rolling upgrade, and a column added would make each
-- fail once (intake's 011 lesson). The previous release neither reads nor writes it. A row is
-- written in the filing's consumer transaction, only for a matter filed with a point.
-- PostGIS as in intake's 014 (the extension is created by the user dispatch connects with; on a
-- managed PostgreSQL an administrator runs CREATE EXTENSION postgis once before the upgrade).
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE TABLE IF NOT EXISTS matter_places (
    request_id uuid PRIMARY KEY,            -- the matter (matters.request_id); its tasks share it
    point      geography(Point, 4326) NOT NULL,
    grid_cell  text                          -- NULL: in the town, in no cell of its grid.geojson
);
-- A box of the map (`&&` on geography) and "open matters near a point" from the index.
CREATE INDEX IF NOT EXISTS matter_places_point ON matter_places USING gist (point);
-- A cell's matters (its code starts with the town's 9 digits, so it names the town too).
CREATE INDEX IF NOT EXISTS matter_places_of_cell ON matter_places (grid_cell);
