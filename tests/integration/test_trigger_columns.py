"""Issue 20 item 5: the trigger compared the columns LiteLLM's table had at install; after LiteLLM
1.81 -> 1.108 added `blocked`, blocking a model made no event until `install` ran again (and
`status`
did not say so). The trigger now compares every column the table has at the time of the write."""

from __future__ import annotations

import psycopg

from tests.integration.test_outbox_trigger import _events, _insert, installed

__all__ = ["installed"]  # the fixture

TABLE = 'public."LiteLLM_ProxyModelTable"'


def test_a_column_litellm_adds_after_install_is_compared_without_reinstall(installed: str) -> None:
    with psycopg.connect(installed, autocommit=True) as conn:
        has_blocked = conn.execute(
            "SELECT 1 FROM pg_attribute WHERE attrelid = %s::regclass AND attname = 'blocked' AND NOT attisdropped",
            (TABLE,),
        ).fetchall()
        column = "blocked_later" if has_blocked else "blocked"  # what LiteLLM's next schema adds
        _insert(conn, "id-1", "m")
        conn.execute(f"ALTER TABLE {TABLE} ADD COLUMN {column} boolean NOT NULL DEFAULT false")
        conn.execute("DELETE FROM litemaas_hooks.model_events")

        conn.execute(f"UPDATE {TABLE} SET {column} = true")  # a model blocked: a change
        assert [e["op"] for e in _events(conn)] == ["UPDATE"]
        conn.execute("DELETE FROM litemaas_hooks.model_events")

        conn.execute(f"UPDATE {TABLE} SET updated_at = now() + interval '1 s'")  # bookkeeping only
        assert _events(conn) == []

        conn.execute(f"ALTER TABLE {TABLE} DROP COLUMN {column}")  # and a column LiteLLM drops
        conn.execute(f"""UPDATE {TABLE} SET model_info = model_info || '{{"x": 1}}'""")
        assert [e["op"] for e in _events(conn)] == ["UPDATE"]


def test_one_subtransaction_per_statement_not_per_row(installed: str) -> None:
    """A row-level trigger with a BEGIN ... EXCEPTION block opened a subtransaction (with its own
    xid) per
    row: a LiteLLM transaction touching more than 64 rows overflowed the backend's subtransaction
    cache.
    Count the transaction ids a 200-row UPDATE and a DELETE consume (each subtransaction that writes
    takes one)."""
    with psycopg.connect(installed, autocommit=True) as conn:
        conn.execute(
            f"INSERT INTO {TABLE} (model_id, model_name, litellm_params, model_info, created_by, updated_by) "
            "SELECT 'id-' || i, 'm-' || i, '{}'::jsonb, '{}'::jsonb, 'x', 'x' FROM generate_series(1, 200) AS i"
        )
        conn.execute("DELETE FROM litemaas_hooks.model_events")
    next_xid = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"  # assigns none itself
    with psycopg.connect(installed, autocommit=True) as watch, psycopg.connect(installed) as conn:
        before = watch.execute(next_xid).fetchone()
        conn.execute(
            f"""UPDATE {TABLE} SET model_info = model_info || '{{"n": 1}}'"""
        )  # one transaction
        conn.execute(f"DELETE FROM {TABLE} WHERE model_id = 'id-1'")
        conn.commit()
        after = watch.execute(next_xid).fetchone()
        assert before is not None
        assert after is not None
        # the transaction's own id + one per statement's subtransaction, not one per row (201)
        assert after[0] - before[0] <= 3
        assert len(_events(watch)) == 201
