"""`make screenshots`: every page of the console on the demo county's data, as PNGs under
docs/console/ (shown in the README). Starts its own stack, runs the demo scenario, signs in as the
demo accounts in Debian's Chromium (CJK fonts from fonts-noto-cjk) and saves each page."""

from __future__ import annotations

import secrets
import sys
import time
from typing import Any

import httpx
from playwright.sync_api import Page, ViewportSize, sync_playwright

from townflow_shared.settings import DEMO_COUNTY_DIR

from .demo import COMMAND, QINGHE, run_demo
from .demo_accounts import DEMO_PASSWORD
from .receivers import Receivers
from .stack import REPO, SERVICES, Stack

OUT = REPO / "docs" / "console"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run", "--font-render-hinting=none"]
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


def _api(stack: Stack, service: str, path: str, who: tuple[str, ...], **params: Any) -> Any:
    token = stack.token(service, who[0], who[1:], town=QINGHE)
    response = httpx.get(stack.services[service].url + path, params=params,
                         headers={"Authorization": f"Bearer {token}"}, timeout=20)
    response.raise_for_status()
    return response.json()


def main() -> int:
    stack = Stack.in_temp_dir(extra_env={"TOWNFLOW_TOWN_DIR": str(DEMO_COUNTY_DIR)})
    receivers = None
    try:
        print("starting the stack, notify and its receivers, and the console ...", flush=True)
        stack.start_infra()
        # Notify as `make up` runs it (its delivery log is a page: 消息记录), sending to the local receivers.
        secret = "SEC" + secrets.token_hex(16)
        stack.extra_env["QINGHE_COMMAND_ROBOT_SECRET"] = secret
        receivers = Receivers(stack.workdir, dingtalk={"qinghe-command": secret}, wecom=["qinghe-staff"]).start()
        stack.use_receivers(receivers)
        stack.start_services([*SERVICES, "notify"])
        console = stack.start_console()
        filed = run_demo(stack)
        shots(console.url, stack, filed)
    finally:
        stack.stop()
        if receivers is not None:
            receivers.stop()
    return 0


def _wait_for_sent_messages(stack: Stack, timeout: float = 60.0) -> None:
    """Until notify has sent what the demo's events asked (its log then shows 已发送, not 未发送)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = _api(stack, "notify", "/v1/deliveries", COMMAND, limit=50)
        if log and all(d["status"] == "sent" for d in log):
            return
        time.sleep(1)


def shots(url: str, stack: Stack, filed: list[dict[str, Any]]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    open_task = next(t for t in _api(stack, "dispatch", "/v1/tasks", COMMAND)
                     if t["status"] in ("accepted", "dispatched") and t["kind"] == "service")
    inspection = _api(stack, "enforcement", "/v1/inspections", ("s026", "officer"), status="done")[0]
    case = _api(stack, "enforcement", "/v1/cases", ("s026", "officer"))[0]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium-headless-shell", headless=True, args=CHROMIUM_ARGS)

        def person(login: str | None, phone: bool = False) -> Page:
            context = browser.new_context(base_url=url, locale="zh-CN", viewport=PHONE if phone else DESKTOP,
                                          device_scale_factor=2 if phone else 1, is_mobile=phone)
            page = context.new_page()
            if login:
                page.goto("/signin")
                page.locator("input[name=login]").fill(login)
                page.locator("input[name=password]").fill(DEMO_PASSWORD)
                page.get_by_role("button", name="登录").click()
                page.wait_for_load_state()
            return page

        def save(page: Page, path: str, name: str) -> None:
            page.goto(path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
            print(f"  {OUT.relative_to(REPO)}/{name}.png  {path}", flush=True)

        save(person(None), "/signin", "signin")
        command = person("qh-s030")
        save(command, "/board", "board")
        save(command, f"/board/tasks/{open_task['task_id']}", "board-task")
        clerk = person("qh-s010")
        save(clerk, "/intake", "intake")
        clerk.locator("input[name=item_code]").fill("S002")
        clerk.locator("textarea[name=description]").fill("城乡居民医保参保登记")
        clerk.locator("select[name=village]").select_option("V03")
        clerk.locator("input[name=location]").fill("西山村二组")
        clerk.locator("input[name='citizen.name']").fill("演示群众")
        clerk.locator("input[name='citizen.phone']").fill("13900009999")
        clerk.get_by_role("button", name="受理并出具回执").click()
        clerk.wait_for_load_state()
        clerk.screenshot(path=str(OUT / "receipt.png"), full_page=True)
        print(f"  {OUT.relative_to(REPO)}/receipt.png  (the answer to the filing)", flush=True)
        holder = person(f"qh-{open_task['assignee']}", phone=True)
        save(holder, "/tasks", "tasks")
        save(holder, f"/tasks/{open_task['task_id']}", "task")  # the matter and its citizen, for 回访
        save(command, "/suspensions", "suspensions")
        _wait_for_sent_messages(stack)
        save(command, "/deliveries", "deliveries")
        citizen = person(None, phone=True)
        citizen.goto("/status")
        citizen.locator("input[name=ticket]").fill(filed[0]["ticket_no"])
        citizen.locator("input[name=code]").fill(filed[0]["access_code"])
        citizen.get_by_role("button", name="查询").click()
        citizen.wait_for_load_state()
        citizen.screenshot(path=str(OUT / "status.png"), full_page=True)
        print(f"  {OUT.relative_to(REPO)}/status.png  (a citizen's matter, on a phone)", flush=True)
        officer = person("qh-s026", phone=True)
        save(officer, "/enforcement", "enforcement")
        save(officer, f"/enforcement/inspections/{inspection['inspection_id']}", "inspection")
        save(officer, f"/enforcement/cases/{case['case_id']}", "case")
        save(officer, "/enforcement/alerts", "alerts")
        save(person("qh-s032"), "/appraisal", "appraisal")
        save(person("c002"), "/county", "county")
        save(person("qh-s049"), "/board", "refused")
        browser.close()


if __name__ == "__main__":
    sys.exit(main())
