"""Collected items and the fetch state of URLs (the collectors of the daily briefings).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create items (one per collected text) and fetch_state (one per fetched URL)."""
    op.create_table(
        "items",
        sa.Column(
            "source_id",
            sa.String(64),
            sa.ForeignKey("sources.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("first_seen_at", _TIME, nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("author", sa.Text(), nullable=True),
        sa.Column("published_at", _TIME, nullable=True),
    )
    op.create_index("ix_items_first_seen_at_source_id", "items", ["first_seen_at", "source_id"])
    op.create_table(
        "fetch_state",
        sa.Column("url", sa.Text(), primary_key=True),
        sa.Column("etag", sa.Text(), nullable=True),
        sa.Column("last_modified", sa.Text(), nullable=True),
        sa.Column(
            "source_id",
            sa.String(64),
            sa.ForeignKey("sources.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("entries", _JSON, nullable=True),
        sa.Column("fetched_at", _TIME, nullable=False),
    )
    op.create_index("ix_fetch_state_source_id", "fetch_state", ["source_id"])


def downgrade() -> None:
    """Drop everything revision 0002 created."""
    op.drop_table("fetch_state")
    op.drop_table("items")
