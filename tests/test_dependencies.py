"""Packaging (issue 14): every third-party package the code imports is declared, every
declared requirement has a floor, and the Pi's constraints file pins a version inside
each declared range (so what the Pi installs is what CI's main job tests: .ci/run
installs with the same file; the floors are tested by its lowest-versions job)."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
OWN = {"pos", "screens", "hardware", "sente_pos", "tests", "bench"}
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _requirements(*groups: str) -> list[Requirement]:
    """The requirements of ``groups`` ("" is the main list, else an extra's name)."""
    out: list[Requirement] = []
    for group in groups:
        lines = PROJECT["dependencies"] if not group else PROJECT["optional-dependencies"][group]
        out += [r for r in map(Requirement, lines) if r.name != PROJECT["name"]]
    return out


RUNTIME = _requirements("", "usb", "serial")
ALL = RUNTIME + _requirements("test", "dev")


def imported_top_levels(paths: list[Path]) -> dict[str, Path]:
    """Top-level names of every absolute import (lazy ones inside functions too) in the
    ``.py`` files under ``paths``, less the standard library and our own packages: each
    with one file that imports it."""
    found: dict[str, Path] = {}
    for base in paths:
        for path in sorted(base.rglob("*.py")):
            if "__snapshots__" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in OWN:
                        found.setdefault(top, path)
    return found


_owners = functools.cache(md.packages_distributions)  # reads every installed RECORD


def _undeclared(paths: list[Path], declared: list[Requirement]) -> list[str]:
    names = {canonicalize_name(r.name) for r in declared}
    owners = _owners()
    problems = []
    for top, path in sorted(imported_top_levels(paths).items()):
        dists = {canonicalize_name(d) for d in owners.get(top, [])}
        where = path.relative_to(ROOT)
        if not dists:
            problems.append(f"{top} (imported by {where}) comes from no installed distribution")
        elif not dists & names:
            problems.append(f"{top} (imported by {where}) is from {sorted(dists)}, not declared")
    return problems


def test_product_imports_only_declared_runtime_dependencies() -> None:
    code = [ROOT / p for p in ("pos", "screens", "hardware", "sente_pos")]
    assert _undeclared(code, RUNTIME) == []


def test_tests_and_benches_import_only_declared_dependencies() -> None:
    assert _undeclared([ROOT / "tests", ROOT / "bench"], ALL) == []


def test_the_scan_sees_lazy_imports_and_skips_the_standard_library(tmp_path: Path) -> None:
    (tmp_path / "m.py").write_text("import os, json\nfrom . import x\n"
                                   "def f():\n    import not_a_real_package_x.sub\n")
    assert set(imported_top_levels([tmp_path])) == {"not_a_real_package_x"}


def test_every_declared_requirement_has_a_floor() -> None:
    """.ci/lowest_constraints.py pins each floor; a requirement without one is untested."""
    for req in ALL:
        assert any(s.operator == ">=" for s in req.specifier), f"{req} has no '>=' floor"


def _pins(path: Path) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#")[0].strip()
        if line:
            m = re.fullmatch(r"([A-Za-z0-9._-]+)==(\S+)", line)
            assert m, f"{path.name}: {line!r} is not name==version"
            pins[canonicalize_name(m.group(1))] = Version(m.group(2))
    return pins


def test_pi_constraints_pin_every_declared_dependency_inside_its_range() -> None:
    pins = _pins(ROOT / "constraints-pi.txt")
    for req in ALL:
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints-pi.txt does not pin {req.name}"
        assert req.specifier.contains(pins[name]), \
            f"constraints-pi.txt pins {req.name}=={pins[name]} outside {req.specifier}"
        for extra in req.extras:  # psycopg[binary] -> psycopg-binary
            for dep in map(Requirement, md.requires(req.name) or []):
                if dep.marker and dep.marker.evaluate({"extra": extra}) and \
                        not dep.marker.evaluate({"extra": ""}):
                    assert canonicalize_name(dep.name) in pins, \
                        f"constraints-pi.txt does not pin {dep.name} ({req.name}[{extra}])"

