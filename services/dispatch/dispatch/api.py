"""Dispatch's HTTP API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from townflow_shared.auth import Principal, require
from townflow_shared.http import Runtime

from . import store

router = APIRouter(tags=["dispatch"])


@router.get("/v1/matters/count")
async def matters_count(runtime: Runtime,
                        _: Annotated[Principal, Depends(require("command_centre"))]) -> dict[str, Any]:
    return {"matters": await store.matter_count(runtime.pool)}
