"""Backup and restore (`python run.py backup|restore PATH`): a round trip, all or nothing."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from store import backup

ROOT = Path(__file__).resolve().parent.parent


def run_py(*args: str, database_url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *args, "--database-url", database_url],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


async def state(db) -> dict:
    return {"orders": await db.fetchval("SELECT count(*) FROM orders"),
            "tables": await db.fetchval("SELECT count(*) FROM dining_tables"),
            "epochs": {r["id"]: r["epoch"] for r in await db.fetch("SELECT id, epoch FROM restaurants")},
            "seqs": {r["id"]: r["seq"] for r in await db.fetch("SELECT id, seq FROM restaurants")},
            "identity": await db.fetchval("SELECT identity FROM deployment")}


async def test_a_backup_restores_the_data_under_a_new_epoch_and_identity(
        client, db, database_url, base, server, menu, tmp_path):
    response = await client.post(base + "/orders", headers=server, json={
        "items": [{"menu_item_id": menu["Burger"]["id"]}]})
    assert response.status == 201
    path = tmp_path / "serveline.dump"
    done = await asyncio.to_thread(run_py, "backup", str(path), database_url=database_url)
    assert done.returncode == 0, done.stderr
    assert path.stat().st_size > 0 and not (tmp_path / "serveline.dump.partial").exists()
    before = await state(db)
    for _ in range(2):  # life goes on after the backup
        await client.post(base + "/orders", headers=server, json={
            "items": [{"menu_item_id": menu["Burrata"]["id"]}]})
    await db.execute("DELETE FROM order_items WHERE order_id IN (SELECT min(id) FROM orders)")

    done = await asyncio.to_thread(run_py, "restore", str(path), database_url=database_url)
    assert done.returncode == 0, done.stderr
    after = await state(db)
    assert (after["orders"], after["tables"], after["seqs"]) == (
        before["orders"], before["tables"], before["seqs"])
    assert await db.fetchval("SELECT count(*) FROM order_items") == 1
    # A new history: clients that saw events after the backup reset instead of skipping.
    assert all(after["epochs"][rid] != epoch for rid, epoch in before["epochs"].items())
    assert after["identity"] != before["identity"]


async def test_a_broken_backup_changes_nothing(db, database_url, tmp_path):
    broken = tmp_path / "broken.dump"
    broken.write_bytes(b"PGDMP" + b"\0" * 200)
    before = await state(db)
    with pytest.raises(backup.BackupFailed):
        await asyncio.to_thread(backup.restore, database_url, broken)
    assert await state(db) == before
    done = await asyncio.to_thread(run_py, "restore", str(tmp_path / "missing.dump"),
                                   database_url=database_url)
    assert done.returncode == 1 and "no backup at" in done.stderr


async def test_backup_and_restore_need_a_file(database_url):
    done = await asyncio.to_thread(run_py, "backup", database_url=database_url)
    assert done.returncode == 2 and "needs a file" in done.stderr
