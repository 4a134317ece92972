"""The agent-guard command line: demo, inspect, keys."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent_guard import AgentIdentity, Guard, KeySet, Plan
from agent_guard.cli import main
from agent_guard.cli._demo import run_demo


def test_demo_tells_the_whole_story() -> None:
    """The demo shows allowed calls, each denial reason, the revocation and the audit table."""
    out = io.StringIO()
    assert run_demo(out) == 0
    text = out.getvalue()
    for fragment in ("ALLOW crm_lookup", "argument_mismatch", "argument_not_allowed", "tool_not_in_scope",
                     "budget_exhausted", "grant revoked: True (reason: plan_completed)", "no_grant",
                     "typ=agent-grant+jwt", "audit trail", "revoked      plan_completed", "limit_exceeded",
                     "(limit: issue_credit: sum_of amount per user per 86400 s)"):
        assert fragment in text, fragment


def test_installed_entry_point_runs_the_demo() -> None:
    """`agent-guard demo` works as an installed console script."""
    exe = Path(sys.executable).with_name("agent-guard")
    result = subprocess.run([str(exe), "demo"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "plan_completed" in result.stdout


# Runs the demo in a fresh interpreter where `opentelemetry.sdk` cannot be imported (a plain install).
_WITHOUT_SDK = """
import importlib.abc, sys

class NoSdk(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None

sys.meta_path.insert(0, NoSdk())
try:
    import opentelemetry.sdk.trace
except ImportError:
    pass
else:
    sys.exit("the blocker did not block")
from agent_guard.cli import main
code = main(["demo"])
print("SDK loaded:", sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk")), file=sys.stderr)
sys.exit(code)
"""


def test_demo_runs_without_the_opentelemetry_sdk() -> None:
    """A plain `pip install agent-guard` has no SDK: the demo still prints its audit table, from its signed log."""
    result = subprocess.run([sys.executable, "-c", _WITHOUT_SDK], capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 0, result.stderr
    assert "SDK loaded: []" in result.stderr
    out = result.stdout
    assert "8. The audit trail" in out and "needs an optional dependency" not in out + result.stderr
    table = out[out.index("8. The audit trail"):].splitlines()
    assert table[1].split() == ["tool", "outcome", "reason", "step", "task"]
    assert any(line.split()[:3] == ["delete_account", "deny", "tool_not_in_scope"] for line in table[3:])
    assert "--jwks jwks.json: OK," in out and "signed checkpoint(s)" in out


def test_keys_and_inspect(tmp_path: Path, capsys: pytest.CaptureFixture[str], guard: Guard, plan: Plan,
                          identity: AgentIdentity) -> None:
    """keys prints a public JWKS and writes a 0600 private set; inspect verifies against a JWKS."""
    private = tmp_path / "keys.json"
    assert main(["keys", "--alg", "ES256", "--private-out", str(private)]) == 0
    jwks = json.loads(capsys.readouterr().out)
    assert jwks["keys"][0]["alg"] == "ES256" and "d" not in jwks["keys"][0]
    assert os.stat(private).st_mode & 0o777 == 0o600
    keys = KeySet.from_private_jwks(private.read_text())
    assert keys.jwks() == jwks
    assert main(["keys", "--private-out", str(private)]) == 1  # never overwrite a key file


    live = Guard(guard.policy, keys=keys)
    with live.task(plan, identity=identity) as task:
        token = task.grant
    (tmp_path / "jwks.json").write_text(json.dumps(jwks))
    capsys.readouterr()
    assert main(["inspect", token, "--jwks", str(tmp_path / "jwks.json")]) == 0
    out = capsys.readouterr().out
    assert "VERIFIED" in out and "actor      support-bot" in out and "customer_id: = \"C-42\"" in out
    assert main(["inspect", token]) == 0 and "NOT VERIFIED" in capsys.readouterr().out
    (tmp_path / "other.json").write_text(json.dumps(KeySet.generate().jwks()))
    assert main(["inspect", token, "--jwks", str(tmp_path / "other.json")]) == 1
    assert "REJECTED (invalid_grant)" in capsys.readouterr().out
    assert main(["inspect", "garbage"]) == 2


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """Without a subcommand the CLI prints help and exits 2."""
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out


def test_inspect_explains_limits_agents_and_delegation(capsys: pytest.CaptureFixture[str]) -> None:
    """`inspect` of a delegated grant names its limits, the reserved agent and the actor chain."""
    from agent_guard import Capability, Limit, Policy, Step

    policy = Policy(agent_id="bank", capabilities=[
        Capability("transfer", args={"amount": {"max": 500}},
                   limits=[Limit(sum_of="amount", max=1000, per="user", window_s=86400)]),
    ])
    guard = Guard(policy)
    plan = Plan(steps=[Step("transfer", args={"amount": {"any": True}}, max_calls=2, agent="payer")])
    with guard.task(plan, identity=AgentIdentity(agent_id="bank", user_id="u-1")):
        assert main(["inspect", guard.current_task().grant]) == 0  # type: ignore[union-attr]
        parent_text = capsys.readouterr().out
        with guard.delegate(Plan(steps=[Step("transfer", args={"amount": 5})]), agent_id="payer") as child:
            assert main(["inspect", child.grant]) == 0
    child_text = capsys.readouterr().out
    assert "only agent payer" in parent_text and "delegated  from" not in parent_text
    assert "limit: at most 1000 of amount per user per 86400 s" in child_text
    assert "actors payer <- bank" in child_text
