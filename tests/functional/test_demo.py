"""``caisse demo`` end to end: both legs (Stripe through localstripe, Xsolla through the
simulator with a signed Firebase token) on a fresh SQLite folder, whatever ``.env`` says; and a
clean hint, not a traceback, without the dev extras. The steps are asserted, not their speed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import create_engine, text

import caisse.demo as demo


def test_the_demo_plays_both_legs_on_a_fresh_sqlite_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A .env and variables that point elsewhere: the demo must not use them.
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text(
        "CAISSE_DATABASE_URL=postgresql://nobody@127.0.0.1:1/not_the_demo\n"
        "CAISSE_XSOLLA_API_BASE=https://store.xsolla.com\n",
        encoding="utf-8",
    )
    monkeypatch.chdir(project)
    monkeypatch.setenv("CAISSE_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/not_either")
    recorder = Console(record=True, width=200, force_terminal=False)
    monkeypatch.setattr(demo, "console", recorder)
    folder = tmp_path / "data"

    assert demo.run_demo(str(folder)) == 0

    out = recorder.export_text()
    for line in (
        "The merchant pastes its Stripe keys",
        "The buyer pays by card",
        "The merchant pastes its Xsolla project",
        "The player signs in with Firebase and asks caisse for a Pay Station token",
        "RS256 ID token verified",
        "204 user_validation",
        "204 order_paid",
        "player sees done",
        "demo passed in",
    ):
        assert line in out, line
    assert "skipped" not in out
    engine = create_engine(f"sqlite:///{folder / 'caisse.db'}")
    with engine.connect() as db:
        orders = dict(db.execute(text("SELECT provider, status FROM orders")).all())
        granted = db.execute(text("SELECT sku, status FROM entitlements")).all()
        xsolla = db.execute(
            text("SELECT type, status FROM inbound_events WHERE provider = 'xsolla'")
        ).all()
    engine.dispose()
    assert orders == {"stripe": "paid", "xsolla": "paid"}
    assert [tuple(r) for r in granted] == [("gems_500", "granted")]
    assert [tuple(r) for r in xsolla] == [("order_paid", "processed")]


def test_without_localstripe_the_stripe_leg_is_skipped_with_a_hint(tmp_path: Path) -> None:
    """The dev extras missing (localstripe shadowed by a package that fails to import)."""
    shadow = tmp_path / "shadow" / "localstripe"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(
        "raise ImportError(\"No module named 'localstripe'\")\n", encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAISSE_")}
    env |= {"PYTHONPATH": str(tmp_path / "shadow"), "COLUMNS": "200", "NO_COLOR": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "caisse", "demo", "--data-dir", str(tmp_path / "data")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "Traceback" not in output
    assert "localstripe is not installed: the Stripe leg is skipped" in output
    assert "make demo" in output
    assert "204 order_paid" in output
    assert "demo passed (Stripe leg skipped)" in output
