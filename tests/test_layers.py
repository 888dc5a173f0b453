"""Imports point downward only (see ../shared/ARCHITECTURE.md):

    api/ cli/ web/                     entry points
    jobs/ identity/ events/ search/ exports/ ops/   platform
    production/ storage/ db/           engine and infrastructure
    errors settings access_config      the ground

A module may import its own package and any package of a lower layer, never
one above; the engine (`production/`) knows nothing of databases or storage
either.  Every import counts, the lazy ones inside functions too.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import aiprod

SRC = Path(aiprod.__file__).parent

LAYER = {
    "errors": 0,
    "settings": 0,
    "access_config": 0,
    "http_ranges": 0,
    "private_files": 0,
    "tls": 0,
    "ssrf": 0,
    "provider_config": 0,
    "production": 1,
    "storage": 1,
    "db": 1,
    "jobs": 2,
    "identity": 2,
    "events": 2,
    "search": 2,
    "exports": 2,
    "ops": 2,
    "api": 3,
    "cli": 3,
    "web": 3,
}
# The ground's modules stand alone, but settings loads its configuration types.
SETTINGS_PARTS = {("settings", "access_config"), ("settings", "provider_config")}
# Beyond the layers: the engine runs from the CLI with no database at all.
ALSO_FORBIDDEN = {"production": {"db", "storage"}}


def _package(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "aiprod" and len(parts) > 1 else None


def _imports(path: Path, src: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    here = ".".join(path.relative_to(src.parent).with_suffix("").parts)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = here.split(".")[: -node.level]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found += [(node.lineno, module)]
            # `from aiprod import jobs` names the package in the alias
            if module == "aiprod":
                found += [(node.lineno, f"aiprod.{a.name}") for a in node.names if a.name[0] != "_"]
    return found


def _violations(src: Path = SRC) -> list[str]:
    bad = []
    for path in sorted(src.rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic scripts load models of every domain by design
        rel = path.relative_to(src)
        own = rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else None
        if own is None or own not in LAYER:
            if own is not None:
                bad.append(f"{rel}: package {own!r} has no layer in tests/test_layers.py")
            continue
        for line, module in _imports(path, src):
            target = _package(module)
            if target is None or target == own:
                continue
            if target not in LAYER:
                bad.append(f"{rel}:{line} imports {module}, which has no layer")
            elif LAYER[target] > LAYER[own]:
                bad.append(f"{rel}:{line} imports {module} (layer {LAYER[target]} > {LAYER[own]})")
            elif (LAYER[target] == LAYER[own] == 0 or target in ALSO_FORBIDDEN.get(own, ())) and (
                (own, target) not in SETTINGS_PARTS
            ):
                bad.append(f"{rel}:{line} imports {module}")
    return bad


def test_imports_point_downward_only() -> None:
    assert _violations() == []


def test_the_walk_sees_upward_imports(tmp_path: Path) -> None:
    """The checker itself: an upward import, absolute or relative, is found."""
    src = tmp_path / "aiprod"  # a copy: the checkout is never written to
    shutil.copytree(SRC, src, ignore=shutil.ignore_patterns("__pycache__"))
    (src / "jobs" / "_layer_probe.py").write_text(
        "from aiprod.api import app\nfrom ..cli import common\n"
    )
    found = _violations(src)
    assert len(found) == 2 and all("_layer_probe" in v for v in found), found


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("aiprod.production.pipeline", ["aiprod.identity", "aiprod.jobs", "aiprod.db", "fastapi"]),
        ("aiprod.settings", ["aiprod.identity", "aiprod.production", "aiprod.api"]),
        ("aiprod.jobs.service", ["aiprod.api", "fastapi"]),
    ],
)
def test_loading_a_layer_loads_nothing_above_it(module: str, absent: list[str]) -> None:
    code = (
        f"import sys, {module}\n"
        f"print([m for m in sys.modules if m.split('.')[:2] in "
        f"[p.split('.') for p in {absent!r}]])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
