"""A real SMTP server (aiosmtpd) for the invoice tests, and caisse configured to use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import make_settings
from tests.support.smtp import Recorder, smtp_server

from caisse.config import Secret, Settings

SENDER = "Factures <factures@caisse.example>"


@pytest.fixture
def smtp() -> Iterator[Recorder]:
    with smtp_server() as recorder:
        yield recorder


@pytest.fixture
def settings(tmp_path: Path, db_url: str, smtp: Recorder) -> Settings:
    url = f"smtp://127.0.0.1:{smtp.port}"
    return make_settings(
        tmp_path, db_url, smtp_url=Secret(url), mail_from=SENDER, allow_private_targets=True
    )
