"""The chaos stack's figures, printed at the end of the run and written to ``chaos-figures.json`` in pytest's
base temporary directory."""

from __future__ import annotations

import json
from typing import Any

import pytest

from .figures import FIGURES


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not FIGURES["cases"]:
        return
    terminalreporter.write_sep("-", "chaos figures")
    for key, value in FIGURES.items():
        if key != "cases":
            terminalreporter.write_line(f"{key}: {value}")
    for case, values in FIGURES["cases"].items():
        terminalreporter.write_line(f"{case}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is not None:
        path = factory.getbasetemp() / "chaos-figures.json"
        path.write_text(json.dumps(FIGURES, indent=2))
        terminalreporter.write_line(f"figures written to {path}")
