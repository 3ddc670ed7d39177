"""The map step's cache: claims of a source under the key of what made them; fetch state
keyed without credentials.

A URL's fetch state was keyed by the URL with its query as given, so a feed URL carrying
a token kept that token in the store. Keys are now `briefing.urls.storage_key`, which holds
only a digest of each credential-like value; existing keys are rewritten to it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    """Create map_cache."""
    op.create_table(
        "map_cache",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("claims", _JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_map_cache_created_at", "map_cache", ["created_at"])
    _rekey_fetch_state()


def _rekey_fetch_state() -> None:
    from briefing.urls import storage_key

    bind = op.get_bind()
    table = sa.table("fetch_state", sa.column("url", sa.Text()))
    urls = [row[0] for row in bind.execute(sa.select(table.c.url))]
    taken = set(urls)
    for url in urls:
        key = storage_key(url)
        if key == url:
            continue
        if key in taken:
            # The same URL under its new key already: the old row only holds the secret.
            bind.execute(sa.delete(table).where(table.c.url == url))
        else:
            bind.execute(sa.update(table).where(table.c.url == url).values(url=key))
            taken.add(key)


def downgrade() -> None:
    """Drop map_cache."""
    op.drop_table("map_cache")
