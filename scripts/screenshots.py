"""Take the extranet screenshots in docs/img/ by running the browser test with
``CAISSE_SCREENSHOTS_DIR`` set (SQLite run only).

Usage: ``.venv/bin/python scripts/screenshots.py`` (or ``make screenshots``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
env = {**os.environ, "CAISSE_SCREENSHOTS_DIR": str(root / "docs" / "img")}
test = "tests/functional/extranet/test_browser.py::test_merchant_flow[sqlite]"
sys.exit(
    subprocess.call(  # noqa: S603
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", test],
        cwd=root,
        env=env,
    )
)
