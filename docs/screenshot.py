"""Render an HTML or SVG file to PNG with headless Chromium, to look at a
report as a browser shows it (and to make the picture in the README).

    python docs/screenshot.py runs/digits_mlp/report.html docs/report.png [--width 1280] [--height 2400]

Needs Chromium (Debian: apt-get install chromium). The page is opened from
disk; the report loads nothing from the network, so none is needed."""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def screenshot(page: Path, png: Path, width: int = 1280, height: int = 2400) -> None:
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        sys.exit("no Chromium found; on Debian: apt-get install chromium")
    with tempfile.TemporaryDirectory() as profile:          # a fresh profile: no user state, no first-run
        subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        f"--user-data-dir={profile}", f"--screenshot={png.resolve()}",
                        f"--window-size={width},{height}", page.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    print(f"wrote {png} ({width}x{height})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("page", type=Path)
    p.add_argument("png", type=Path)
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=2400)
    a = p.parse_args()
    screenshot(a.page, a.png, a.width, a.height)


if __name__ == "__main__":
    main()
