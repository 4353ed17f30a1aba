"""The daily digest's rule: who is due, and what their digest lists. Pure, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from notify import digest
from notify.contacts import TownContacts
from notify.digest import KnownCase, OpenItems
from notify.rules import KnownTask
from townflow_shared.settings import DEMO_TOWN_DIR
from townflow_shared.town import load_town

TOWN = load_town(DEMO_TOWN_DIR)
MORNING = datetime(2026, 11, 24, 0, 30, tzinfo=UTC)  # 08:30 in the town (UTC+8)


def task(task_id: str, state: str, resolve_by: datetime, assignee: str = "s010",
         respond_by: datetime | None = None) -> KnownTask:
    return KnownTask(task_id, assignee, "social-security", "S002", "V01", "青禾村3组", state, respond_by, resolve_by)


def test_a_digest_lists_a_persons_open_items_earliest_deadline_first_in_the_towns_time() -> None:
    items = OpenItems(tasks=[
        task("t-late", "accepted", MORNING + timedelta(days=3)),
        task("t-new", "dispatched", MORNING + timedelta(days=5), respond_by=MORNING + timedelta(hours=2)),
        task("t-overdue", "rework", MORNING - timedelta(days=1)),
        task("t-other", "accepted", MORNING, assignee="s011"),   # someone else's
        task("t-done", "closed", MORNING),                      # closed: not listed
        task("t-held", "suspended", MORNING),                   # suspended: no deadline runs
    ], cases=[KnownCase("c1", "E001", "91321003MA0001", ("s010", "s026"), MORNING + timedelta(days=10))])
    notice = digest.daily_digest("s010", items, TOWN, MORNING)
    assert notice is not None and notice.recipient == "s010"
    assert notice.title.startswith("每日待办：") and notice.title.endswith(" 4 项")
    lines = [line for line in notice.text.splitlines() if line.startswith("- ")]
    assert [line.rsplit(" ", 1)[-1] for line in lines] == ["t-overdue", "t-new", "t-late", "c1"]
    assert "【重办】" in lines[0] and "办结时限 2026-11-23 08:30（已超期）" in lines[0]
    assert "【待签收】" in lines[1] and "签收时限 2026-11-24 10:30" in lines[1]
    assert "【案件】" in lines[3] and "作出决定期限 2026-12-04 08:30" in lines[3]


def test_no_digest_for_nothing_open() -> None:
    assert digest.daily_digest("s010", OpenItems([task("t", "closed", MORNING)], []), TOWN, MORNING) is None


def test_a_long_digest_counts_what_it_does_not_list() -> None:
    items = OpenItems([task(f"t{i:02}", "accepted", MORNING + timedelta(hours=i)) for i in range(35)], [])
    notice = digest.daily_digest("s010", items, TOWN, MORNING)
    assert notice is not None and "t29" in notice.text and "t30" not in notice.text and "另有 5 项" in notice.text


def test_a_persons_digest_is_due_from_their_time_on_town_local() -> None:
    contacts = TownContacts.model_validate({"digest_at": "08:30", "people": [
        {"staff": "s011", "channels": [{"email": "s011@qinghe.example.cn"}], "digest_at": "09:00"},
        {"staff": "s012", "channels": [{"email": "s012@qinghe.example.cn"}], "digest_at": False}]})
    people = ["s010", "s011", "s012"]
    assert digest.due_for_digest(people, MORNING - timedelta(minutes=1), TOWN, contacts) == []
    assert digest.due_for_digest(people, MORNING, TOWN, contacts) == ["s010"]
    assert digest.due_for_digest(people, MORNING + timedelta(minutes=30), TOWN, contacts) == ["s010", "s011"]
    assert digest.due_for_digest(people, MORNING, TOWN, TownContacts(digest_at=None)) == []


def test_the_day_is_the_towns_and_the_id_is_one_per_person_and_day() -> None:
    late_evening_utc = datetime(2026, 11, 23, 17, tzinfo=UTC)  # 01:00 on the 24th in the town
    assert digest.digest_day(late_evening_utc, TOWN) == date(2026, 11, 24)
    day = date(2026, 11, 24)
    assert digest.digest_event_id("321003104", "s010", day) == digest.digest_event_id("321003104", "s010", day)
    assert len({digest.digest_event_id("321003104", p, d) for p in ("s010", "s011")
                for d in (day, day + timedelta(days=1))}) == 4
