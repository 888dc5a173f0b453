"""The alert rules and the dashboard: the rules pass ``promtool check rules``
and their unit tests (``promtool test rules``, from Debian's ``prometheus``
package, which .ci/run installs); every metric they and the dashboard name is
one the app exposes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.api.conftest import WORKER, running
from tests.conftest import base_settings, unavailable
from tests.ops.conftest import SCRAPE_TOKEN

ROOT = Path(__file__).parents[2]
RULES = ROOT / "deploy" / "prometheus" / "aiprod-rules.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "aiprod-rules.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "aiprod.json"
NAME = re.compile(r"\baiprod_[a-z0-9_]+")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        unavailable("promtool is not installed (apt-get install prometheus)")
    return found


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=RULES.parent,
    )


def test_the_rules_pass_promtool_check() -> None:
    done = run("check", "rules", RULES.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_rules_pass_their_unit_tests() -> None:
    done = run("test", "rules", RULE_TESTS.name)
    assert done.returncode == 0, done.stdout + done.stderr
    tested = set(re.findall(r"alertname: (AIPROD\w+)", RULE_TESTS.read_text()))
    assert len(tested) >= 2, tested


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 20
    return exprs


def _exposed(text: str) -> set[str]:
    """Every sample name the families of a scrape can have."""
    names: set[str] = set()
    for kind_line in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        name, kind = kind_line
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        if kind == "counter" and not name.endswith("_total"):
            names.add(f"{name}_total")
    return names


async def test_every_metric_named_by_the_rules_and_the_dashboard_is_exposed(
    tmp_path: Path, database_url: str
) -> None:
    token = tmp_path / "token"
    token.write_text(SCRAPE_TOKEN)
    # The signing key from its file (as `aiprod serve` makes it): its age is exposed.
    settings = base_settings(tmp_path, database_url, secret_key=None, metrics_token_file=token)
    async with running(settings) as api:
        await api.jobs.beat(WORKER, "host", 1)
        r = await api.client.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE_TOKEN}"})
        assert r.status_code == 200, r.text
    exposed = _exposed(r.text)
    named = set(NAME.findall(RULES.read_text()))
    for expr in _dashboard_exprs():
        named |= set(NAME.findall(expr))
    assert named - exposed == set(), sorted(exposed)


def test_recorded_series_used_by_the_dashboard_are_recorded() -> None:
    recorded = set(re.findall(r"record: (aiprod:\S+)", RULES.read_text()))
    used = {n for e in _dashboard_exprs() for n in re.findall(r"\baiprod:[a-z0-9_:]+", e)}
    assert used <= recorded, used - recorded


@pytest.mark.parametrize("path", [RULES, RULE_TESTS])
def test_the_rule_files_are_in_the_docs(path: Path) -> None:
    docs = (ROOT / "docs" / "operations.md").read_text()
    assert str(path.relative_to(ROOT)) in docs
