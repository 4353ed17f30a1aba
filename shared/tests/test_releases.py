"""Releases and the expand/contract rule (docs/operations.md, "Releases and rolling upgrades").

CHANGELOG.md numbers the releases, newest first, each naming the full commit it was cut from; the
upgrade test runs the newest one beside the current tree. A migration added since that release runs
while the release's replicas still work on the same database, so it may only expand the schema:
no DROP, RENAME, type change or NOT NULL without a default, unless the statement is marked as a
contract step (`-- contract: <why it is safe now>`). Reads files and the local git history only."""

from __future__ import annotations

import pytest

from devstack.releases import (
    CHANGELOG,
    ChangelogError,
    contract_steps,
    migrations_since,
    parse_changelog,
    release,
    releases,
    statements,
)
from devstack.stack import REPO

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def entry(version: str, commit: str = COMMIT_A, date: str = "2026-12-06") -> str:
    return f"## [{version}] - {date}\n\nCommit: `{commit}`\n\n- what it is\n"


def test_the_changelog_lists_releases_newest_first_each_with_its_full_commit() -> None:
    listed = releases()
    assert listed, "CHANGELOG.md lists no release"
    assert [r.number for r in listed] == sorted({r.number for r in listed}, reverse=True)
    assert all(len(r.commit) == 40 and int(r.commit, 16) >= 0 for r in listed)
    assert release("v1.0.0").commit == "d426b3ac8130ebd97b3c341b084c2692fc58dff4"  # the first: main as issue #26 began
    assert release() == listed[0]
    text = CHANGELOG.read_text(encoding="utf-8")
    assert text.index("## [Unreleased]") < text.index("## [v")


def test_a_changelog_out_of_order_or_naming_a_short_commit_is_refused() -> None:
    good = "# Changelog\n\n## [Unreleased]\n\n- next\n\n" + entry("v1.1.0", COMMIT_B) + entry("v1.0.0")
    assert [(r.version, r.commit) for r in parse_changelog(good)] == [("v1.1.0", COMMIT_B), ("v1.0.0", COMMIT_A)]
    for bad, says in [
        (entry("v1.0.0") + entry("v1.1.0"), "newest first"),
        (entry("v1.0.0") + entry("v1.0.0"), "newest first"),
        (entry("v1.0.0", "d426b3a"), "40 hex digits"),
        (entry("v1.0.0", "D426B3AC8130EBD97B3C341B084C2692FC58DFF4"), "40 hex digits"),
        (entry("1.0.0"), "vMAJOR.MINOR.PATCH"),
        (entry("v1.0"), "vMAJOR.MINOR.PATCH"),
        ("## [v1.0.0] - 2026-12-06\n\n- no commit\n", "names 0 commits"),
        (entry("v1.0.0") + "## [Unreleased]\n", "comes first"),
        ("## v1.0.0\n", "heading"),
    ]:
        with pytest.raises(ChangelogError, match=says):
            parse_changelog(bad)


def test_statements_split_outside_comments_strings_and_dollar_quotes() -> None:
    sql = ("-- a comment; with a semicolon\nCREATE TABLE a (x text DEFAULT 'x;y');\n"
           "DO $$ BEGIN EXECUTE 'SELECT 1'; END $$;\n/* block; */ SELECT 2;")
    found = [code.strip() for _, code in statements(sql)]
    assert found == ["CREATE TABLE a (x text DEFAULT 'x;y')", "DO $$ BEGIN EXECUTE 'SELECT 1'; END $$",
                     "SELECT 2"]


@pytest.mark.parametrize("sql", [
    "ALTER TABLE tasks DROP COLUMN note;",
    "alter table tasks drop note;",
    "DROP TABLE off_post;",
    "DROP INDEX ticket_sequences_previous_version;",
    "ALTER TABLE tasks ALTER COLUMN town_code DROP DEFAULT;",
    "ALTER TABLE tasks RENAME COLUMN note TO remark;",
    "ALTER TABLE tasks RENAME TO jobs;",
    "ALTER TABLE tasks ALTER COLUMN points TYPE numeric;",
    "ALTER TABLE tasks ALTER points SET DATA TYPE numeric;",
    "ALTER TABLE tasks ALTER COLUMN town_code SET NOT NULL;",
    "ALTER TABLE tasks ADD COLUMN town_code text NOT NULL;",
    "ALTER TABLE tasks ADD COLUMN a text, ADD COLUMN b integer NOT NULL;",
    "DO $$ BEGIN EXECUTE format('ALTER TABLE %I ALTER COLUMN town_code SET NOT NULL', 'tasks'); END $$;",
])
def test_a_migration_that_breaks_the_previous_releases_code_is_caught(sql: str) -> None:
    assert contract_steps(sql), sql
    marked = f"-- contract: unused since v9.9.9, the release before this one stopped reading it\n{sql}"
    assert contract_steps(marked) == []


@pytest.mark.parametrize("sql", [
    "CREATE TABLE IF NOT EXISTS outbox_relay_lease (id int PRIMARY KEY, holder text NOT NULL);",
    "ALTER TABLE tasks ADD COLUMN note text;",
    "ALTER TABLE tasks ADD COLUMN points integer NOT NULL DEFAULT 0;",
    "ALTER TABLE requests ADD COLUMN town_code text NOT NULL GENERATED ALWAYS AS (split_part(ticket_no, '-', 1)) STORED;",
    "ALTER TABLE tasks ALTER COLUMN town_code DROP NOT NULL;",
    "ALTER TABLE tasks ADD CONSTRAINT tasks_town CHECK (town_code IS NOT NULL) NOT VALID;",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS tasks_town ON tasks (town_code);",
    "ALTER TABLE tasks ALTER COLUMN town_code SET DEFAULT '321003104';",
    "-- nothing here drops a table: DROP TABLE in a comment\nSELECT 1;",
])
def test_an_expanding_migration_passes(sql: str) -> None:
    assert contract_steps(sql) == []


def test_the_marker_covers_its_own_statement_only() -> None:
    sql = ("-- contract: the previous release no longer reads note (v1.1.0 stopped)\n"
           "ALTER TABLE tasks DROP COLUMN note;\nALTER TABLE tasks DROP COLUMN remark;")
    assert contract_steps(sql) == ["drops what the previous release may use: ALTER TABLE tasks DROP COLUMN remark"]


def test_migrations_added_since_the_previous_release_only_expand() -> None:
    added = migrations_since(release())
    broken = {path.relative_to(REPO).as_posix(): steps for path in added
              if (steps := contract_steps(path.read_text(encoding="utf-8")))}
    assert broken == {}, (f"migrations added since {release()} would break its replicas still running beside them"
                          " (docs/operations.md, expand and contract): split them, or mark a contract step"
                          " `-- contract: <why it is safe now>`")
