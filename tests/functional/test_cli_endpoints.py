"""``caisse endpoints …`` and ``caisse deliveries …`` in-process (typer's runner), on both
engines: every command runs once, so an import the command needs at run time cannot be missing
(the CLI imports its services lazily to start fast)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from standardwebhooks import Webhook
from tests.support import partners
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

    def invoke(*args: str, ok: bool = True, input: str | None = None) -> Any:
        result = CliRunner().invoke(cli_app, list(args), env=env, input=input)
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


def test_show_update_and_test(run: Any) -> None:
    tenant = json.loads(run("tenant", "create", "Boutique").stdout)["id"]
    with partners.ok() as partner:
        created = json.loads(run("endpoints", "create", "--tenant", tenant, partner.url).stdout)
        endpoint = created["id"]
        partner.expect_signed_by(created["secret"])
        shown = run("endpoints", "show", endpoint, "--tenant", tenant).stdout
        assert partner.url in shown
        assert "test (staging)" in shown
        assert created["secret"] not in shown

        key = "k" * 40
        updated = run(
            "endpoints", "update", endpoint, "--tenant", tenant, "--event-type", "order.paid",
            "--event-type", "order.refunded", "--description", "Compta", "--api-key-stdin",
            input=key + "\n",
        ).stdout  # fmt: skip
        assert "order.paid, order.refunded" in updated
        assert "Compta" in updated
        assert key not in updated
        view = json.loads(run("endpoints", "show", endpoint, "--tenant", tenant, "--json").stdout)
        assert view["event_types"] == ["order.paid", "order.refunded"]
        assert "•" in (view["api_key"] or "")

        tested = run("endpoints", "test", endpoint, "--tenant", tenant)
        result = json.loads(tested.stdout)
        assert result["ok"] is True
        assert result["status_code"] == 200
        [request] = partner.requests
        assert request.header("x-api-key") == key
        message = Webhook(created["secret"]).verify(request.body, request.header_dict)
        assert message["type"] == "endpoint.test"

    nothing = run("endpoints", "update", endpoint, "--tenant", tenant, ok=False)
    assert nothing.exit_code != 0
    bad = run("endpoints", "update", endpoint, "--tenant", tenant, "--url", "ftp://x", ok=False)
    assert bad.exit_code != 0
    everything = run("endpoints", "update", endpoint, "--tenant", tenant, "--all-event-types")
    assert "all" in everything.stdout
