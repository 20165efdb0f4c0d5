"""The shape of the code, checked: module sizes, and the import contracts covering every core module."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "worker", "api", "ttsq")
MAX_MODULE_LINES = 400
COMPOSITION_ROOT = ("ttsq.cli", "ttsq.__main__")
"""The only modules of ttsq allowed to import the adapters."""


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_no_module_is_over_the_size_limit() -> None:
    too_long = {
        str(path.relative_to(ROOT)): lines
        for package in PACKAGES
        for path in _modules(package)
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines (split them by concern): {too_long}"


def _core_contract() -> dict[str, list[str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if "api" in c.get("forbidden_modules", []) and c["source_modules"] != ["engine"])


def test_every_core_module_is_bound_by_the_core_contract() -> None:
    """A new module in ttsq is either core (and may not import api or worker) or part of the CLI: never neither."""
    listed = set(_core_contract()["source_modules"])
    top_level = {
        f"ttsq.{path.stem if path.is_file() else path.name}"
        for path in (ROOT / "ttsq").iterdir()
        if (path.suffix == ".py" and path.stem != "__init__") or (path.is_dir() and (path / "__init__.py").exists())
    }
    unbound = top_level - listed - set(COMPOSITION_ROOT)
    assert not unbound, f"add these to the core contract in pyproject.toml (or to the CLI): {sorted(unbound)}"
    assert not listed - top_level, f"the core contract names modules that do not exist: {sorted(listed - top_level)}"
    assert set(COMPOSITION_ROOT) <= set(_core_contract()["forbidden_modules"])
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    light = next(c for c in contracts if "engine.tts" in c.get("forbidden_modules", []))
    assert set(light["source_modules"]) == listed | {"api"}, "the two lists of core modules in pyproject.toml differ"


def test_the_contracts_hold_and_catch_an_api_module_importing_the_worker(tmp_path: Path) -> None:
    """lint-imports passes on the tree as it is, and fails once an api module imports worker (on a copy)."""
    import shutil
    import subprocess

    lint = Path(sys.executable).with_name("lint-imports")
    for name in (*PACKAGES, "pyproject.toml"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tmp_path / name)

    def run() -> subprocess.CompletedProcess[str]:
        command = [str(lint), "--no-cache"]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)

    clean = run()
    assert clean.returncode == 0, clean.stdout + clean.stderr
    errors = tmp_path / "api" / "errors.py"
    errors.write_text(errors.read_text(encoding="utf-8") + "\nfrom worker import runtime  # noqa: E402,F401\n")
    broken = run()
    assert broken.returncode != 0
    assert "The API and the worker never import each other BROKEN" in broken.stdout


def test_a_foreign_top_level_package_of_our_names_is_one_clear_error(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Issue 15, item 11: `engine`, `worker` and `api` are top-level names other distributions may install."""
    import importlib.util

    import pytest

    import ttsq

    ttsq._check_siblings()  # ours, as installed here
    foreign = tmp_path / "site" / "engine" / "__init__.py"
    foreign.parent.mkdir(parents=True)
    foreign.write_text("")
    real = importlib.util.find_spec

    def find(name: str, package: str | None = None):  # type: ignore[no-untyped-def]
        return importlib.util.spec_from_file_location(name, foreign) if name == "engine" else real(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find)
    with pytest.raises(ImportError, match=r"ttsq needs its own 'engine' package beside it .* another distribution"):
        ttsq._check_siblings()
