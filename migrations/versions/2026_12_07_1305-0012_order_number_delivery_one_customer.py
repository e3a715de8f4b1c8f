"""order number, attributes and delivery time; one customer per person

Revision ID: 0012
Revises: 0014
Create Date: 2026-12-07 13:00:00.000000+00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.engine import Connection

revision: str = "0012"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ALTER TABLE ADD COLUMN, not a batch: on SQLite a batch copies the table, and
    # dropping the old `orders` cascades (foreign keys on) to every order's learned gaps and
    # conversions. Existing orders get an empty `attributes`; new rows get theirs from the app.
    op.add_column("orders", sa.Column("number", sa.String(length=64), nullable=True))
    op.add_column("orders", sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "orders",
        sa.Column("attributes", sa.JSON(), nullable=False, server_default=sa.text("'{}'")),
    )
    if op.get_bind().dialect.name != "sqlite":
        # SQLite would copy the table to drop the default (see above): it keeps it.
        op.alter_column("orders", "attributes", server_default=None)
    merge_guest_customers(op.get_bind())


_customers = sa.table(
    "customers",
    sa.column("id", sa.BigInteger),
    sa.column("shop", sa.String),
    sa.column("external_id", sa.String),
    sa.column("email", sa.String),
    sa.column("deleted_at", sa.DateTime),
)
_messages = sa.table(
    "messages",
    sa.column("id", sa.BigInteger),
    sa.column("customer_id", sa.BigInteger),
    sa.column("dedupe_key", sa.String),
    sa.column("status", sa.String),
    sa.column("status_reason", sa.String),
)
# Every table that points at a customer.
_OWNED = ("orders", "webhook_deliveries", "messages", "repurchase_gaps")


def merge_guest_customers(connection: Connection) -> int:
    """One customer per person: a `guest:` customer (an import without customer ids, a guest
    checkout) whose address, trimmed and lower-cased, is that of a customer with the shop's
    own id in the same shop is merged into it (the oldest such, if several): its orders,
    deliveries, messages and learned gaps are re-pointed, and the duplicate row removed.
    Returns how many were merged."""
    address = sa.func.lower(sa.func.trim(_customers.c.email))
    living = sa.select(_customers.c.id, _customers.c.shop, _customers.c.external_id, address).where(
        _customers.c.email.is_not(None), _customers.c.deleted_at.is_(None)
    )
    keepers: dict[tuple[str, str], int] = {}
    guests: list[tuple[int, str, str]] = []
    for row_id, shop, external_id, email in connection.execute(living.order_by(_customers.c.id)):
        if external_id.startswith("guest:"):
            guests.append((row_id, shop, email))
        else:
            keepers.setdefault((shop, email), row_id)
    merged = 0
    for duplicate, shop, email in guests:
        keeper = keepers.get((shop, email))
        if keeper is None:
            continue
        _rekey_messages(connection, duplicate=duplicate, keeper=keeper)
        for table in _OWNED:
            owned = sa.table(table, sa.column("customer_id", sa.BigInteger))
            connection.execute(
                sa.update(owned).where(owned.c.customer_id == duplicate).values(customer_id=keeper)
            )
        connection.execute(sa.delete(_customers).where(_customers.c.id == duplicate))
        merged += 1
    return merged


def _rekey_messages(connection: Connection, *, duplicate: int, keeper: int) -> None:
    """Dedupe keys name their customer (`...:customer:<id>[:...]`): a merged message takes
    the keeper's, so planning again for the keeper finds it. One the keeper already has (a
    birthday of the same year) is not planned twice: the duplicate's, if waiting, is
    cancelled."""
    old, new = f":customer:{duplicate}", f":customer:{keeper}"
    rows = connection.execute(
        sa.select(_messages.c.id, _messages.c.dedupe_key, _messages.c.status).where(
            _messages.c.customer_id == duplicate
        )
    ).all()
    for message_id, key, status in rows:
        marked = key + ":"
        if old + ":" not in marked:
            continue
        rekeyed = marked.replace(old + ":", new + ":", 1)[:-1]
        taken = connection.execute(
            sa.select(_messages.c.id).where(_messages.c.dedupe_key == rekeyed)
        ).first()
        if taken is None:
            connection.execute(
                sa.update(_messages).where(_messages.c.id == message_id).values(dedupe_key=rekeyed)
            )
        elif status == "scheduled":
            connection.execute(
                sa.update(_messages)
                .where(_messages.c.id == message_id)
                .values(status="cancelled", status_reason="customer_merged")
            )


def downgrade() -> None:
    # Merged customers stay merged: their rows are gone, and that is what was wanted.
    for name in ("attributes", "delivered_at", "number"):
        op.drop_column("orders", name)
