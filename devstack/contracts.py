"""Generate the event documents: each service's AsyncAPI document (regenerated from code every
time) and the contract snapshot of each published event version. A snapshot is written when the
version first appears and grows with every compatible change (a new optional field), so it holds
every field the version has ever published; an incompatible change never rewrites it, and the
contract test (shared/tests/test_contracts.py) reports it instead.

    python -m devstack.contracts          # write docs/asyncapi/*.json and new or grown snapshots
    python -m devstack.contracts --check  # exit 1 if a document or a snapshot is behind the code
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from townflow_shared.contracts import current_schemas, grown_snapshot, tolerant_enums_of

from .stack import ALL_SERVICES, REPO, without_intake_keys_use_throwaway_ones

ASYNCAPI = REPO / "docs" / "asyncapi"
SNAPSHOTS = REPO / "docs" / "contracts"


def asyncapi_documents() -> dict[str, str]:
    documents = {}
    without_intake_keys_use_throwaway_ones()
    for service in ALL_SERVICES:
        runtime = importlib.import_module(f"{service}.app").create_runtime()
        spec: Any = runtime.asyncapi()
        documents[service] = json.dumps(spec.to_jsonable(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    return documents


def snapshots_to_write(folder: Path, schemas: dict[str, dict[str, Any]]) -> dict[Path, dict[str, Any]]:
    """The snapshots that are missing or behind their version's current schema, with what to write."""
    writes = {}
    for topic, schema in schemas.items():
        path = folder / f"{topic}.schema.json"
        old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        grown = grown_snapshot(old, schema, tolerant=tolerant_enums_of(topic))
        if grown is not None:
            writes[path] = grown
    return writes


def write_snapshot(path: Path, schema: dict[str, Any]) -> None:
    path.write_text(json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.contracts")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    ASYNCAPI.mkdir(parents=True, exist_ok=True)
    SNAPSHOTS.mkdir(parents=True, exist_ok=True)
    for service, text in asyncapi_documents().items():
        path = ASYNCAPI / f"{service}.json"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            stale.append(str(path.relative_to(REPO)))
            if not args.check:
                path.write_text(text, encoding="utf-8")
    for path, schema in snapshots_to_write(SNAPSHOTS, current_schemas()).items():
        stale.append(str(path.relative_to(REPO)))
        if not args.check:
            write_snapshot(path, schema)
    if stale and args.check:
        print("stale, run `python -m devstack.contracts`:", *stale, sep="\n  ")
        return 1
    for written in stale:
        print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
