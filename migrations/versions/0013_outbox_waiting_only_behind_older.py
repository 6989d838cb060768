"""A message waits only behind an older undelivered message of its conversation.

The `outbox_waiting` trigger (0011) set `waiting` when any undelivered message of the
conversation existed. A message's id is drawn when its row is formed; if another transaction
drew a later id but committed first, the earlier message saw that later one and waited behind
it. It was then its conversation's oldest undelivered message, the only one a sender may take,
and waiting, which no sender takes: the conversation stopped for good (an approvers' channel
that never got another post). The trigger now looks only at older messages (`id < NEW.id`),
and the upgrade releases every conversation's oldest message that waits.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

MARK_WAITING = """
CREATE OR REPLACE FUNCTION outbox_mark_waiting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.waiting := false;
    IF EXISTS (
        SELECT 1 FROM outbox
        WHERE conversation = NEW.conversation AND done_at IS NULL AND id < NEW.id
    ) THEN
        -- An older message may be being delivered right now: look again once that is
        -- recorded (a message that does not wait when it should is harmless; the sender
        -- checks order again).
        PERFORM pg_advisory_xact_lock_shared(outbox_conversation_key(NEW.conversation));
        NEW.waiting := EXISTS (
            SELECT 1 FROM outbox
            WHERE conversation = NEW.conversation AND done_at IS NULL AND id < NEW.id
        );
    END IF;
    RETURN NEW;
END
$$;
"""

RELEASE_STUCK = """
UPDATE outbox o SET waiting = false
WHERE waiting AND done_at IS NULL AND id = (
    SELECT min(id) FROM outbox p WHERE p.conversation = o.conversation AND p.done_at IS NULL
)
"""

MARK_WAITING_0011 = """
CREATE OR REPLACE FUNCTION outbox_mark_waiting() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.waiting := false;
    IF EXISTS (SELECT 1 FROM outbox WHERE conversation = NEW.conversation AND done_at IS NULL)
    THEN
        PERFORM pg_advisory_xact_lock_shared(outbox_conversation_key(NEW.conversation));
        NEW.waiting := EXISTS (
            SELECT 1 FROM outbox WHERE conversation = NEW.conversation AND done_at IS NULL
        );
    END IF;
    RETURN NEW;
END
$$;
"""


def upgrade() -> None:
    op.execute(MARK_WAITING)
    op.execute(RELEASE_STUCK)


def downgrade() -> None:
    op.execute(MARK_WAITING_0011)
