"""Reproduce docs/phoenix-denied-call.png: a guarded agent's denied call, shown by Arize Phoenix.

Starts Phoenix on 127.0.0.1 (as the test suite does, see tests/audit/conftest.py), runs a small
guarded agent exporting by OTLP, waits for the spans, opens the trace with the denied span
selected in headless Chromium, saves the screenshot and stops Phoenix. Not part of ``make test``.

Needs ``apt-get install -y chromium``. Run: ``.venv/bin/python scripts/screenshot-phoenix.py [OUT.png]``.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step, ToolCallDenied
from agent_guard.telemetry import configure_otlp

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "agent-guard-demo"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--virtual-time-budget=20000", "--window-size=1600,1000",
    "--hide-scrollbars",
]


def load_fixtures() -> Any:
    """tests/audit/conftest.py as a module (start_phoenix and the REST helpers)."""
    spec = importlib.util.spec_from_file_location("audit_conftest", ROOT / "tests" / "audit" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit_conftest"] = module
    spec.loader.exec_module(module)
    return module


def run_agent(endpoint: str) -> None:
    """A support bot: a lookup, an injected refund (denied), the planned email."""
    policy = Policy(agent_id="support-bot", capabilities=[
        Capability("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}),
        Capability("send_email", args={"to": {"email_domain_in": ["example.com"]}, "body": {"max_len": 2000}}),
        Capability("refund", args={"order_id": {"prefix": "O-"}, "amount": {"min": 0, "max": 100}}),
    ])
    provider = configure_otlp(endpoint, service_name="support-bot", project_name=PROJECT)
    guard = Guard(policy, tracer_provider=provider)
    plan = Plan(goal="email Alice her account summary", steps=[
        Step("crm_lookup", args={"customer_id": "C-42"}),
        Step("send_email", args={"to": "alice@example.com", "body": {"any": True}}),
    ])
    calls = [
        ("call_lookup_1", "crm_lookup", {"customer_id": "C-42"}),
        ("call_refund_2", "refund", {"order_id": "O-9", "amount": 99}),
        ("call_email_3", "send_email", {"to": "alice@example.com", "body": "Your summary"}),
    ]
    try:
        with guard.task(plan, identity=AgentIdentity(agent_id="support-bot", user_id="u-1")):
            for call_id, name, args in calls:
                with guard.tool_call(name, args, call_id=call_id) as call:
                    if call.allowed:
                        call.record_result("ok")
                    else:
                        print(f"denied {name}: {call.decision.reason}")
            try:
                guard.wrap(lambda customer_id: None, name="crm_lookup")(customer_id="C-42")
            except ToolCallDenied as denied:
                print(f"denied crm_lookup after the plan: {denied.reason}")
    finally:
        provider.shutdown()


def main() -> int:
    """Start Phoenix, emit, screenshot, stop."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "phoenix-denied-call.png"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs chromium: apt-get install -y chromium", file=sys.stderr)
        return 2
    fixtures = load_fixtures()
    with tempfile.TemporaryDirectory(prefix="phoenix-shot-") as tmp:
        server = fixtures.start_phoenix(Path(tmp) / "phoenix")
        try:
            run_agent(server.url)
            spans = server.wait_for_spans(
                PROJECT, lambda s: len(s) >= 1, attribute="agent_guard.decision.outcome:deny"
            )
            denied = next(s for s in spans if s["attributes"].get("gen_ai.tool.call.id") == "call_refund_2")
            trace_id = denied["context"]["trace_id"]
            server.wait_for_spans(PROJECT, lambda s: len(s) >= 5, trace_id=trace_id)
            url = f"{server.url}/redirects/spans/{denied['context']['span_id']}"
            print(f"trace {trace_id}: {url}")
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run(
                [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp}/chromium", f"--screenshot={out}", url],
                check=True, timeout=120, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            print(f"wrote {out}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
