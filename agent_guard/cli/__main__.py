"""``python -m agent_guard.cli``: the same as the ``agent-guard`` command."""

from __future__ import annotations

import sys

from agent_guard.cli import main

sys.exit(main())
