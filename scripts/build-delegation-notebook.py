"""Write notebooks/delegation.ipynb (without outputs) from the cells below.

Run: ``.venv/bin/python scripts/build-delegation-notebook.py``; tests/test_notebooks.py executes it.
"""

from __future__ import annotations

from _notebooks import write_notebook
from nbformat.v4 import new_code_cell, new_markdown_cell

CELLS = [
    new_markdown_cell("""# Delegation: a sub-agent gets a grant that only ever narrows

A support agent plans a task: look up to three customers and email Alice a summary. It hands the lookups to a
**researcher** sub-agent. The researcher gets its own grant — a *child* of the support agent's:

* its scope is its own plan ∩ the parent's scope: it can never ask for a tool, an argument value or a budget the
  parent does not hold (`exceeds_parent_scope`);
* every call it makes spends the parent's budget too, atomically;
* it lives no longer than the parent, and dies with it;
* its claims carry the delegation chain in a nested RFC 8693 `act` claim, which any resource server can verify with
  the public JWKS alone."""),
    new_code_cell("""import base64
import json

from IPython.display import HTML, display

from agent_guard import (AgentIdentity, Capability, Guard, Plan, PlanRejected, Policy, Step, ToolCallDenied,
                         verify_grant)
from agent_guard.telemetry import decision_rows
from agent_guard.testing import SpanCapture

spans = SpanCapture()
policy = Policy(agent_id="support-bot", capabilities=[
    Capability("crm_lookup", args={"customer_id": {"regex": r"C-\\d+"}}),
    Capability("send_email", args={"to": {"email_domain_in": ["example.com"]}, "body": {"max_len": 2000}}),
])
guard = Guard(policy, tracer_provider=spans.provider)
me = AgentIdentity(agent_id="support-bot", user_id="u-1")
plan = Plan(goal="summarise three customers for Alice", steps=[
    Step("crm_lookup", args={"customer_id": {"regex": r"C-\\d+"}}, max_calls=3),
    Step("send_email", args={"to": "alice@example.com", "body": {"any": True}}),
])


@guard.wrap
def crm_lookup(customer_id: str) -> dict:
    \"\"\"Look a customer up.\"\"\"
    return {"id": customer_id, "name": f"customer {customer_id}"}


@guard.wrap
def send_email(to: str, body: str) -> str:
    \"\"\"Send an email.\"\"\"
    return f"sent to {to}\""""),
    new_markdown_cell("""## The parent delegates the lookups

The researcher asks for two lookups. Inside its block, every call is decided against the child grant; outside
it, against the parent's. The researcher cannot send email: its grant does not hold that tool."""),
    new_code_cell("""findings = []
with guard.task(plan, identity=me) as task:
    research = Plan(steps=[Step("crm_lookup", args={"customer_id": {"regex": r"C-\\d+"}}, max_calls=2)])
    with guard.delegate(research, agent_id="researcher") as child:
        findings += [crm_lookup(customer_id="C-1"), crm_lookup(customer_id="C-2")]
        try:
            send_email(to="alice@example.com", body="from the researcher")
        except ToolCallDenied as denied:
            print("researcher:", denied.decision.message)
        child_token = child.grant
    print("parent, third lookup:", crm_lookup(customer_id="C-3")["id"])
    try:
        crm_lookup(customer_id="C-4")          # 2 (child) + 1 (parent) = the plan's 3
    except ToolCallDenied as denied:
        print("parent, fourth lookup:", denied.reason)
    print(send_email(to="alice@example.com", body=f"{len(findings) + 1} customers looked up"))"""),
    new_markdown_cell("""## The nested `act` chain

Decoded from the child's token, and verified with the public JWKS only: the outermost `act.sub` is the current
actor; inside it, the agent that delegated. Same `sub` (the user) and `txn` (the task) as the parent; the
parent's grant id in `tctx.parent`."""),
    new_code_cell("""payload = child_token.split(".")[1]
claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
print(json.dumps({k: claims[k] for k in ("sub", "txn", "act")}, indent=2))
print("tctx.parent =", claims["tctx"]["parent"], "== parent jti:", claims["tctx"]["parent"] == task.grant_id)
verified = verify_grant(child_token, guard.jwks(), clock=lambda: claims["iat"])
print("verified chain:", " <- ".join(verified.actors))"""),
    new_markdown_cell("""## A refused widening

A child that asks for more than its parent holds — a tool, an argument value, or more calls than are left — is
refused at mint time, with every widening listed."""),
    new_code_cell("""with guard.task(plan, identity=me):
    greedy = Plan(steps=[
        Step("crm_lookup", args={"customer_id": {"regex": r"C-\\d+"}}, max_calls=5),
        Step("send_email", args={"to": "mallory@example.com", "body": {"any": True}}),
    ])
    try:
        with guard.delegate(greedy, agent_id="researcher"):
            pass
    except PlanRejected as refused:
        print(refused.reason)
        for violation in refused.violations:
            print(f"  step {violation.step} {violation.tool} {violation.argument or ''}: {violation.message}")"""),
    new_markdown_cell("""## Every decision, naming the agent that acted

The decision spans as an HTML table: the researcher's calls carry its own agent id, inside the parent's trace."""),
    new_code_cell("""from html import escape  # tool names come from the model: escape them

rows = decision_rows(spans.spans)
columns = ["tool", "outcome", "reason", "agent"]
html = "<table><tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
for row in rows:
    html += "<tr>" + "".join(f"<td>{escape(str(row.get(c) or ''))}</td>" for c in columns) + "</tr>"
display(HTML(html + "</table>"))
assert [r["agent"] for r in rows][:3] == ["researcher"] * 3"""),
]

if __name__ == "__main__":
    write_notebook(CELLS, "delegation.ipynb")
