"""The domain stays pure: importing it loads no web framework, SQL, HTTP client or provider SDK."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("fastapi", "starlette", "sqlalchemy", "httpx", "stripe", "pydantic", "psycopg")
PROBE = f"""
import json, sys
import caisse.domain, caisse.domain.events, caisse.domain.orders
import caisse.domain.payments, caisse.domain.states
forbidden = {FORBIDDEN!r}
loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
caisse_modules = sorted(m for m in sys.modules if m.split(".")[0] == "caisse")
print(json.dumps({{"loaded": loaded, "caisse": caisse_modules}}))
"""


def test_importing_the_domain_loads_no_framework() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    report = json.loads(out)
    assert report["loaded"] == []
    allowed = {"caisse", "caisse.errors", "caisse.money", "caisse.clock", "caisse.ids"}
    assert {m for m in report["caisse"] if not m.startswith("caisse.domain")} <= allowed
