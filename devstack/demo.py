"""The demo scenario of `make up`: a morning at 青禾镇's one window (in the demo county 禾川县, or
as a one-town deployment). It files a dozen matters across channels and colours through the real
APIs, then walks some of them through."""

from __future__ import annotations

import time
from typing import Any

import httpx

from .stack import Stack

QINGHE = "321003104"  # 青禾镇: the demo town, alone or in the demo county

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


class Demo:
    """Calls the services as the town's people would, with tokens for their staff ids."""

    def __init__(self, stack: Stack, town: str = QINGHE) -> None:
        self.stack = stack
        self.town = town  # the `town` claim of its staff's tokens
        self.client = httpx.Client(timeout=20)

    def url(self, service: str, path: str) -> str:
        return f"{self.stack.services[service].url}{path}"

    def call(self, method: str, service: str, path: str, who: tuple[str, ...] | None = None,
             **kwargs: Any) -> Any:
        headers = {}
        if who:
            headers["Authorization"] = f"Bearer {self.stack.token(service, who[0], who[1:], town=self.town)}"
        response = self.client.request(method, self.url(service, path), headers=headers, **kwargs)
        response.raise_for_status()
        return response.json()

    def wait(self, what: str, check: Any, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if value := check():
                return value
            time.sleep(0.2)
        raise TimeoutError(f"demo: timed out waiting for {what}")

    def task_of(self, request_id: str) -> dict[str, Any]:
        return self.wait(f"the task of {request_id}", lambda: next(iter(self.call(
            "GET", "dispatch", "/v1/tasks", ("s030", "command_centre"), params={"request_id": request_id})), None))


COMMAND = ("s030", "command_centre")


def run_demo(stack: Stack) -> list[dict[str, Any]]:
    demo = Demo(stack)
    filed: list[dict[str, Any]] = []
    for n, filing in enumerate(FILINGS, start=1):
        body = {**filing, "citizen": {"name": f"演示群众{n}", "phone": f"1390000{n:04d}"}}
        ticket = demo.call("POST", "intake", "/v1/requests", ("s010", "clerk"), json=body)
        filed.append(ticket)
        print(f"  filed {ticket['ticket_no']}  {filing['item_code']:<5} {ticket['colour']:<6} "
              f"via {filing['channel']:<15} code {ticket['access_code']}")
    tasks = [demo.task_of(t["request_id"]) for t in filed]
    for task in tasks:
        print(f"  dispatched {task['ticket_no']} -> {task['assignee']} ({task['assigned_via']}岗) "
              f"{task['kind']:<11} resolve by {task['resolve_by'][:16]}")

    # Four service matters are accepted, completed, checked and rated.
    for n in (0, 1, 2, 10):
        ticket, task = filed[n], tasks[n]
        holder = (task["assignee"], "staff")
        demo.call("POST", "dispatch", f"/v1/tasks/{task['task_id']}/accept", holder)
        demo.call("POST", "dispatch", f"/v1/tasks/{task['task_id']}/complete", holder,
                  json={"resolution": "已办结，材料齐全", "reply": "已为您办理完毕，材料齐全。"})
        demo.call("POST", "dispatch", f"/v1/tasks/{task['task_id']}/verify", COMMAND,
                  json={"passed": True, "note": "电话回访核实"})
        demo.wait("intake to see the completion", lambda t=ticket: demo.call(
            "GET", "intake", f"/v1/requests/{t['ticket_no']}", params={"code": t["access_code"]}
        )["status"] in ("completed", "closed"))
        demo.call("POST", "intake", f"/v1/requests/{ticket['ticket_no']}/rating",
                  params={"code": ticket["access_code"]}, json={"rating": "satisfied"})
        print(f"  closed and rated {ticket['ticket_no']}")

    # The road repair is returned as the wrong post and redispatched by the command centre.
    road = tasks[3]
    demo.call("POST", "dispatch", f"/v1/tasks/{road['task_id']}/return", (road["assignee"], "staff"),
              json={"reason": "属交通部门养护路段，请指挥中心改派"})
    new = demo.call("POST", "dispatch", f"/v1/tasks/{road['task_id']}/redispatch", COMMAND,
                    json={"assignee": "s022"})
    print(f"  returned and redispatched {road['ticket_no']} -> {new['assignee']}")

    # The mediation needs more time: an extension asked and approved.
    mediation = tasks[11]
    demo.call("POST", "dispatch", f"/v1/tasks/{mediation['task_id']}/accept", (mediation["assignee"], "staff"))
    demo.call("POST", "dispatch", f"/v1/tasks/{mediation['task_id']}/extend", (mediation["assignee"], "staff"),
              json={"days": 5, "reason": "需村两委共同调解"})
    demo.call("POST", "dispatch", f"/v1/tasks/{mediation['task_id']}/extension/approve", COMMAND,
              json={"note": "同意延期"})
    print(f"  extension approved for {mediation['ticket_no']}")

    # 综合查一次: three matters about one enterprise, one combined visit, one case.
    officer = ("s026", "officer")
    enterprise = "91321003MA1XYZ0001"
    enterprise_tasks = {tasks[n]["task_id"] for n in (6, 7, 8)}
    inspection = demo.wait("the combined inspection", lambda: next((
        i for i in demo.call("GET", "enforcement", "/v1/inspections", officer,
                             params={"target": enterprise, "status": "planned"})
        if {n["task_id"] for n in i["needs"]} >= enterprise_tasks), None))
    print(f"  combined inspection of {enterprise}: units {', '.join(inspection['units'])}; "
          f"{inspection['visits_saved']} separate visits saved")
    path = f"/v1/inspections/{inspection['inspection_id']}"
    demo.call("POST", "enforcement", f"{path}/start", officer, json={"officers": ["s026", "s027"]})
    outcomes = {tasks[6]["task_id"]: "compliant", tasks[7]["task_id"]: "violation", tasks[8]["task_id"]: "rectify"}
    result = demo.call("POST", "enforcement", f"{path}/result", officer, json={
        "officers": ["s026", "s027"], "present_units": inspection["units"],
        "findings": [{"task_id": t, "outcome": o, "note": "现场检查记录",
                      **({"rectify_by": "2026-12-31"} if o == "rectify" else {})} for t, o in outcomes.items()]})
    case_id = result["cases"][0]
    for step in ("investigated", "reviewed"):
        demo.call("POST", "enforcement", f"/v1/cases/{case_id}/steps", officer, json={"step": step})
    print(f"  inspection done; case {case_id[:8]} opened for the noise violation and reviewed (法制审核)")

    board = demo.call("GET", "dispatch", "/v1/board", COMMAND)
    print("  command-centre board (colour: status counts):")
    for colour, counts in board["counts"].items():
        print(f"    {colour:<6} {counts}")
    print_scoreboard(demo, expected_matters=len(filed))
    return filed


def print_scoreboard(demo: Demo, expected_matters: int) -> None:
    """What the appraisal office reads at the end of the morning."""
    office = ("s032", "appraisal_admin")
    # Four matters closed by hand and three by the inspection: wait until appraisal has them all.
    modules = demo.wait("appraisal to count every matter", lambda: (lambda rows: rows if sum(
        r["counts"]["dispatched"] for r in rows) >= expected_matters and sum(
        r["counts"]["resolved"] for r in rows) >= 7 else None)(
        demo.call("GET", "appraisal", "/v1/scores", office, params={"subject_type": "module"})))
    print("  appraisal scoreboard by module (响应率 / 办结率 / 满意率, composite, points):")

    def pct(value: float | None) -> str:
        return "  -  " if value is None else f"{100 * value:4.0f}%"

    for row in sorted(modules, key=lambda r: (r["rank"] or 99, r["subject_id"])):
        r = row["rates"]
        composite = "  -  " if row["composite"] is None else f"{row['composite']:5.1f}"
        print(f"    #{row['rank'] or '-':<2} {row['subject_id']:<15} {pct(r['response'])} {pct(r['resolution'])} "
              f"{pct(r['satisfaction'])}  {composite}  {row['points']:6.1f}")
    split = demo.call("GET", "appraisal", "/v1/bonus", office, params={"pool": "50000.00"})
    top = ", ".join(f"{s['staff_id']} ¥{s['share']}" for s in split["shares"][:5])
    print(f"  bonus pool ¥{split['pool']} split by coefficient × points; top five: {top}")
