"""A tiny MCP server over stdio (``python _mcp_server.py <log file>``): two tools that log their runs.

Started by ``test_mcp.py`` through ``langchain-mcp-adapters``; each tool call appends a line to the
log file, so the test sees exactly which calls reached the server.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mcp.server.fastmcp import FastMCP

LOG = Path(sys.argv[1])
server = FastMCP("crm")


def _log(line: str) -> None:
    with LOG.open("a", encoding="utf-8") as out:
        out.write(line + "\n")


@server.tool()
def crm_lookup(customer_id: str) -> str:
    """Look a customer up in the CRM."""
    _log(f"crm_lookup {customer_id}")
    return f"Customer {customer_id}: Alice"


@server.tool()
def refund(order_id: str, amount: float) -> str:
    """Refund an order."""
    _log(f"refund {order_id} {amount}")
    return f"refunded {amount} on {order_id}"


if __name__ == "__main__":
    server.run("stdio")
