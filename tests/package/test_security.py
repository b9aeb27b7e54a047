"""Every service unit's exposure is at most 2.0, and docs/security.md shows the real figures."""

from __future__ import annotations

import re
import subprocess

import pytest
from package.unitfiles import REPO, UNITS

SECURITY_MD = REPO / "docs" / "security.md"
SERVICES = sorted(p.name for p in UNITS.glob("*.service"))
TARGET = 2.0


def exposure(unit: str) -> float:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(UNITS / unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match, result.stdout + result.stderr
    return float(match[1])


def documented() -> dict[str, float]:
    """{unit: exposure} from the table rows `| chatmail-x.service | 0.4 | ...`."""
    rows = re.findall(
        r"^\| `?(chatmail-[\w-]+\.service)`? \| (\d+\.\d) \|", SECURITY_MD.read_text(), re.M
    )
    return {unit: float(score) for unit, score in rows}


def test_every_service_unit_has_a_row():
    assert SERVICES, "no service units"
    assert sorted(documented()) == SERVICES


@pytest.mark.parametrize("unit", SERVICES)
def test_exposure_at_most_target_and_as_documented(unit):
    score = exposure(unit)
    assert score <= TARGET, f"{unit}: exposure {score} > {TARGET}"
    assert documented().get(unit) == score, f"docs/security.md: {unit} is {score} now"


def test_an_unhardened_service_scores_high(tmp_path):
    """The measurement can fail: a unit without the sandbox is far above the target."""
    bare = tmp_path / "bare.service"
    bare.write_text("[Service]\nExecStart=/bin/true\n")
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(bare)],
        capture_output=True,
        text=True,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert match and float(match[1]) > 9.0
