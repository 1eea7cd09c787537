"""Alembic environment: online migrations against the configured URL, batch mode on SQLite."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from caisse.storage.db import SQLITE_PAGE_SIZE
from caisse.storage.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    connectable = create_engine(url, poolclass=pool.NullPool)
    with connectable.connect() as connection:
        is_sqlite = connection.dialect.name == "sqlite"
        if is_sqlite:
            connection.exec_driver_sql(SQLITE_PAGE_SIZE)  # a new file: before its first table
            connection.commit()  # end the transaction the statement began, before alembic's
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=is_sqlite,
            compare_type=True,
        )
        with context.begin_transaction():
            if not is_sqlite:
                # Two processes starting at once must not both migrate.
                connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7261001)")
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
