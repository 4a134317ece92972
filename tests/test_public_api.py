"""The public API: __all__ is complete and honest, the core imports no framework."""

from __future__ import annotations

import inspect
import subprocess
import sys

import agent_guard
from agent_guard import exceptions


def test_all_names_exist_and_are_documented() -> None:
    """Every name in __all__ exists and every public class/function has a docstring."""
    for name in agent_guard.__all__:
        obj = getattr(agent_guard, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), name


def test_every_exception_is_exported() -> None:
    """All exception classes are re-exported from the package root."""
    for name in exceptions.__all__:
        assert name in agent_guard.__all__, name
        assert issubclass(getattr(exceptions, name), agent_guard.AgentGuardError) or name == "PlanViolation"


def test_version_comes_from_metadata() -> None:
    """__version__ is the installed distribution's version."""
    from importlib.metadata import version

    assert agent_guard.__version__ == version("agent-guard")


def test_core_imports_no_framework() -> None:
    """Importing agent_guard (and its CLI) loads no agent framework."""
    code = (
        "import sys, agent_guard, agent_guard.cli, agent_guard.planning, agent_guard.testing;"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('langchain','langchain_core','langgraph','llama_index')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_missing_optional_dependency_names_the_install(monkeypatch: object, tmp_path: object) -> None:
    """Loading a YAML policy without PyYAML says which pip install fixes it."""
    code = (
        "import sys; sys.modules['yaml']=None\n"
        "from agent_guard import Policy, MissingDependencyError\n"
        "import pathlib, tempfile; p=pathlib.Path(tempfile.mkdtemp())/'p.yaml'; p.write_text('agent_id: a')\n"
        "try:\n    Policy.from_file(p)\nexcept MissingDependencyError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install 'agent-guard[yaml]'" in out
