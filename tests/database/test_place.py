"""Place on PostgreSQL with PostGIS (issue #30): a filing's point stored as a geography with its grid
cell, and the open matters of the same item within the town's distance found on the GiST index."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from intake import flows, rules
from intake.app import MIGRATIONS
from intake.personal_data import Keyring, new_key_spec
from intake.store import PgUnitOfWork
from townflow_shared.county import load_county
from townflow_shared.settings import DEMO_COUNTY_DIR

from ..conftest import QINGHE
from .db_tools import migrated

KEYRING = Keyring({"k1": new_key_spec()}, "k1", b"database-tier-lookup-key")
COUNTY = load_county(DEMO_COUNTY_DIR)
FILED = datetime.fromisoformat("2027-01-05T10:00:00+08:00")
ROAD = (119.305, 32.42)  # 青禾村 (V01), its first grid cell
METRE = 1 / 111_320  # of latitude, in degrees


def _filing(n: int, item: str = "T001", point: tuple[float, float] | None = ROAD, location: str = "") -> flows.Filing:
    town = COUNTY.towns[QINGHE]
    placed = rules.placed(town=town, item=town.catalog[item], village=None if point else "V01", point=point)
    assert isinstance(placed, rules.Placed)
    return flows.Filing(
        town=town, filed_by="s010", filer_scope="s010", idempotency_key=None, fingerprint=f"f{n}",
        item=town.catalog[item], requested_colour=None, citizen_ref=f"{n:064d}", trace_headers={},
        fields={"channel": "window", "description": f"第{n}件", "village": placed.village,
                "location": location or f"村道第{n}处", "target": None, "proxy_agent_id": None,
                "village_record_id": None, "citizen_name": f"群众{n}", "citizen_phone": "13800000000",
                "citizen_id_number": None, "point": placed.point, "grid_cell": placed.cell})


async def _file(pool: Any, *filings: flows.Filing, at: datetime = FILED) -> list[dict[str, Any]]:
    async with pool.acquire() as conn, conn.transaction():
        answers = await flows.file_requests(PgUnitOfWork(conn), filings, at, KEYRING)
    return [a[1] for a in answers if isinstance(a, tuple)]


async def test_a_point_is_stored_as_a_geography_with_its_grid_cell(fresh_database: str) -> None:
    async with migrated(fresh_database, MIGRATIONS) as pool:
        (placed, plain) = await _file(pool, _filing(1), _filing(2, point=None))
        assert (placed["village"], placed["grid_cell"]) == ("V01", "321003104001001")
        rows = {r["ticket_no"]: r for r in await pool.fetch(
            "SELECT r.ticket_no, p.grid_cell, p.item_code, ST_X(p.point::geometry) AS lon, ST_Y(p.point::geometry) AS lat,"
            " ST_SRID(p.point::geometry) AS srid FROM requests r LEFT JOIN request_places p USING (request_id)")}
        assert tuple(rows[placed["ticket_no"]].values())[1:] == ("321003104001001", "T001", *ROAD, 4326)
        assert tuple(rows[plain["ticket_no"]].values())[1:] == (None, None, None, None, None)
        # The place is a table beside the request (its columns unchanged: the previous release's cached
        # statements stay valid), read whole as text by asyncpg.
        assert (await pool.fetchrow("SELECT * FROM request_places"))["point"]


def _north(metres: float) -> tuple[float, float]:
    return ROAD[0], ROAD[1] + metres * METRE


async def test_an_open_matter_of_the_item_within_50_m_is_a_nearby_duplicate(fresh_database: str) -> None:
    async with migrated(fresh_database, MIGRATIONS) as pool:
        # Locations that read nothing alike: only the points make them duplicates.
        (first,) = await _file(pool, _filing(1, location="村道东头"))
        (other_item,) = await _file(pool, _filing(2, item="T002", point=_north(10), location="垃圾房"))
        (near,) = await _file(pool, _filing(3, point=_north(30), location="小卖部门口"), at=FILED + timedelta(minutes=1))
        assert [(d["ticket_no"], d["reason"]) for d in near["possible_duplicates"]] == [(first["ticket_no"], "nearby")]
        assert 29.5 <= near["possible_duplicates"][0]["distance_m"] <= 30.5  # metres on the spheroid
        (far,) = await _file(pool, _filing(4, point=_north(-60), location="桥头"), at=FILED + timedelta(minutes=2))
        assert far["possible_duplicates"] == []  # 60 m from the first, 90 m from the second
        # A closed matter is no duplicate.
        await pool.execute("UPDATE requests SET status = 'closed' WHERE ticket_no = $1", first["ticket_no"])
        (again,) = await _file(pool, _filing(5, point=_north(5), location="路中间"), at=FILED + timedelta(minutes=3))
        assert [(d["ticket_no"], d["reason"]) for d in again["possible_duplicates"]] == [(near["ticket_no"], "nearby")]
        assert other_item["ticket_no"] not in {d["ticket_no"] for d in again["possible_duplicates"]}


async def test_the_nearby_search_is_answered_from_the_gist_index(fresh_database: str) -> None:
    async with migrated(fresh_database, MIGRATIONS) as pool:
        await _file(pool, *(_filing(n, point=_north(n * 7)) for n in range(1, 40)))
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("ANALYZE request_places")
            await conn.execute("SET LOCAL enable_seqscan = off")  # a few rows: the planner would read them all
            plan = "\n".join(r[0] for r in await conn.fetch(
                "EXPLAIN SELECT request_id FROM request_places p"
                " WHERE ST_DWithin(p.point, ST_GeogFromText('SRID=4326;POINT(119.305 32.42)'), 50)"))
        assert "request_places_point" in plan, plan
