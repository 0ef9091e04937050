"""The record's write-ahead journal (specflow_nb/journal.py): a state one step ahead of the record file, taken by
readers only while it is exactly that, whole, and never holding a secret."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from specflow_nb import fenced, journal, ownership
from specflow_nb.engine_state import Slot, signature
from specflow_nb.models import OrchestrationExecution
from specflow_nb.store import OrchestrationStore

AT = datetime(2026, 11, 30, tzinfo=timezone.utc)


def saved(tmp_path: Path, version: int = 3) -> tuple[OrchestrationStore, OrchestrationExecution]:
    store = OrchestrationStore(tmp_path)
    ex = OrchestrationExecution(id="20261130T120000-abcdef", project_id="p", started_at=AT, updated_at=AT)
    ex.version = version
    store.save(ex)
    return store, ex


def ahead(ex: OrchestrationExecution, by: int = 2) -> OrchestrationExecution:
    nxt = ex.model_copy(deep=True)
    nxt.version = ex.version + by
    nxt.error_message = f"state {nxt.version}"
    return nxt


def test_a_reader_gets_the_journals_step_until_the_record_is_written_behind_it(tmp_path):
    store, ex = saved(tmp_path)
    nxt = ahead(ex)
    with store.lock():
        store.write_ahead(nxt, base_version=ex.version)
    record = store.path_for(ex.id)
    assert OrchestrationExecution.model_validate_json(record.read_bytes()).version == ex.version  # file untouched
    assert store.load(ex.id) == nxt
    assert store.list() == [nxt]
    store.save(nxt)  # written behind: the journal is not ahead any more
    assert store.load(ex.id) == nxt
    later = ahead(nxt, by=1)
    store.save(later)  # a later save without the journal: the file is newer, the journal stale
    assert store.load(ex.id) == later


def test_a_journal_that_is_torn_or_follows_another_record_is_ignored(tmp_path):
    store, ex = saved(tmp_path)
    path = journal.journal_path(store.path_for(ex.id))
    store.write_ahead(ahead(ex), base_version=ex.version)
    data = bytearray(path.read_bytes())
    data[60] ^= 0xFF  # a byte of the state: the host died in the write
    path.write_bytes(bytes(data))
    assert store.load(ex.id) == ex
    store.write_ahead(ahead(ex), base_version=ex.version - 1)  # written after another version than the file's
    assert store.load(ex.id) == ex
    store.write_ahead(ahead(ex, by=0), base_version=ex.version)  # not ahead of the file
    assert store.load(ex.id) == ex


def test_the_journal_grows_with_the_state_and_is_overwritten_in_place(tmp_path):
    store, ex = saved(tmp_path)
    path = journal.journal_path(store.path_for(ex.id))
    store.write_ahead(ahead(ex), base_version=ex.version)
    first = os.stat(path)
    assert first.st_size == 64 * 1024 and first.st_blocks * 512 >= first.st_size  # written zeros, not sparse
    store.write_ahead(ahead(ex, by=3), base_version=ex.version)
    assert os.stat(path).st_ino == first.st_ino  # the same file, overwritten
    big = ahead(ex, by=4)
    big.error_message = "x" * 100_000
    store.write_ahead(big, base_version=ex.version)
    assert os.stat(path).st_size >= 200_000
    assert store.load(ex.id) == big


def test_a_record_set_aside_as_corrupt_takes_its_journal_with_it(tmp_path):
    store, ex = saved(tmp_path)
    store.write_ahead(ahead(ex), base_version=ex.version)
    store.path_for(ex.id).write_text("{not json", encoding="utf-8")
    assert store.list() == []
    assert not journal.journal_path(store.path_for(ex.id)).exists()


def test_a_new_owner_writes_the_journals_step_into_the_record(tmp_path):
    store, ex = saved(tmp_path)
    nxt = ahead(ex)
    store.write_ahead(nxt, base_version=ex.version)
    with store.lock():
        store.settle(store.load(ex.id))
    assert OrchestrationExecution.model_validate_json(store.path_for(ex.id).read_bytes()) == nxt
    written = os.stat(store.path_for(ex.id)).st_ino
    with store.lock():
        store.settle(store.load(ex.id))  # the record holds it now: nothing to write
    assert os.stat(store.path_for(ex.id)).st_ino == written


def test_the_journal_holds_no_secret_and_follows_no_link(tmp_path, monkeypatch):
    secret = "sk-journal-" + "q" * 24
    monkeypatch.setenv("SPECFLOW_TEST_API_KEY", secret)
    store, ex = saved(tmp_path)
    nxt = ahead(ex)
    nxt.error_message = f"the agent printed {secret}"
    store.write_ahead(nxt, base_version=ex.version)
    path = journal.journal_path(store.path_for(ex.id))
    assert secret.encode() not in path.read_bytes()
    assert secret not in (store.load(ex.id).error_message or "")
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_bytes(b"keep")
    path.unlink()
    path.symlink_to(outside)
    store.write_ahead(nxt, base_version=ex.version)  # the link is replaced, never written through
    assert outside.read_bytes() == b"keep" and not path.is_symlink()


@pytest.mark.skipif(not journal.AVAILABLE, reason="no pwrite/fdatasync here")
def test_a_journal_naming_more_than_it_holds_is_ignored(tmp_path):
    store, ex = saved(tmp_path)
    store.write_ahead(ahead(ex), base_version=ex.version)
    path = journal.journal_path(store.path_for(ex.id))
    os.truncate(path, 100)  # the header promises more than the file has
    assert store.load(ex.id) == ex


def owned(tmp_path: Path) -> tuple[Slot, OrchestrationExecution]:
    """A slot owning a saved record, as an engine holds it after a fenced save."""
    store, ex = saved(tmp_path)
    slot = Slot(project=tmp_path, project_id="p", store=store, execution=ex)
    with store.lock():
        slot.owner, _, _ = ownership.claim(store.folder, ex.id, ownership.Identity(), lease_seconds=60)
    slot.fence, slot.fenced_version = signature(store.path_for(ex.id)), ex.version  # as the start or a takeover
    return slot, ex


@pytest.mark.skipif(not journal.AVAILABLE, reason="no pwrite/fdatasync here")
def test_the_owner_writes_ahead_then_behind_and_never_runs_further_ahead_of_its_record(tmp_path):
    slot, ex = owned(tmp_path)
    record = slot.store.path_for(ex.id)
    nxt = ahead(ex)
    assert fenced.write_ahead_or_now(slot, nxt) is True  # the journal, not the record file
    assert OrchestrationExecution.model_validate_json(record.read_bytes()) == ex
    fenced.write_behind(slot, nxt)
    assert OrchestrationExecution.model_validate_json(record.read_bytes()) == nxt
    assert slot.fenced_version == nxt.version
    # the record file cannot be replaced (a folder where it was): the write behind fails, quietly; the next save
    # writes the record itself, so it fails too (and is retried by the stepper) instead of running ahead
    third = ahead(nxt)
    assert fenced.write_ahead_or_now(slot, third) is True
    record.unlink()
    record.mkdir()
    fenced.write_behind(slot, third)  # logged, not raised
    assert slot.fence is None
    with pytest.raises(OSError):
        fenced.write_ahead_or_now(slot, ahead(third))
    record.rmdir()


def test_a_save_by_someone_else_is_refused_ahead_as_behind(tmp_path):
    slot, ex = owned(tmp_path)
    intruder = ahead(ex, by=5)
    slot.store.save(intruder)  # another writer replaced the record
    with pytest.raises(ownership.NotOwner):
        fenced.write_ahead_or_now(slot, ahead(ex))
    assert slot.store.load(ex.id) == intruder


def test_a_journal_whose_folders_leave_the_project_is_ignored(tmp_path):
    store, ex = saved(tmp_path)
    hostile = ahead(ex)
    hostile.feature_dir = "../../elsewhere"  # what a hand-made journal could say; the record's own check refuses it
    store.write_ahead(hostile, base_version=ex.version)
    assert store.load(ex.id) == ex
