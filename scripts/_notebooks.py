"""Shared by the notebook builders: write cells as a notebook under notebooks/, without outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_notebook

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def write_notebook(cells: list[Any], name: str) -> Path:
    """Validate and write ``notebooks/<name>`` (python3 kernel, no outputs); returns the path."""
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    })
    nbformat.validate(nb)
    target = NOTEBOOKS / name
    nbformat.write(nb, target)
    print(f"wrote {target}")
    return target
