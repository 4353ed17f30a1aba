"""The demo scenario of `make up`: a morning at 青禾镇's one window. It files a dozen matters
across channels and colours through the real APIs, then walks some of them through."""

from __future__ import annotations

import time
from typing import Any

import httpx

from townflow_shared.auth import issue_token

from .stack import Stack

FILINGS: list[dict[str, Any]] = [
    {"channel": "window", "item_code": "S001", "village": "V01", "location": "青禾村三组",
     "description": "新生儿出生登记落户"},
    {"channel": "window", "item_code": "S002", "village": "V02", "location": "东湖村",
     "description": "城乡居民医保参保"},
    {"channel": "proxy", "item_code": "S007", "village": "V03", "location": "西山村",
     "description": "代办高龄津贴申领", "proxy_agent_id": "s035"},
    {"channel": "village_station", "item_code": "T001", "village": "V04", "location": "南塘村村道 K2+300",
     "description": "村道路面塌陷", "village_record_id": "NT-2026-118", "colour": "orange"},
    {"channel": "hotline", "item_code": "T003", "village": "V05", "location": "北岗村水库坝体",
     "description": "坝体渗水"},
    {"channel": "online", "item_code": "E001", "village": "V06", "location": "柳溪社区菜场路口",
     "description": "早市占道经营", "target": "SITE-LX-001"},
    {"channel": "hotline", "item_code": "E003", "village": "V02", "location": "东湖村工业园 3 号",
     "description": "企业消防通道堵塞", "target": "91321003MA1XYZ0001"},
    {"channel": "window", "item_code": "E007", "village": "V02", "location": "东湖村工业园 3 号",
     "description": "夜间生产噪声扰民", "target": "91321003MA1XYZ0001"},
    {"channel": "online", "item_code": "E004", "village": "V02", "location": "东湖村工业园 3 号",
     "description": "员工食堂无健康证上岗", "target": "91321003MA1XYZ0001"},
    {"channel": "window", "item_code": "J001", "village": "V01", "location": "青禾村七组宅基地",
     "description": "翻建农房申请", "target": "SITE-QH-0707"},
    {"channel": "self_service", "item_code": "S010", "village": "V06", "location": "柳溪社区",
     "description": "失业登记"},
    {"channel": "village_station", "item_code": "T004", "village": "V03", "location": "西山村",
     "description": "宅基地边界纠纷", "village_record_id": "XS-2026-045"},
]


def run_demo(stack: Stack) -> list[dict[str, Any]]:
    clerk = {"Authorization": f"Bearer {issue_token(stack.jwt_secret, 's010', ['clerk'])}"}
    intake = stack.services["intake"].url
    filed: list[dict[str, Any]] = []
    with httpx.Client(timeout=20) as client:
        for n, filing in enumerate(FILINGS, start=1):
            body = {**filing, "citizen": {"name": f"演示群众{n}", "phone": f"1390000{n:04d}"}}
            response = client.post(f"{intake}/v1/requests", json=body, headers=clerk)
            response.raise_for_status()
            ticket = response.json()
            filed.append(ticket)
            print(f"  filed {ticket['ticket_no']}  {filing['item_code']:<5} {ticket['colour']:<6} "
                  f"via {filing['channel']:<15} code {ticket['access_code']}")
        time.sleep(0)  # the rest of the walk-through follows the matters as they are dispatched
    return filed
