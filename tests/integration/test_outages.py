"""Failure tests (issue 4): outages, killed relays, a dropped trigger, bad input, secrets, least privilege.

Each test says in its docstring what it injects and asserts that nothing is lost: every change made in
LiteLLM ends up in the backend (or, when it cannot be synced, is kept in the outbox with its error), and
no change is applied twice in a way that changes the outcome (exactly one audit row per retirement).
After every scenario the provider api_key, the master key and the database password are searched for in
every table of every schema of the backend database, in the captured logs and in the error messages.

Real PostgreSQL (the session's throwaway server), LiteLLM's real schema and encryption, the real relay.
Every wait is a condition polled against a deadline (``eventually``). Works with LiteLLM 1.81 (no
``blocked`` column) and 1.108.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import Jsonb

from litemaas_hooks import litellm_adapter, outbox
from litemaas_hooks.status import collect_status, format_status
from litemaas_hooks_sandbox import seed
from litemaas_hooks_sandbox.cluster import LocalPostgres
from tests.helpers import (
    DROP_TRIGGERS,
    INSERT_ROW,
    PARAMS,
    TABLE,
    add,
    assert_no_secrets,
    audits,
    backend_models,
    eventually,
    install,
    litellm_row,
    litellm_truth,
    make_settings,
    matches_truth,
    run_cli,
    running,
    scalar,
    terminate,
)

pytestmark = pytest.mark.anyio

# -- helpers --------------------------------------------------------------------------------------


def relay_roles(pg: LocalPostgres, ldsn: str, bdsn: str) -> tuple[str, str, str]:
    """Create the two least-privilege roles exactly as README "Database privileges" grants them.

    Returns (LiteLLM DSN as the LiteLLM-side role, backend DSN as the backend role, their password)."""
    suffix = secrets.token_hex(3)
    lrole, brole, password = f"hooks_relay_l_{suffix}", f"hooks_relay_b_{suffix}", secrets.token_hex(16)
    with pg.connect() as admin:
        for role in (lrole, brole):
            create = sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
            admin.execute(create.format(sql.Identifier(role), sql.Literal(password)))
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    grants = readme.split("### Database privileges", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    backend_part, litellm_part = re.split(r"^-- LiteLLM database.*$", grants, maxsplit=1, flags=re.MULTILINE)
    for dsn, part, role in ((bdsn, backend_part, brole), (ldsn, litellm_part, lrole)):
        statements = [s.strip() for s in part.split(";")]
        with psycopg.connect(dsn, autocommit=True) as conn:
            for statement in statements:
                lines = [ln for ln in statement.splitlines() if ln.strip() and not ln.strip().startswith("--")]
                if lines:
                    conn.execute("\n".join(lines).replace("litemaas_hooks_relay", f'"{role}"').encode())
    return (
        make_conninfo(ldsn, user=lrole, password=password),
        make_conninfo(bdsn, user=brole, password=password),
        password,
    )


def as_url(conninfo: str) -> str:
    """A key=value conninfo as a postgresql:// URL (the settings want URLs)."""
    p = conninfo_to_dict(conninfo)
    return f"postgresql://{p['user']}:{p['password']}@{p['host']}:{p['port']}/{p['dbname']}"


# -- backend outage -------------------------------------------------------------------------------


@pytest.mark.slow
async def test_backend_down_20s_while_300_changes_land(
    dbs: tuple[str, str], master_key: str, pg_cluster: LocalPostgres, logs: list[str]
) -> None:
    """Injects: the backend database refuses every connection for >= 20 s (``ALTER DATABASE ...
    ALLOW_CONNECTIONS false`` + ``pg_terminate_backend`` of its sessions: what a restart or failover looks
    like to a client, without stopping the shared test server) while 330 changes (inserts, updates,
    deletes of synced models, renames) are committed in LiteLLM in waves during the outage.

    Asserts: every change is in the outbox during the outage (none lost, none claimed for good), the relay
    keeps retrying without counting attempts, and after recovery the backend equals LiteLLM's truth with
    exactly one audit row per retired name (no retire applied twice)."""
    ldsn, bdsn = dbs
    bname = conninfo_to_dict(bdsn)["dbname"]
    settings = make_settings(ldsn, bdsn, master_key, batch_size=50, poll_interval_seconds=0.5)
    async with (
        running(settings) as (relay,),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(pg_cluster.dsn(), autocommit=True) as admin,
    ):
        pre = [f"pre-{i:02d}" for i in range(40)]
        for name in pre:
            await add(lc, name, master_key, max_tokens=1)
        async with await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc:
            await eventually(lambda: matches_truth(lc, bc, set()), what="40 models synced before the outage")

        retired = set(pre[:15]) | set(pre[15:20])  # 15 deleted, 5 renamed away
        changes: list[tuple[str, tuple[Any, ...]]] = []
        for i in range(150):
            changes.append(("add", (f"new-{i:03d}",)))
        for i in range(130):
            changes.append(("update", (f"new-{i:03d}", i + 10)))
        for name in pre[:15]:
            changes.append(("delete", (name,)))
        for name in pre[15:20]:
            changes.append(("rename", (name, f"{name}-renamed")))
        for i, name in enumerate(pre[20:50]):
            changes.append(("update", (name, 1000 + i)))
        assert len(changes) >= 300

        async def apply(kind: str, args: tuple[Any, ...]) -> None:
            if kind == "add":
                await add(lc, args[0], master_key, max_tokens=1)
            elif kind == "update":
                await lc.execute(
                    f"UPDATE {TABLE} SET model_info = model_info || jsonb_build_object('max_tokens', %s::int) "
                    "WHERE model_name = %s",
                    (args[1], args[0]),
                )
            elif kind == "delete":
                await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = %s", args)
            else:
                await lc.execute(f"UPDATE {TABLE} SET model_name = %s WHERE model_name = %s", (args[1], args[0]))

        ident = sql.Identifier(bname)
        await admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(ident))
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (bname,),
            )
            outage_started = time.monotonic()
            pending = list(changes)
            # changes land in waves, one wave per failed reconnect attempt of the relay, for >= 20 s
            while pending or time.monotonic() - outage_started < 20:
                wave, pending = pending[:25], pending[25:]
                for kind, args in wave:
                    await apply(kind, args)
                attempts = relay.stats.reconnects

                async def retried(attempts: int = attempts) -> bool:
                    return relay.stats.reconnects > attempts

                await eventually(retried, deadline_seconds=10, what="the relay retries during the outage")
            assert not relay.stats.connected
            counts = await outbox.counts(lc)
            assert (counts.pending, counts.claimed, counts.dead) == (len(changes), 0, 0)  # every change is kept
            outage = time.monotonic() - outage_started
        finally:
            await admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(ident))
        assert outage >= 20

        async with await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc:
            took = await eventually(
                lambda: matches_truth(lc, bc, retired), deadline_seconds=30, what="caught up after the outage"
            )
            truth = await litellm_truth(lc)
            assert len(truth) == 40 - 15 + 150
            assert truth["new-005"] == 15
            assert await audits(bc) == dict.fromkeys(retired, 1)  # every retire applied exactly once
        assert relay.stats.events_failed == 0  # an outage is not an attempt
        assert relay.stats.reconnects >= 10
        print(f"\nbackend outage {outage:.1f}s, {len(changes)} changes, caught up {took:.2f}s after recovery")
    assert any("retrying in" in line for line in logs)
    await assert_no_secrets(pg_cluster, ldsn, bdsn, [master_key], {"logs": "\n".join(logs)})


# -- LiteLLM connection killed mid-stream ----------------------------------------------------------


async def test_litellm_connection_terminated_mid_stream(
    dbs: tuple[str, str], master_key: str, pg_cluster: LocalPostgres, logs: list[str]
) -> None:
    """Injects: ``pg_terminate_backend`` of the relay's LiteLLM connection (LISTEN, claims, truth reads)
    twice while a writer streams 150 inserts + 150 updates and the relay drains in batches of 5 (the
    idle case is covered in test_relay.py).

    Asserts: the relay reconnects, gives back its claims and drains: every name is in the backend with
    its last value, the outbox is empty, no attempt was counted against an event."""
    ldsn, bdsn = dbs
    settings = make_settings(ldsn, bdsn, master_key, batch_size=5)
    names = [f"s-{i:03d}" for i in range(150)]
    async with (
        running(settings) as (relay,),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):

        async def writer() -> None:
            async with await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as wc:
                for i, name in enumerate(names):
                    await add(wc, name, master_key, max_tokens=1)
                    await wc.execute(
                        f"UPDATE {TABLE} SET model_info = model_info || jsonb_build_object('max_tokens', %s::int) "
                        "WHERE model_name = %s",
                        (i + 2, name),
                    )

        task = asyncio.create_task(writer())
        try:
            for round_, applied in enumerate((20, 80)):

                async def progressed(applied: int = applied, round_: int = round_) -> bool:
                    n = await scalar(bc, "SELECT count(*) FROM models")
                    return n >= applied and relay.stats.sessions == round_ + 1 and relay.stats.connected

                await eventually(progressed, deadline_seconds=30, what=f"{applied} models applied")
                await terminate(lc, "relay-0:litellm")
            await asyncio.wait_for(task, 60)
        finally:
            task.cancel()
        await eventually(lambda: matches_truth(lc, bc, set()), deadline_seconds=30, what="drained after reconnects")
        assert len(await backend_models(bc)) == len(names)
        assert await scalar(bc, "SELECT max_tokens FROM models WHERE id = 's-149'") == 151
        assert relay.stats.reconnects >= 2
        assert relay.stats.events_failed == 0
        assert (await outbox.counts(lc)).dead == 0
    await assert_no_secrets(pg_cluster, ldsn, bdsn, [master_key], {"logs": "\n".join(logs)})


# -- relay process SIGKILLed mid-batch, repeatedly ------------------------------------------------

# `litemaas-hooks relay` is `cli.main(["relay"])`. Importing litellm costs ~7-15 s per process, so a
# parent imports it once and forks each relay process; the child runs exactly the console script's code.
# The parent's stdout is the reply channel (one pid per line); a child's stdout is its own file (argv[1]),
# like a console script's: a child printing into the channel would read as a garbled reply.
FORK_SERVER = r"""
import os, signal, sys
import litellm  # noqa: F401  (the expensive import, done once)
from litellm.proxy.common_utils import encrypt_decrypt_utils  # noqa: F401
from litemaas_hooks import cli, reconcile, relay  # noqa: F401
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() != "spawn":
        continue
    pid = os.fork()
    if pid == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        out = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(out, 1)
        os.close(out)
        os._exit(cli.main(["relay"]))
    print(pid, flush=True)
"""


class RelayProcesses:
    """``litemaas-hooks relay`` processes forked from a parent that imported litellm once."""

    def __init__(self, env: dict[str, str], stderr: Path, stdout: Path) -> None:
        self._err = stderr.open("wb")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER, str(stdout)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
        )
        self.pids: list[int] = []
        assert self._readline() == "ready"

    def _readline(self) -> str:
        assert self._proc.stdout is not None
        raw = self._proc.stdout.readline()
        assert raw, f"fork server died (rc {self._proc.poll()})"
        line = raw.strip()
        assert line == "ready" or line.isdigit(), f"fork server: unexpected reply {raw!r}"
        return line

    def spawn(self) -> int:
        assert self._proc.stdin is not None
        self._proc.stdin.write("spawn\n")
        self._proc.stdin.flush()
        pid = int(self._readline())
        self.pids.append(pid)
        return pid

    def close(self) -> None:
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._err.close()


async def test_relay_process_sigkilled_mid_batch_three_times(
    hooks_env: dict[str, str], master_key: str, pg_cluster: LocalPostgres, tmp_path: Path
) -> None:
    """Injects: three times, a ``litemaas-hooks relay`` process is SIGKILLed while it holds a claimed
    batch (seen in the outbox), between waves of inserts, updates and deletes of synced models.

    Asserts: the claims left behind are taken over at once by the next relay (their database session is
    gone; the stall timeout is the default 120 s and is not what recovers them), the kills cost no
    attempt (LITEMAAS_HOOKS_MAX_ATTEMPTS=2: nothing dies) and the final backend state equals LiteLLM's
    truth, with one audit row per retired name; the relays wrote nothing to stdout."""
    ldsn, bdsn = hooks_env["LITELLM_DATABASE_URL"], hooks_env["LITEMAAS_DATABASE_URL"]
    await install(ldsn, bdsn)
    env = {
        **os.environ,
        **hooks_env,
        "LITEMAAS_HOOKS_STALL_TIMEOUT_SECONDS": "120",
        "LITEMAAS_HOOKS_MAX_ATTEMPTS": "2",
        "LITEMAAS_HOOKS_POLL_INTERVAL_SECONDS": "0.2",
        "LITEMAAS_HOOKS_BATCH_SIZE": "5",
        "LITEMAAS_HOOKS_RECONCILE_INTERVAL_SECONDS": "0",
        "LITEMAAS_HOOKS_RECONNECT_MAX_SECONDS": "1",
        "LITEMAAS_HOOKS_LOG_LEVEL": "DEBUG",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    env.pop("LITELLM_SALT_KEY", None)
    stderr, stdout = tmp_path / "relays.stderr", tmp_path / "relays.stdout"
    procs = RelayProcesses(env, stderr, stdout)
    retired: set[str] = set()
    stranded = 0
    try:
        async with (
            await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
            await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
        ):
            claimed = "SELECT count(*) FROM litemaas_hooks.model_events WHERE status = 'claimed'"
            for wave in range(3):
                for i in range(60):
                    await add(lc, f"w{wave}-{i:02d}", master_key, max_tokens=wave)
                await lc.execute(
                    f"UPDATE {TABLE} SET model_info = model_info || jsonb_build_object('max_tokens', 100 + %s::int) "
                    "WHERE model_name LIKE %s",
                    (wave, f"w{wave}-1%"),
                )
                if wave:  # delete models of the previous wave that reached the backend
                    have = await backend_models(bc)
                    victims = sorted(n for n in have if n.startswith(f"w{wave - 1}-"))[:5]
                    for name in victims:
                        await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = %s", (name,))
                    retired.update(victims)
                pid = procs.spawn()

                async def mid_batch() -> bool:
                    return bool(await scalar(bc, "SELECT count(*) FROM models") > 0) and bool(await scalar(lc, claimed))

                await eventually(mid_batch, deadline_seconds=90, what="the relay is applying a batch")
                os.kill(pid, signal.SIGKILL)
                stranded += int(await scalar(lc, claimed))
            assert stranded > 0  # the kills really left claimed batches behind

            procs.spawn()
            await eventually(
                lambda: matches_truth(lc, bc, retired), deadline_seconds=30, what="the last relay converged"
            )
            assert len(await litellm_truth(lc)) == 180 - len(retired)
            assert await audits(bc) == dict.fromkeys(retired, 1)
            assert (await outbox.counts(lc)).dead == 0
    finally:
        procs.close()
    text = stderr.read_text()
    assert "whose database session ended" in text
    assert "stalled claims" not in text
    # a relay writes nothing to stdout (LiteLLM >= 1.108 printed a "Provider List" banner per lookup)
    assert stdout.read_text() == ""
    await assert_no_secrets(pg_cluster, ldsn, bdsn, [master_key], {"relay stderr": text})


# -- trigger dropped by a LiteLLM schema update -----------------------------------------------------


async def test_trigger_dropped_status_says_so_reconcile_converges_install_restores(
    dbs: tuple[str, str],
    master_key: str,
    pg_cluster: LocalPostgres,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    logs: list[str],
) -> None:
    """Injects: ``DROP TRIGGER`` on LiteLLM's table (what a LiteLLM schema update re-creating the table
    does), then inserts, an update and a delete that therefore produce no outbox event.

    Asserts: ``litemaas-hooks status`` exits non-zero saying the trigger is missing and to run
    ``litemaas-hooks install``; a relay whose role may not re-create the trigger still converges every
    change through the periodic full reconcile (LITEMAAS_HOOKS_RECONCILE_INTERVAL_SECONDS=0.3);
    ``install`` restores the trigger, after which events flow again and status is healthy."""
    ldsn, bdsn = dbs
    env = {"LITEMAAS_DATABASE_URL": bdsn, "LITELLM_DATABASE_URL": ldsn, "LITELLM_MASTER_KEY": master_key}
    l_role, b_role, role_password = relay_roles(pg_cluster, ldsn, bdsn)
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        await add(lc, "kept", master_key, max_tokens=1)
        await add(lc, "dropped-later", master_key, max_tokens=1)
        async with running(make_settings(ldsn, bdsn, master_key)):
            await eventually(lambda: matches_truth(lc, bc, set()), what="synced while the trigger exists")

        await lc.execute(DROP_TRIGGERS)
        await add(lc, "missed-1", master_key, max_tokens=7)
        await add(lc, "missed-2", master_key, max_tokens=8)
        await lc.execute(
            f"""UPDATE {TABLE} SET model_info = model_info || '{{"max_tokens": 99}}' """
            "WHERE model_name = 'kept'"
        )
        await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'dropped-later'")
        assert (await outbox.counts(lc)).pending == 0  # no event: only the reconcile can heal this

        capsys.readouterr()
        assert await run_cli(monkeypatch, env, "status") == 2
        status_out = capsys.readouterr().out
        assert "trigger          : MISSING" in status_out
        assert "the trigger on LiteLLM's model table is missing" in status_out
        assert "run `litemaas-hooks install`" in status_out

        settings = make_settings(
            as_url(l_role), as_url(b_role), master_key, reconcile_interval_seconds=0.3, poll_interval_seconds=0.2
        )
        async with running(settings, reconcile_retire_missing=True) as (relay,):

            async def reconciled() -> bool:
                return relay.stats.full_reconciles >= 1 and await matches_truth(lc, bc, {"dropped-later"})

            await eventually(reconciled, deadline_seconds=20, what="the periodic reconcile converged without trigger")
            assert not (await outbox.trigger_state(lc)).trigger_present  # this role could not re-create it
        assert any("could not be re-created" in line and "litemaas-hooks install" in line for line in logs)
        assert await audits(bc) == {"dropped-later": 1}

        assert await run_cli(monkeypatch, env, "install") == 0
        assert (await outbox.trigger_state(lc)).ok
        await add(lc, "after-install", master_key, max_tokens=1)
        assert (await outbox.counts(lc)).pending == 1  # events flow again
        async with running(make_settings(ldsn, bdsn, master_key)):
            await eventually(lambda: matches_truth(lc, bc, {"dropped-later"}), what="the event was applied")
        capsys.readouterr()
        assert await run_cli(monkeypatch, env, "status") == 0
        healthy_out = capsys.readouterr().out
        assert "HEALTHY" in healthy_out
    await assert_no_secrets(
        pg_cluster,
        ldsn,
        bdsn,
        [master_key, role_password],
        {"logs": "\n".join(logs), "status output": status_out + healthy_out},
    )


# -- least privilege --------------------------------------------------------------------------------


async def test_relay_and_backfill_work_with_the_readme_least_privilege_roles(
    dbs: tuple[str, str],
    master_key: str,
    pg_cluster: LocalPostgres,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    logs: list[str],
) -> None:
    """Injects: the relay and the backfill run as the roles of README "Database privileges" (granted by
    parsing that README block): a backend role with USAGE on schema litemaas_hooks + EXECUTE on its
    functions, a LiteLLM role that may only read the model table and use the outbox.

    Asserts: backfill and relay (create, update, rename, retire with cascade) work and nothing is lost;
    the backend role can neither read nor write public.models directly, the LiteLLM role cannot write
    LiteLLM's table."""
    ldsn, bdsn = dbs
    l_role, b_role, role_password = relay_roles(pg_cluster, ldsn, bdsn)
    async with await psycopg.AsyncConnection.connect(b_role, autocommit=True) as restricted:
        for statement in ("SELECT * FROM public.models", "UPDATE public.models SET name = 'x'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                await restricted.execute(statement)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await restricted.execute("SELECT * FROM litemaas_hooks.hidden_models")
    async with await psycopg.AsyncConnection.connect(l_role, autocommit=True) as restricted:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            await restricted.execute(f"UPDATE {TABLE} SET model_name = 'x'")

    role_env = {
        "LITEMAAS_DATABASE_URL": as_url(b_role),
        "LITELLM_DATABASE_URL": as_url(l_role),
        "LITELLM_MASTER_KEY": master_key,
    }
    async with (
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        for name in ("a", "b", "c"):
            await add(lc, name, master_key, max_tokens=3)
        capsys.readouterr()
        assert await run_cli(monkeypatch, role_env, "backfill") == 0
        backfill_out = capsys.readouterr()
        assert "created 3" in backfill_out.out
        await lc.execute("DELETE FROM litemaas_hooks.model_events")  # applied by the backfill
        assert await matches_truth(lc, bc, set())

        await bc.execute(
            "INSERT_ROW INTO users (id, username, email, oauth_provider, oauth_id) "
            "VALUES ('11111111-1111-1111-1111-111111111111', 'u', 'u@example.com', 'test', 'u')"
        )
        await bc.execute(
            "INSERT_ROW INTO subscriptions (user_id, model_id) VALUES ('11111111-1111-1111-1111-111111111111', 'c')"
        )
        settings = make_settings(as_url(l_role), as_url(b_role), master_key)
        async with running(settings) as (relay,):
            await add(lc, "d", master_key, max_tokens=4)
            await lc.execute(
                f"""UPDATE {TABLE} SET model_info = model_info || '{{"max_tokens": 5}}' """
                "WHERE model_name = 'a'"
            )
            await lc.execute(f"UPDATE {TABLE} SET model_name = 'b2' WHERE model_name = 'b'")
            await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'c'")
            await eventually(lambda: matches_truth(lc, bc, {"b", "c"}), what="relay as least-privilege roles")
            assert relay.stats.events_failed == 0
            assert relay.stats.reconnects == 0
        assert await audits(bc) == {"b": 1, "c": 1}
        assert await scalar(bc, "SELECT status FROM subscriptions") == "inactive"  # the cascade ran
    await assert_no_secrets(
        pg_cluster,
        ldsn,
        bdsn,
        [master_key, role_password],
        {"logs": "\n".join(logs), "backfill output": backfill_out.out + backfill_out.err},
    )


# -- bad input --------------------------------------------------------------------------------------

AWKWARD_NAMES = (
    'it\'s "quoted"',
    "a;b",
    "x -- y",
    "org/model/v1",
    "'; DROP TABLE models; --",
    "modèle-日本語-🚀",
)


async def test_bad_inputs_are_recorded_errors_and_never_block_the_rest(
    dbs: tuple[str, str], master_key: str, pg_cluster: LocalPostgres, logs: list[str]
) -> None:
    """Injects, each through a plain INSERT_ROW into LiteLLM's table (which must succeed): litellm_params
    encrypted with another key, litellm_params that is not JSON, model_info that is a JSON string or an
    array, an empty model_name, a 256-character model_name, names with control characters, a 3 MB
    model_info, negative / non-numeric rpm, tpm and costs, names with quotes, ``;``, ``--``, ``/`` and
    unicode (which must sync), and outbox rows pointing at models that do not exist (anymore).

    Asserts: every bad event is kept (dead after LITEMAAS_HOOKS_MAX_ATTEMPTS=2) with an error naming the
    problem; the relay never crashed or reconnected; every good model interleaved with them (and the
    awkward names) is in the backend; the vanished-model events simply converge (retire / no-op)."""
    ldsn, bdsn = dbs
    other_key = "sk-" + secrets.token_hex(32)
    settings = make_settings(ldsn, bdsn, master_key, max_attempts=2, retry_base_seconds=0.05, retry_max_seconds=0.1)

    def row(name: str, key: str = master_key, params: dict[str, Any] | None = None, **info: Any) -> dict[str, Any]:
        """A row from LiteLLM's builder; ``info`` is merged into model_info afterwards, as a writer
        bypassing LiteLLM's validation (an older version, SQL, a migration) could leave it."""
        r = seed.as_insert_params(litellm_row(name, {**PARAMS, **(params or {})}, key=key))
        r.pop("blocked")
        r["model_info"] = Jsonb({**r["model_info"].obj, **info})
        return r

    # name -> (row, a fragment of the error recorded for its event)
    bad: dict[str, tuple[dict[str, Any], str]] = {
        "wrong-key": (row("wrong-key", key=other_key), "could not be decrypted"),
        "params-not-json": ({**row("params-not-json"), "litellm_params": Jsonb("{not json")}, "is not valid JSON"),
        "info-json-string": ({**row("info-json-string"), "model_info": Jsonb("just a string")}, "is not valid JSON"),
        "info-array": ({**row("info-array"), "model_info": Jsonb([1, 2, 3])}, "not a JSON object"),
        "info-array-in-string": (
            {**row("info-array-in-string"), "model_info": Jsonb("[1, 2]")},
            "not a JSON object",
        ),
        "m" * 256: (row("m" * 256), "256 characters long"),
        "ctl\x01name": (row("ctl\x01name"), "control characters"),
        "new\nline": (row("new\nline"), "control characters"),
        "huge-info": (row("huge-info", blob="x" * 3_000_000), "bytes of JSON"),
        "negative-rpm": (row("negative-rpm", params={"rpm": -5}), "rpm must be between 0"),
        "text-max-tokens": (row("text-max-tokens", max_tokens="lots"), "max_tokens must be a whole number"),
        "negative-cost": (row("negative-cost", input_cost_per_token=-0.1), "non-negative"),
        "text-cost": (row("text-cost", output_cost_per_token="cheap"), "must be a number"),
    }
    good = [f"good-{i}" for i in range(len(bad))]
    async with (
        running(settings) as (relay,),
        await psycopg.AsyncConnection.connect(ldsn, autocommit=True) as lc,
        await psycopg.AsyncConnection.connect(bdsn, autocommit=True) as bc,
    ):
        await add(lc, "will-vanish", master_key, max_tokens=1)
        await eventually(lambda: matches_truth(lc, bc, set()), what="will-vanish synced")
        for (_, (bad_row, _)), good_name in zip(bad.items(), good, strict=True):
            await lc.execute(INSERT_ROW, bad_row)  # LiteLLM's own write succeeds
            await add(lc, good_name, master_key, max_tokens=1)
        empty = {**row(""), "model_name": ""}
        await lc.execute(INSERT_ROW, empty)  # empty model_name
        for name in AWKWARD_NAMES:
            await add(lc, name, master_key, max_tokens=1)
        # outbox rows pointing at models that vanished: one never synced, one in the backend
        await lc.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        await lc.execute(f"DELETE FROM {TABLE} WHERE model_name = 'will-vanish'")
        await lc.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")
        await lc.execute(
            "INSERT_ROW INTO litemaas_hooks.model_events (op, model_id, new_model_name) VALUES "
            "('INSERT', 'no-such-id', 'never-existed'), ('UPDATE', 'gone-id', 'will-vanish'); "
            "SELECT pg_notify('litemaas_hooks_model_events', '')"
        )
        assert await scalar(lc, f"SELECT count(*) FROM {TABLE}") == 2 * len(bad) + 1 + len(AWKWARD_NAMES)

        async def settled() -> bool:
            c = await outbox.counts(lc)
            return c.pending == 0 and c.claimed == 0 and c.dead == len(bad) + 1  # + the empty name

        await eventually(settled, deadline_seconds=30, what="bad events dead, every other event applied")
        have = await backend_models(bc)
        for name in (*good, *AWKWARD_NAMES):
            assert have.get(name) == "available", name
        assert have["will-vanish"] == "unavailable"
        assert "never-existed" not in have
        assert not set(bad) & set(have)
        assert "" not in have
        dead = await outbox.dead_events(lc)
        errors = {e.new_model_name: e.last_error or "" for e in dead if e.new_model_name}
        assert set(errors) == set(bad)
        nameless = [e.last_error or "" for e in dead if not e.new_model_name]
        assert nameless == [
            f"deployment {empty['model_id']} has no model_name; give it a name in LiteLLM "
            "(PATCH /model/{model_id}/update)"
        ]
        for name, (_, fragment) in bad.items():
            assert fragment in errors[name], (name, errors[name])
            assert errors[name].startswith(f"{name}: ")  # names the model
        assert relay.stats.reconnects == 0
        assert relay.stats.last_error is None
        assert await audits(bc) == {"will-vanish": 1}

        # an empty name gives its event no name to converge: the event is kept with that error, and the
        # full scan reports the deployment too: `status` (and backfill / the periodic reconcile) name it
        report = await collect_status(settings)
        assert "model_name is missing or blank" in report.drift.errors[f"<deployment {empty['model_id']}>"]
        assert set(bad) <= set(report.drift.errors)
        status_text = format_status(report)
        assert "cannot sync <deployment" in status_text
    await assert_no_secrets(
        pg_cluster,
        ldsn,
        bdsn,
        [master_key, other_key],
        {"logs": "\n".join(logs), "status output": status_text + report.to_json()},
    )


# -- LiteLLM's prints never reach our stdout ------------------------------------------------------


def test_litellm_lookups_print_nothing_to_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Injects: cost-map lookups (what every mapped deployment costs) for a known model and for one
    LiteLLM has no provider for, with LiteLLM's ``suppress_debug_info`` off as in a ``litemaas-hooks``
    process (only LiteLLM's proxy_server and Router turn it on; an earlier test may have built one).

    Asserts: nothing reaches stdout. LiteLLM's ``get_llm_provider`` prints a "Provider List" banner on
    a miss, and >= 1.108's router-like registration of the looked-up deployment misses for every model:
    the banner landed in ``status --json``, in ``backfill``'s output and in the relay's stdout (the
    process test above reads a relay's stdout too)."""
    import litellm

    monkeypatch.setattr(litellm, "suppress_debug_info", False)
    tag = secrets.token_hex(4)
    for model in ("openai/gpt-4o", f"unplaceable-{tag}"):
        litellm_adapter.cost_map_lookup(model, None)
    assert capsys.readouterr().out == ""
    assert litellm.suppress_debug_info is False  # LiteLLM's own setting is left as it was
