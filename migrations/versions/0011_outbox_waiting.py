"""Senders find the next message of each conversation without reading the whole backlog.

`outbox.waiting`: the message was queued behind an older undelivered one of its conversation
(set by the `outbox_waiting` trigger as it is inserted). When a message is delivered or given
up, the `outbox_next` trigger clears it on the next one of its conversation. An insert that
finds an older message takes an advisory lock on the conversation, shared (inserts never wait
for each other); the trigger of a delivery takes it exclusive. So an insert and a delivery in
one conversation never miss each other: either the insert sees the delivery and does not wait,
or the delivery sees the insert and clears it.

`ix_outbox_ready`: the undelivered messages that wait for no other, in id order. A sender's
claim walks it oldest first, so it reads about as many rows as it takes: a conversation with
thousands of messages queued (the approvers' channel after a mass revocation, paced to Slack's
50 updates a minute) no longer costs every claim a read of all of them.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

FUNCTIONS = """
CREATE FUNCTION outbox_conversation_key(conversation text) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT hashtextextended('accessbot-outbox:' || conversation, 0)
$$;

CREATE FUNCTION outbox_mark_waiting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.waiting := false;
    IF EXISTS (SELECT 1 FROM outbox WHERE conversation = NEW.conversation AND done_at IS NULL)
    THEN
        -- An older message may be being delivered right now: look again once that is
        -- recorded (a message that does not wait when it should is harmless; the sender
        -- checks order again).
        PERFORM pg_advisory_xact_lock_shared(outbox_conversation_key(NEW.conversation));
        NEW.waiting := EXISTS (
            SELECT 1 FROM outbox WHERE conversation = NEW.conversation AND done_at IS NULL
        );
    END IF;
    RETURN NEW;
END
$$;

CREATE FUNCTION outbox_release_next() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(outbox_conversation_key(NEW.conversation));
    UPDATE outbox SET waiting = false
    WHERE waiting AND id = (
        SELECT min(id) FROM outbox WHERE conversation = NEW.conversation AND done_at IS NULL
    );
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_waiting BEFORE INSERT ON outbox
FOR EACH ROW EXECUTE FUNCTION outbox_mark_waiting();

CREATE TRIGGER outbox_next AFTER UPDATE OF done_at ON outbox
FOR EACH ROW WHEN (OLD.done_at IS NULL AND NEW.done_at IS NOT NULL)
EXECUTE FUNCTION outbox_release_next();
"""


def upgrade() -> None:
    op.add_column(
        "outbox",
        sa.Column("waiting", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    # Messages queued before this migration: each waits unless it is its conversation's first.
    op.execute(
        """
        UPDATE outbox o SET waiting = true
        WHERE done_at IS NULL AND id <> (
            SELECT min(id) FROM outbox p WHERE p.conversation = o.conversation
            AND p.done_at IS NULL
        )
        """
    )
    op.execute(FUNCTIONS)
    op.create_index(
        "ix_outbox_ready",
        "outbox",
        ["id"],
        postgresql_where=sa.text("done_at IS NULL AND NOT waiting"),
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_ready", table_name="outbox")
    op.execute("DROP TRIGGER outbox_next ON outbox")
    op.execute("DROP TRIGGER outbox_waiting ON outbox")
    op.execute("DROP FUNCTION outbox_release_next()")
    op.execute("DROP FUNCTION outbox_mark_waiting()")
    op.execute("DROP FUNCTION outbox_conversation_key(text)")
    op.drop_column("outbox", "waiting")
