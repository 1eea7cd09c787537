"""The real ``caisse`` console script, run as a user would, on a file SQLite data folder.

Each run starts a Python process (a few seconds on a busy machine), so the steps that build on
each other share one data folder and one test.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from tests.support.servers import live_caisse

from caisse.config import Settings
from caisse.runtime import Runtime
from caisse.storage import models as m

CAISSE = Path(sys.executable).with_name("caisse")


def env_for(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAISSE_")}
    env.update(
        CAISSE_DATA_DIR=str(data_dir),
        CAISSE_ENV_FILE=str(data_dir / "absent.env"),
        CAISSE_LOG_FORMAT="text",
        NO_COLOR="1",
        COLUMNS="200",
    )
    return env


def caisse(
    data_dir: Path,
    *args: str,
    stdin: str | None = None,
    timeout: float = 60,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CAISSE), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**env_for(data_dir), **(env or {})},
        cwd=data_dir.parent,
        timeout=timeout,
        check=False,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    assert "error:" in result.stderr
    assert fragment in result.stderr


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def tenant(data_dir: Path) -> dict[str, object]:
    """``caisse migrate`` on a fresh folder, then ``caisse tenant create``."""
    migrated = caisse(data_dir, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "up to date" in migrated.stderr
    assert "Operator token created" in migrated.stderr  # generated, and shown, once
    token = (data_dir / "admin_token").read_text().strip()
    assert token in migrated.stderr
    assert (data_dir / "caisse.db").is_file()

    created = caisse(data_dir, "tenant", "create", "Hôtel du Lac")
    assert created.returncode == 0, created.stderr
    assert "Operator token created" not in created.stderr
    assert token not in created.stderr + created.stdout
    body: dict[str, object] = json.loads(created.stdout)
    return body


def test_migrate_tenant_user_simulate_and_clean_errors(data_dir: Path, tenant: dict) -> None:  # type: ignore[type-arg]
    assert str(tenant["id"]).startswith("ten_")
    assert tenant["name"] == "Hôtel du Lac"
    keys = tenant["api_keys"]
    assert isinstance(keys, dict)
    assert keys["test"].startswith("ck_test_")
    assert keys["live"].startswith("ck_live_")

    user = caisse(
        data_dir,
        "user",
        "create",
        str(tenant["id"]),
        "Gerant@Example.com",
        "--password-stdin",
        stdin="correct horse battery\n",
    )
    assert user.returncode == 0, user.stderr
    made = json.loads(user.stdout)
    assert made["email"] == "gerant@example.com"
    assert made["tenant_id"] == tenant["id"]
    assert "correct horse" not in user.stdout + user.stderr

    unknown = caisse(
        data_dir, "user", "create", "ten_missing", "a@example.com", "--password-stdin",
        stdin="long enough password\n",
    )  # fmt: skip
    assert_clean_failure(unknown, "No such tenant")
    short = caisse(
        data_dir, "user", "create", str(tenant["id"]), "b@example.com", "--password-stdin",
        stdin="short\n",
    )  # fmt: skip
    assert_clean_failure(short, "at least 10 characters")
    assert "short" not in short.stdout

    # caisse in this process on the CLI's own folder (same database, same master key), and
    # ``caisse simulate`` reaching it over HTTP
    rt = Runtime.build(Settings.from_env(env_for(data_dir), create_missing=False))
    try:
        with live_caisse(rt, run_worker=False) as live:
            r = httpx.put(
                f"{live.url}/v1/providers/stripe",
                headers={"Authorization": f"Bearer {keys['test']}"},
                json={
                    "publishable_key": "pk_test_" + secrets.token_hex(12),
                    "secret_key": "sk_test_" + secrets.token_hex(12),
                    "webhook_secrets": ["whsec_" + secrets.token_urlsafe(24)],
                },
            )
            assert r.status_code == 200, r.text
            sent = caisse(
                data_dir, "simulate", "stripe", "payment_intent.succeeded",
                "--tenant", str(tenant["id"]), "--url", live.url,
            )  # fmt: skip
            assert sent.returncode == 0, sent.stdout + sent.stderr
            assert "200" in sent.stderr
            assert "payment_intent.succeeded" in sent.stderr
        with rt.db.read() as s:
            stored = s.scalars(select(m.InboundEvent)).all()
        assert [e.type for e in stored] == ["payment_intent.succeeded"]
        assert stored[0].tenant_id == tenant["id"]
    finally:
        rt.close()

    unknown_type = caisse(data_dir, "simulate", "stripe", "no.such_event", "--tenant", "ten_x")
    assert_clean_failure(unknown_type, "Unknown event type")


def test_simulate_lists_event_types(data_dir: Path) -> None:
    listed = caisse(data_dir, "simulate", "stripe", "--list")
    assert listed.returncode == 0, listed.stderr
    for name in ("payment_intent.succeeded", "charge.refunded", "charge.dispute.created"):
        assert name in listed.stdout
    assert "Scenarios:" in listed.stdout


def test_config_and_database_errors_never_show_a_password(data_dir: Path) -> None:
    password = "hunter2-" + secrets.token_hex(6)
    extra = {
        # port 1: nothing listens there, so the connection is refused at once
        "CAISSE_DATABASE_URL": f"postgresql://caisse:{password}@127.0.0.1:1/caisse",
        "CAISSE_SMTP_URL": f"smtp://mailer:{password}@127.0.0.1:2525",
    }
    masked_db = "postgresql+psycopg://caisse:***@127.0.0.1:1/caisse"

    table = caisse(data_dir, "config", env=extra)
    assert table.returncode == 0, table.stderr
    assert password not in table.stdout + table.stderr
    assert masked_db in table.stdout
    assert "smtp://mailer:***@127.0.0.1:2525" in table.stdout

    shown = caisse(data_dir, "config", "--json", env=extra)
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["database_url"] == masked_db
    assert view["admin_token"] == "***"
    token = (data_dir / "admin_token").read_text().strip()
    master_key = (data_dir / "master_key").read_text().strip()
    for secret in (password, token, master_key):
        assert secret not in shown.stdout + shown.stderr

    for args in (("migrate",), ("tenant", "create", "Hôtel"), ("worker",)):
        failed = caisse(data_dir, *args, env=extra)
        assert_clean_failure(failed, f"cannot use the database {masked_db}")
        assert password not in failed.stdout + failed.stderr
    bad_url = caisse(
        data_dir, "migrate", env={"CAISSE_DATABASE_URL": f"postgresql://u:{password}@db:x/c"}
    )
    assert_clean_failure(bad_url, "cannot use the database postgresql+psycopg://u:***@db:x/c")
    assert password not in bad_url.stdout + bad_url.stderr


@pytest.mark.slow
def test_demo_runs_to_the_end(tmp_path: Path) -> None:
    demo = caisse(tmp_path / "data", "demo", "--data-dir", str(tmp_path / "demo"), timeout=180)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "demo passed" in demo.stdout
    assert "paid" in demo.stdout


def test_simulate_is_test_mode_only_and_follows_a_connect_tenant(  # type: ignore[no-untyped-def]
    data_dir: Path, tenant: dict
) -> None:
    """``--live`` is refused (as ``stripe trigger``); a tenant connected through OAuth, with no
    signing secret of its own, gets its event on the platform's Connect endpoint, naming its
    account and signed with the platform's Connect secret, or a clean error without one."""
    import dataclasses

    from caisse.config import Secret
    from caisse.tenants.connect import store_connection

    live_flag = caisse(
        data_dir, "simulate", "stripe", "payment_intent.succeeded",
        "--tenant", str(tenant["id"]), "--live",
    )  # fmt: skip
    assert_clean_failure(live_flag, "test mode only")

    connect_secret = "whsec_" + secrets.token_urlsafe(24)
    account = "acct_1CliConnected"
    settings = Settings.from_env(env_for(data_dir), create_missing=False)
    settings = dataclasses.replace(
        settings,
        stripe_connect_client_id="ca_" + "c" * 32,
        stripe_connect_secret_keys=(Secret("sk_test_platform" + "p" * 20),),
        stripe_connect_webhook_secrets=(Secret(connect_secret),),
    )
    rt = Runtime.build(settings)
    try:
        with rt.db.write() as s:
            store_connection(s, rt, str(tenant["id"]), "test", account, None)
        with live_caisse(rt, run_worker=False) as live:
            args = ("simulate", "stripe", "account.updated", "--tenant", str(tenant["id"]))
            unsigned = caisse(data_dir, *args, "--url", live.url)
            assert_clean_failure(unsigned, "CAISSE_STRIPE_CONNECT_WEBHOOK_SECRET")
            sent = caisse(
                data_dir, *args, "--url", live.url,
                env={"CAISSE_STRIPE_CONNECT_WEBHOOK_SECRET": connect_secret},
            )  # fmt: skip
            assert sent.returncode == 0, sent.stdout + sent.stderr
            assert "200" in sent.stderr
        with rt.db.read() as s:
            stored = s.scalars(select(m.InboundEvent)).all()
        assert [(e.type, e.tenant_id, e.provider_account_id) for e in stored] == [
            ("account.updated", tenant["id"], account)
        ]
    finally:
        rt.close()


def test_a_rendering_lane_runs_at_the_cpu_priority_asked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert caisse(data, "migrate").returncode == 0
    proc = subprocess.Popen(
        [str(CAISSE), "worker", "--nice", "7", "--render"],
        env=env_for(data),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "started" in proc.stdout.readline()
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(fields[16]) - os.nice(0) == 7  # field 19 of stat: nice, relative to ours
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_nice_out_of_range_is_refused(tmp_path: Path) -> None:
    r = caisse(tmp_path / "data", "worker", "--nice", "25")
    assert r.returncode == 2
    assert "nice" in (r.stdout + r.stderr).lower()


def test_render_and_no_render_exclude_each_other(tmp_path: Path) -> None:
    r = caisse(tmp_path / "data", "worker", "--render", "--no-render")
    assert r.returncode == 2
    assert "--no-render" in (r.stdout + r.stderr)
