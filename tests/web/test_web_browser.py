"""Headless Chromium (Debian's package) loads the home and privacy pages from nginx on a
phone-sized window; the screenshots are kept (see the `artefacts` fixture), the QR code in
the home page's screenshot decodes with zbarimg to the account link, and the privacy page
states the retention days of the config."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from web.conftest import DOMAIN, RETENTION_DAYS, WEB_ADDRESS

PHONE = "390,844"  # CSS pixels of a common phone screen
TALL_PHONE = "390,1800"  # the same width, long enough for the whole home page


def screenshot(front, path: str, out: Path, window: str, profile: Path) -> Path:
    """Chromium loads https://<domain><path> from the test nginx and saves a screenshot."""
    result = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",  # as root in a test; the page is ours
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--host-resolver-rules=MAP {DOMAIN} {WEB_ADDRESS}",
            "--ignore-certificate-errors",  # the test certificate is self-signed
            f"--window-size={window}",
            f"--screenshot={out}",
            f"https://{DOMAIN}:{front.nginx.https_port}{path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and out.exists(), result.stderr[-3000:]
    return out


def decode_qr(png: Path) -> list[str]:
    result = subprocess.run(
        ["zbarimg", "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(png)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout.splitlines()


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("chromium-profile")


def test_home_page_qr_code_decodes_to_the_account_link(front, artefacts, profile):
    phone = screenshot(front, "/", artefacts / "home-phone.png", PHONE, profile)
    tall = screenshot(front, "/", artefacts / "home-phone-full.png", TALL_PHONE, profile)
    assert decode_qr(tall) == [f"DCACCOUNT:https://{DOMAIN}/new"]
    assert phone.stat().st_size > 10000


def test_the_decoder_can_fail(front, artefacts, profile):
    """zbarimg finds nothing in a page without a code: the decode check above can fail."""
    shot = screenshot(front, "/privacy.html", artefacts / "privacy-phone.png", PHONE, profile)
    assert decode_qr(shot) == []


def test_privacy_page_states_the_retention_days(front, artefacts, profile):
    screenshot(front, "/privacy.html", artefacts / "privacy-phone-full.png", TALL_PHONE, profile)
    # the text as the browser laid it out (Chromium's own DOM dump), not just the file
    result = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            f"--host-resolver-rules=MAP {DOMAIN} {WEB_ADDRESS}",
            "--ignore-certificate-errors",
            "--dump-dom",
            f"https://{DOMAIN}:{front.nginx.https_port}/privacy.html",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", result.stdout))
    assert f"Every message is deleted {RETENTION_DAYS} days after it arrived" in text, text
    assert "ops@x.test" in text
