"""A new process resuming a paused thread: SqliteSaver (the same file) + RedisGrantStore (the same server).

``python _resume_worker.py <sqlite file> <redis url> <thread id> <sync|async>``: builds a fresh
guard (its own signing keys), a fresh middleware whose planner refuses to plan, resumes the thread
with the human's approval and prints one JSON object: the tool runs, the answers, and the store's
view of the grants.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _resume_scenario as sc
from langgraph.types import Command

from agent_guard import Guard
from agent_guard.stores import RedisGrantStore


def _report(out: dict[str, Any], ran: list[Any], mw: Any, store: RedisGrantStore, old_run: str) -> dict[str, Any]:
    record = out.get("agent_guard_run")
    return {"ran": ran, **sc.outcome(out["messages"]), "active_runs": mw.active_runs,
            "old_run_active": store.is_active(old_run), "record": record}


def main(path: str, url: str, thread: str, mode: str, old_run: str) -> None:
    store = RedisGrantStore(url)
    guard = Guard(sc.POLICY, store=store)
    ran: list[Any] = []
    config = {"configurable": {"thread_id": thread}}
    if mode == "sync":
        from langgraph.checkpoint.sqlite import SqliteSaver

        with SqliteSaver.from_conn_string(path) as saver:
            agent, mw = sc.build(guard, saver, sc.after_pause(), ran, planner=sc.no_planner)
            out = agent.invoke(Command(resume=sc.APPROVE), config)
            print(json.dumps(_report(out, ran, mw, store, old_run)))
        return

    async def run() -> None:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

        async with AsyncSqliteSaver.from_conn_string(path) as saver:
            agent, mw = sc.build(guard, saver, sc.after_pause(), ran, planner=sc.no_planner)
            out = await agent.ainvoke(Command(resume=sc.APPROVE), config)
            print(json.dumps(_report(out, ran, mw, store, old_run)))

    asyncio.run(run())


if __name__ == "__main__":
    main(*sys.argv[1:6])
