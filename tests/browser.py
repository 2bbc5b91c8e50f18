"""Shared settings for the headless-Chromium tests (Debian's /usr/bin/chromium driven by
Playwright, which never downloads a browser of its own) and their screenshots."""
import os
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("ZWZX_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = ROOT / "docs" / "screenshots"
# Screenshots are always taken; they replace the committed ones in docs/screenshots/ only with
# ZWZX_UPDATE_SCREENSHOTS=1 (or when missing), so a test run leaves the work tree clean.
UPDATE_SCREENSHOTS = os.environ.get("ZWZX_UPDATE_SCREENSHOTS") == "1"
_SCRATCH = Path(tempfile.mkdtemp(prefix="zwzx-shots-"))


def screenshot_path(name: str, scratch_dir=None) -> str:
    target = SCREENSHOTS / name
    if UPDATE_SCREENSHOTS or not target.exists():
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return str(target)
    return str(Path(scratch_dir or _SCRATCH) / name)
