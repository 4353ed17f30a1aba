"""No product code pipelines statements (asyncpg's `executemany`, COPY): a backend waiting for the
rest of a pipeline is out of reach of `idle_in_transaction_session_timeout`, so a replica paused
mid-pipeline keeps every lock its transaction took until a peer's stuck-session reaper ends its
session (db.END_STUCK_SESSIONS, 5 s) — a window as wide as the pipeline, where one statement leaves
only its prepare (intake's `_as_json` says how this was found and measured). Each statement is one
message; many rows go in one statement (`unnest`, `jsonb_populate_recordset`)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PIPELINES = {"executemany", "copy_records_to_table", "copy_to_table", "copy_from_table", "copy_from_query"}


def _product_modules() -> list[Path]:
    found = [p for p in (ROOT / "shared" / "townflow_shared").rglob("*.py")]
    for service in ("intake", "dispatch", "enforcement", "appraisal", "console", "notify"):
        found += (ROOT / "services" / service / service).rglob("*.py")
    return found


def test_the_product_sends_no_statement_pipelines() -> None:
    modules = _product_modules()
    assert len(modules) > 50  # the walk found the product, not an empty folder
    calls = [f"{path.relative_to(ROOT)}:{node.lineno} {node.func.attr}"
             for path in modules for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in PIPELINES]
    assert calls == [], "one statement per message, many rows in one statement: " + ", ".join(calls)
