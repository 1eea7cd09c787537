"""inbound_events: keep the ~3 KB body inline and uncompressed on PostgreSQL

A row past ~2 KB is TOASTed: PostgreSQL pglz-compresses its largest value at insert, which cost
more server CPU than the rest of the insert (about 95 against 35 us a row in ``make bench``'s
shape). ``toast_tuple_target = 8160`` (the maximum) keeps rows up to a page inline and
uncompressed; processing zlib-compresses the body later, off the acknowledgement path
(``storage.inbound.encode_body``). Larger bodies are still TOASTed as before. Existing rows are
not rewritten. SQLite has no such setting: nothing to do there.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '5s'")
        op.execute("ALTER TABLE inbound_events SET (toast_tuple_target = 8160)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("SET LOCAL lock_timeout = '5s'")
        op.execute("ALTER TABLE inbound_events RESET (toast_tuple_target)")
