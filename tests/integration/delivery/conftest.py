"""Delivery integration tests: real loopback partners (``tests/support/partners.py``), asyncio."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# ``support`` lives in tests/; a root tests/conftest.py would put that folder on sys.path
# (pytest's prepend import mode), this keeps the folder runnable on its own.
_TESTS = str(Path(__file__).resolve().parents[2])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)

from tests.conftest import make_settings  # noqa: E402

from caisse.clock import FrozenClock  # noqa: E402
from caisse.config import Settings  # noqa: E402
from caisse.runtime import Runtime  # noqa: E402


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """Partners are loopback servers: private targets allowed."""
    return make_settings(tmp_path, db_url, allow_private_targets=True)


@pytest.fixture
def clock() -> FrozenClock:
    """Whole seconds, so retry times compare exactly."""
    return FrozenClock(dt.datetime.now(dt.UTC).replace(microsecond=0))


@pytest.fixture
def rt(settings: Settings, clock: FrozenClock) -> Iterator[Runtime]:
    runtime = Runtime.build(settings, clock=clock)
    yield runtime
    runtime.close()
