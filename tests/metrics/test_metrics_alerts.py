"""The shipped alerting rules: promtool checks them and runs their tests on recorded series;
each alert's test fails when the alert never fires and when it always fires."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from metrics.promtool import PROMTOOL

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "prometheus" / "chatmail-alerts.yml"
HERE = Path(__file__).resolve().parent
TESTS = sorted(HERE.glob("alerts*_test.yml"))
ALERTS = re.findall(r"^      - alert: (\w+)$", RULES.read_text(), re.M)


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, check=False)


def with_expr(alert: str, expr: str) -> str:
    """The rules with `alert`'s expression replaced (`for:` dropped: fires at once)."""
    pattern = re.compile(rf"(      - alert: {alert}\n)        expr:.*?\n(?=        labels:)", re.S)
    text, count = pattern.subn(rf"\1        expr: {expr}\n", RULES.read_text())
    assert count == 1, alert
    return text


def test_rules_pass_promtool_check():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in result.stdout


def test_rules_pass_their_tests():
    result = promtool("test", "rules", *map(str, TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_test():
    tested = {name for f in TESTS for name in re.findall(r"alertname: (\w+)", f.read_text())}
    assert set(ALERTS) <= tested, set(ALERTS) - tested
    assert len(ALERTS) >= 10


def groups_of(alert: str) -> str:
    """The test file of `alert` with only its test groups (quicker to run)."""
    for path in TESTS:
        head, _, body = path.read_text().partition("\ntests:\n")
        groups = re.split(r"(?m)^(?=  - interval:)", body)
        mine = [g for g in groups if f"alertname: {alert}\n" in g]
        if mine:
            return f"{head}\ntests:\n{''.join(mine)}"
    raise AssertionError(f"no test of {alert}")


@pytest.mark.parametrize("alert", ALERTS)
@pytest.mark.parametrize("expr", ["vector(1) == 0", "vector(1)"], ids=["never", "always"])
def test_the_test_fails_when_the_alert_is_broken(tmp_path, alert, expr):
    """Never firing misses a series that should fire it; always firing, a healthy one.
    (The alert's own test groups, which pass with the shipped rules.)"""
    rules = tmp_path / "prometheus" / RULES.name
    rules.parent.mkdir()
    tests = tmp_path / "tests" / "metrics" / "alert_test.yml"
    tests.parent.mkdir(parents=True)
    tests.write_text(groups_of(alert))
    rules.write_text(RULES.read_text())
    passed = promtool("test", "rules", str(tests))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    rules.write_text(with_expr(alert, expr))
    result = promtool("test", "rules", str(tests))
    assert result.returncode != 0
    assert f"alertname: {alert}," in result.stdout + result.stderr
