"""Each service unit may write to the default metrics directory, and only with a `-` prefix."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chatmail_services.config import ChatmailSection, default

UNITS = Path(__file__).resolve().parents[2] / "systemd-units"
PUBLISHERS = ["auth", "milter", "metadata", "web", "mxdeliv", "expire", "metrics-collect"]


@pytest.mark.parametrize("name", PUBLISHERS)
def test_unit_allows_writing_the_default_metrics_dir(name):
    text = (UNITS / f"chatmail-{name}.service").read_text()
    paths = [p for line in re.findall(r"^ReadWritePaths=(.*)$", text, re.M) for p in line.split()]
    assert "-" + default(ChatmailSection, "metrics_dir") in paths
