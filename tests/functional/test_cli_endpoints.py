"""``caisse endpoints …`` and ``caisse deliveries …`` in-process (typer's runner), on both
engines: every command runs once, so an import the command needs at run time cannot be missing
(the CLI imports its services lazily to start fast)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from caisse.cli import app as cli_app
from caisse.orders import messages
from caisse.runtime import Runtime


@pytest.fixture
def run(rt: Runtime, tmp_path: Any) -> Any:
    env = {
        "CAISSE_DATABASE_URL": rt.settings.database_url,
        "CAISSE_DATA_DIR": str(rt.settings.data_dir),
        "CAISSE_MASTER_KEY": rt.settings.master_keys[0].reveal(),
        "CAISSE_ADMIN_TOKEN": rt.settings.admin_token.reveal(),
        "CAISSE_ENV_FILE": str(tmp_path / "absent.env"),
        "CAISSE_ALLOW_PRIVATE_TARGETS": "1",
        "COLUMNS": "200",
        "NO_COLOR": "1",
    }

    def invoke(*args: str, ok: bool = True) -> Any:
        result = CliRunner().invoke(cli_app, list(args), env=env)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return invoke


def test_endpoint_and_delivery_commands(run: Any, rt: Runtime) -> None:
    tenant = json.loads(run("tenant", "create", "Boutique").stdout)["id"]
    created = json.loads(
        run("endpoints", "create", "--tenant", tenant, "https://partner.example.com/hook").stdout
    )
    endpoint = created["id"]
    assert created["secret"].startswith("whsec_")

    listed = run("endpoints", "list", "--tenant", tenant)
    assert endpoint in listed.stdout
    assert created["secret"] not in listed.stdout
    assert [
        e["id"] for e in json.loads(run("endpoints", "list", "--tenant", tenant, "--json").stdout)
    ] == [endpoint]
    assert "disabled" in run("endpoints", "disable", endpoint, "--tenant", tenant).stdout
    assert "enabled" in run("endpoints", "enable", endpoint, "--tenant", tenant).stdout
    rotated = json.loads(run("endpoints", "rotate-secret", endpoint, "--tenant", tenant).stdout)
    assert rotated["secret"] != created["secret"]

    with rt.db.write() as s:
        messages.record(
            s,
            tenant_id=tenant,
            environment="test",
            type="order.paid",
            data={"order": {"id": "ord_cli", "status": "paid"}},
            order_id="ord_cli",
            now=rt.clock.now(),
        )
    shown = json.loads(run("deliveries", "list", endpoint, "--tenant", tenant, "--json").stdout)
    assert [d["event_type"] for d in shown] == ["order.paid"]
    delivery = shown[0]["id"]
    assert delivery in run("deliveries", "list", endpoint, "--tenant", tenant).stdout
    assert delivery in run("deliveries", "undelivered", "--tenant", tenant).stdout
    assert (
        f"Attempts of {delivery}" in run("deliveries", "show", delivery, "--tenant", tenant).stdout
    )
    assert delivery in run("deliveries", "retry", delivery, "--tenant", tenant).stdout
    replayed = run(
        "deliveries", "replay", endpoint, "--tenant", tenant, "--since", "2020-01-01T00:00Z"
    )
    assert isinstance(json.loads(replayed.stdout), dict)
    missing = run("deliveries", "show", "dlv_missing", "--tenant", tenant, ok=False)
    assert missing.exit_code == 1
    assert "No such delivery" in missing.output

    run("endpoints", "delete", endpoint, "--tenant", tenant)
    assert json.loads(run("endpoints", "list", "--tenant", tenant, "--json").stdout) == []
