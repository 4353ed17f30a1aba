"""Generate the event documents: each service's AsyncAPI document (regenerated from code every
time) and the contract snapshot of each published event version (written once, when the version
first appears; the contract test then holds every later change to it).

    python -m devstack.contracts          # write docs/asyncapi/*.json and new snapshots
    python -m devstack.contracts --check  # exit 1 if the AsyncAPI documents are stale
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path
from typing import Any

from townflow_shared.contracts import current_schemas

from .stack import REPO, SERVICES

ASYNCAPI = REPO / "docs" / "asyncapi"
SNAPSHOTS = REPO / "docs" / "contracts"


def asyncapi_documents() -> dict[str, str]:
    documents = {}
    for service in SERVICES:
        runtime = importlib.import_module(f"{service}.app").create_runtime()
        spec: Any = runtime.asyncapi()
        documents[service] = json.dumps(spec.to_jsonable(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"
    return documents


def snapshot_path(topic: str) -> Path:
    return SNAPSHOTS / f"{topic}.schema.json"


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
    for topic, schema in current_schemas().items():
        path = snapshot_path(topic)
        if not path.exists():
            stale.append(str(path.relative_to(REPO)))
            if not args.check:
                path.write_text(json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n",
                                encoding="utf-8")
    if stale and args.check:
        print("stale, run `python -m devstack.contracts`:", *stale, sep="\n  ")
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
