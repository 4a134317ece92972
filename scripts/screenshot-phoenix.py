"""Reproduce docs/phoenix-denied-call.png: one LangChain agent run, traced by OpenInference and guarded, in Phoenix.

Starts Arize Phoenix on 127.0.0.1 (as the test suite does, see tests/audit/conftest.py), runs the
agent of the end-to-end test (``run_langchain_agent``: ``create_agent`` with
``AgentGuardMiddleware`` under OpenInference's ``LangChainInstrumentor``; the lookup is allowed,
the email an injected instruction asked for is denied), exports it by OTLP, waits until Phoenix
has every span, opens the trace with the denied decision selected in headless Chromium, saves
the screenshot and stops Phoenix. Not part of ``make test``.

Chromium is driven through the DevTools protocol (``websockets``, which the LangChain stack
installs): it opens the denied span, unfolds its attributes, then takes the picture.
Needs Debian's Chromium (``apt-get install -y chromium``; no browser is downloaded) and the
LangChain adapter with OpenInference (``make`` installs both). Run:
``.venv/bin/python scripts/screenshot-phoenix.py [OUT.png]``.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agent_guard.telemetry import configure_otlp

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "support-bot"
WINDOW = (1680, 1240)
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size={WINDOW[0]},{WINDOW[1]}",
    "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
]
UNFOLD_ATTRIBUTES = """
(() => {
  const fold = document.querySelector('button.card__collapsible-button[aria-label="Attributes"]');
  if (fold && fold.getAttribute('aria-expanded') !== 'true') fold.click();
  return Boolean(fold);
})()
"""


class DevTools:
    """A minimal DevTools-protocol session with one page of a headless Chromium."""

    def __init__(self, websocket: Any) -> None:
        self._ws = websocket
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (events received meanwhile are dropped)."""
        msg_id = next(self._ids)
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == msg_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float = 60.0) -> None:
        """Poll until ``expression`` is truthy in the page."""
        deadline = time.monotonic() + timeout_s
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the page never satisfied: {expression}")
            time.sleep(0.25)


@contextlib.contextmanager
def chromium_page(chromium: str, profile: Path) -> Iterator[DevTools]:
    """Headless Chromium on an empty profile, with a DevTools session on its page; stopped afterwards."""
    profile.mkdir(parents=True)
    process = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.2)
        port = port_file.read_text().split()[0]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            (page,) = [t for t in json.loads(resp.read()) if t["type"] == "page"]
        from websockets.sync.client import connect

        with connect(page["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024, open_timeout=30) as websocket:
            yield DevTools(websocket)
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def screenshot(chromium: str, profile: Path, url: str, out: Path, denied_name: str, reason: str) -> None:
    """Open ``url`` (the denied span in its trace), unfold the span's attributes, save a PNG of the window."""
    with chromium_page(chromium, profile) as page:
        page.call("Emulation.setDeviceMetricsOverride", width=WINDOW[0], height=WINDOW[1], deviceScaleFactor=1,
                  mobile=False)
        page.call("Page.navigate", url=url)
        text = "document.body && document.body.innerText"
        page.wait_for(f"{text}.includes({json.dumps(denied_name)}) && {text}.includes({json.dumps(reason)})")
        if page.evaluate(UNFOLD_ATTRIBUTES):
            page.wait_for(f"{text}.includes('agent_guard.decision.reason')", timeout_s=20)
        else:
            print("warning: the span's attribute panel was not found; the picture shows it folded", file=sys.stderr)
        time.sleep(1.0)  # let the panel finish its animation
        shot = page.call("Page.captureScreenshot", format="png", captureBeyondViewport=False)
        out.write_bytes(base64.b64decode(shot["data"]))


def load_fixtures() -> Any:
    """tests/audit/conftest.py as a module (start_phoenix, the REST helpers, run_langchain_agent)."""
    spec = importlib.util.spec_from_file_location("audit_conftest", ROOT / "tests" / "audit" / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["audit_conftest"] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    """Start Phoenix, run the agent, screenshot its trace, stop."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "phoenix-denied-call.png"
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("needs chromium: apt-get install -y chromium", file=sys.stderr)
        return 2
    fixtures = load_fixtures()
    with tempfile.TemporaryDirectory(prefix="phoenix-shot-") as tmp:
        server = fixtures.start_phoenix(Path(tmp) / "phoenix")
        try:
            provider = configure_otlp(server.url, service_name="support-bot", project_name=PROJECT)
            sent = InMemorySpanExporter()
            provider.add_span_processor(SimpleSpanProcessor(sent))
            try:
                statuses = fixtures.run_langchain_agent(provider)
            finally:
                provider.shutdown()
            print(f"tool messages: {statuses}")
            expected = len(sent.get_finished_spans())
            spans = server.wait_for_spans(PROJECT, lambda s: len(s) >= expected, limit=1000)
            (denied,) = [s for s in spans if s["attributes"].get("agent_guard.decision.outcome") == "deny"]
            trace_ids = {s["context"]["trace_id"] for s in spans}
            assert len(trace_ids) == 1, f"expected one trace, got {trace_ids}"
            url = f"{server.url}/redirects/spans/{denied['context']['span_id']}"
            print(f"{len(spans)} spans in trace {denied['context']['trace_id']}; denied: {denied['name']} "
                  f"({denied['status_message']}): {url}")
            out.parent.mkdir(parents=True, exist_ok=True)
            screenshot(chromium, Path(tmp) / "chromium", url, out, denied["name"], denied["status_message"])
            print(f"wrote {out}")
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
