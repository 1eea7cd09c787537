"""Test-wide fixtures.

Every storage and end-to-end test runs on SQLite and on PostgreSQL (``db_url`` is parametrised).
PostgreSQL is at ``CAISSE_TEST_PG`` (default ``postgresql://postgres@127.0.0.1:5432``); with
``CI=true`` it is mandatory and a missing server fails the run instead of skipping.
Each test gets its own migrated database, cloned from a template migrated once per session
(``CREATE DATABASE … TEMPLATE`` on PostgreSQL, a file copy on SQLite).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from caisse.config import Secret, Settings
from caisse.runtime import Runtime
from caisse.storage.migrate import upgrade

PG_BASE = os.environ.get("CAISSE_TEST_PG", "postgresql://postgres@127.0.0.1:5432")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_RUN = uuid.uuid4().hex[:8]


def _pg_available() -> bool:
    try:
        with psycopg.connect(f"{PG_BASE}/postgres", connect_timeout=3):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    if not _pg_available():
        if IN_CI:
            pytest.fail(f"PostgreSQL is mandatory in CI and is not reachable at {PG_BASE}")
        pytest.skip("PostgreSQL not reachable (set CI=true to make this a failure)")
    name = f"caisse_tpl_{_RUN}"
    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(f"postgresql+psycopg://{PG_BASE.split('://', 1)[1]}/{name}")
    yield name
    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tpl") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


def _clone_pg(template: str) -> Iterator[str]:
    name = f"caisse_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield f"postgresql+psycopg://{PG_BASE.split('://', 1)[1]}/{name}"
    finally:
        with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database of each engine."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "caisse.db"
        shutil.copyfile(template, target)
        yield f"sqlite:///{target}"
    else:
        yield from _clone_pg(request.getfixturevalue("pg_template"))


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh PostgreSQL database, for tests about several workers or processes."""
    yield from _clone_pg(request.getfixturevalue("pg_template"))


def make_settings(tmp_path: Path, db_url: str, **overrides: object) -> Settings:
    from cryptography.fernet import Fernet

    base = Settings(
        data_dir=tmp_path,
        database_url=db_url,
        admin_token=Secret("cat_test_" + uuid.uuid4().hex),
        master_keys=(Secret(Fernet.generate_key().decode()),),
        public_url="http://127.0.0.1:8000",
        worker_poll_interval=0.05,
        log_json=False,
    )
    fields = {**base.__dict__, **overrides}
    return Settings(**fields)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return make_settings(tmp_path, db_url)


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime.build(settings)
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    from tests.support.servers import localstripe_process

    with localstripe_process() as url:
        yield url


@pytest.fixture
def client(rt: Runtime, localstripe_url: str) -> Iterator[object]:
    """The app in-process (lifespan on, no background worker: tests call ``drain``)."""
    from starlette.testclient import TestClient

    from caisse.config import Settings
    from caisse.web.app import create_app

    fields = {**rt.settings.__dict__, "stripe_api_base": localstripe_url}
    rt.settings = Settings(**fields)  # type: ignore[arg-type]
    app = create_app(runtime=rt, run_worker=False)
    with TestClient(app, raise_server_exceptions=False) as tc:
        yield tc
