"""Delivery integration tests: real loopback partners (``tests/support/partners.py``), asyncio."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# ``support`` lives in tests/; a root tests/conftest.py would put that folder on sys.path
# (pytest's prepend import mode), this keeps the folder runnable on its own.
_TESTS = str(Path(__file__).resolve().parents[2])
if _TESTS not in sys.path:
    sys.path.insert(0, _TESTS)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
