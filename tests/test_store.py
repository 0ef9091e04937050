"""The orchestration store and the state file: atomic writes, the project lock, corrupt files set aside."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from specflow_nb.errors import ConfigError, OrchestrationNotFound, StateLocked
from specflow_nb.models import OrchestrationExecution, OrchestrationStatus
from specflow_nb.store import (
    OrchestrationStore,
    StateFile,
    atomic_write_text,
    lock_path,
    parse_value,
)

WRITER = Path(__file__).parent / "support" / "store_writer.py"
T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def make(store: OrchestrationStore, *, minutes: int = 0, status=OrchestrationStatus.RUNNING, oid: str | None = None):
    started = T0 + timedelta(minutes=minutes)
    ex = OrchestrationExecution(
        id=oid or store.new_id(started), project_id=".", status=status, started_at=started, updated_at=started
    )
    store.save(ex)
    return ex


# ---- ids, save, load, list


def test_new_id_is_time_sortable_and_file_safe():
    a = OrchestrationStore.new_id(T0)
    b = OrchestrationStore.new_id(T0 + timedelta(seconds=1))
    assert a.startswith("20260102T030405-") and len(a) == len("20260102T030405-ab12cd")
    assert a < b
    assert OrchestrationStore.new_id(T0) != a  # random part


def test_save_load_roundtrip_writes_camel_case_and_leaves_no_temp_files(tmp_path):
    store = OrchestrationStore(tmp_path)
    ex = make(store)
    path = tmp_path / ".specflow" / "workflows" / f"orchestration-{ex.id}.json"
    on_disk = json.loads(path.read_text())
    assert on_disk["projectId"] == "." and on_disk["currentPhase"] == "design" and "decisionLog" in on_disk
    assert store.load(ex.id) == ex
    assert [p.name for p in path.parent.iterdir() if p.name != ".lock"] == [path.name]


def test_save_does_not_bump_version(tmp_path):
    store = OrchestrationStore(tmp_path)
    ex = make(store)
    store.save(ex)
    assert store.load(ex.id).version == 0


@pytest.mark.parametrize("bad", ["../x", "a/b", ".hidden", "", "a..b", "x" * 200, "a b"])
def test_ids_that_are_not_plain_names_are_refused(tmp_path, bad):
    with pytest.raises(OrchestrationNotFound, match="Invalid orchestration id"):
        OrchestrationStore(tmp_path).load(bad)


def test_load_missing_raises_not_found_with_hint(tmp_path):
    with pytest.raises(OrchestrationNotFound) as info:
        OrchestrationStore(tmp_path).load("20260101T000000-abcdef")
    assert info.value.hint and info.value.http_status == 404


def test_list_is_newest_first_then_by_id_and_active_picks_the_active_one(tmp_path):
    store = OrchestrationStore(tmp_path)
    assert store.list() == [] and store.active() is None
    old = make(store, minutes=0, status=OrchestrationStatus.PAUSED)
    done = make(store, minutes=5, status=OrchestrationStatus.COMPLETED)
    tie_a = make(store, minutes=3, status=OrchestrationStatus.FAILED, oid="tie-a")
    tie_b = make(store, minutes=3, status=OrchestrationStatus.CANCELLED, oid="tie-b")
    assert [e.id for e in store.list()] == [done.id, tie_b.id, tie_a.id, old.id]
    assert store.active() == old  # finished ones do not count, however new


def test_atomic_write_failure_keeps_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "f.json"
    atomic_write_text(target, "old\n")
    with pytest.raises(UnicodeEncodeError):
        atomic_write_text(target, "new \ud800")  # a lone surrogate cannot be encoded: fails mid-write
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


# ---- corrupt files


@pytest.mark.parametrize(
    "content",
    [b"", b'{"id": "x", "projectId": ".", "sta', b"\x00\x00\x00", b'{"id": "x"}', b"\xff\xfe not utf-8"],
    ids=["empty", "truncated", "zeros", "missing-fields", "bad-bytes"],
)
def test_corrupt_record_is_set_aside_with_a_warning_and_others_still_list(tmp_path, caplog, content):
    store = OrchestrationStore(tmp_path)
    good = make(store)
    bad_path = store.path_for("20260101T000000-badbad")
    bad_path.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="specflow_nb.store"):
        assert store.list() == [good]
    assert not bad_path.exists()
    [aside] = store.corrupt_files()
    assert aside.name.startswith("orchestration-20260101T000000-badbad.json.corrupt-20")
    assert aside.read_bytes() == content  # kept as it was, for a human to inspect
    assert any("set aside" in r.getMessage() and r.name == "specflow_nb.store" for r in caplog.records)
    with pytest.raises(OrchestrationNotFound):
        store.load("20260101T000000-badbad")


def test_set_aside_twice_in_one_second_keeps_both(tmp_path):
    store = OrchestrationStore(tmp_path)
    path = store.path_for("dup")
    path.parent.mkdir(parents=True)
    for _ in range(2):
        path.write_text("{")
        assert store.list() == []
    assert len(store.corrupt_files()) == 2


def test_load_of_a_corrupt_record_sets_it_aside(tmp_path, caplog):
    store = OrchestrationStore(tmp_path)
    ex = make(store)
    path = store.path_for(ex.id)
    path.write_text(path.read_text()[:40])
    with caplog.at_level(logging.WARNING, logger="specflow_nb.store"), pytest.raises(OrchestrationNotFound):
        store.load(ex.id)
    assert len(store.corrupt_files()) == 1 and "set aside" in caplog.text


# ---- locking


def test_lock_is_reentrant_in_one_thread_even_across_store_objects(tmp_path):
    a, b = OrchestrationStore(tmp_path), OrchestrationStore(tmp_path)
    with a.lock(timeout=1), b.lock(timeout=1), a.lock(timeout=1):
        assert lock_path(tmp_path).exists()


def test_a_second_thread_waits_for_the_lock_then_times_out(tmp_path):
    store = OrchestrationStore(tmp_path)
    errors: list[BaseException] = []

    def other() -> None:
        try:
            with store.lock(timeout=0.2):
                pass
        except BaseException as exc:
            errors.append(exc)

    with store.lock():
        t = threading.Thread(target=other)
        t.start()
        t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], StateLocked)


HOLDER = """
import sys
from pathlib import Path
from specflow_nb.store import OrchestrationStore
with OrchestrationStore(Path(sys.argv[1])).lock():
    print("locked", flush=True)
    sys.stdin.read()  # hold until the test closes our stdin
"""


def test_second_writer_in_another_process_times_out_with_state_locked(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        store = OrchestrationStore(tmp_path, lock_timeout=0.3)
        with pytest.raises(StateLocked) as info, store.lock():
            pass
        assert str(lock_path(tmp_path)) in info.value.message and info.value.hint
        assert info.value.http_status == 409
        with pytest.raises(StateLocked):
            StateFile(tmp_path, lock_timeout=0.2).set(["a=1"])
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(10)
    with store.lock(timeout=5):  # released when the holder exits
        pass


def test_concurrent_writers_in_four_processes_lose_nothing_and_readers_never_see_a_torn_file(tmp_path):
    store = OrchestrationStore(tmp_path)
    ex = make(store)
    path = store.path_for(ex.id)
    workers, count = 4, 50
    procs = [
        subprocess.Popen([sys.executable, str(WRITER), str(tmp_path), ex.id, f"w{i}", str(count)])
        for i in range(workers)
    ]
    reads = 0
    try:
        while any(p.poll() is None for p in procs):
            # A raw read without the lock: the rename makes every read a whole file.
            OrchestrationExecution.model_validate_json(path.read_bytes())
            reads += 1
    finally:
        for p in procs:
            p.wait(120)
    assert [p.returncode for p in procs] == [0] * workers
    final = store.load(ex.id)
    assert final.version == workers * count
    assert len(final.decision_log) == workers * count
    for i in range(workers):
        mine = [e.data["n"] for e in final.decision_log if e.decision == f"w{i}" and e.data]
        assert mine == list(range(count))  # every update, in each writer's order
    assert reads > 0
    assert store.corrupt_files() == []
    assert sorted(p.name for p in path.parent.iterdir()) == [".lock", path.name]


# ---- the state file


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 12),
        ("-1.5", -1.5),
        ("true", True),
        ("false", False),
        ("null", None),
        ('{"a": [1]}', {"a": [1]}),
        ("[1, 2]", [1, 2]),
        ('"007"', "007"),
        ("implement", "implement"),
        ("", ""),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("True", "True"),
        ("a=b", "a=b"),
    ],
)
def test_parse_value(text, value):
    assert parse_value(text) == value


def test_state_set_dot_paths_typed_values_and_atomic_file(tmp_path):
    state = StateFile(tmp_path)
    assert state.load() == {}
    data = state.set(["orchestration.step.current=implement", "orchestration.step.index=2", "flag=true"])
    assert data == {"orchestration": {"step": {"current": "implement", "index": 2}}, "flag": True}
    data = state.set(["orchestration.step.status=complete", "flag=null", "list=[1,2]", "note=a=b"])
    assert data["orchestration"]["step"] == {"current": "implement", "index": 2, "status": "complete"}
    assert data["flag"] is None and data["list"] == [1, 2] and data["note"] == "a=b"
    assert json.loads((tmp_path / ".specflow" / "orchestration-state.json").read_text()) == data
    assert state.get("orchestration.step.index") == 2
    assert state.get() == data


@pytest.mark.parametrize("bad", ["=1", ".a=1", "a..b=1", "a.=1", "noequals", "a.b.c=1"])
def test_state_set_bad_key_raises_config_error_and_changes_nothing(tmp_path, bad):
    state = StateFile(tmp_path)
    state.set(["a.b=5"])
    before = state.path.read_bytes()
    with pytest.raises(ConfigError) as info:
        state.set(["ok=1", bad])
    assert info.value.hint
    assert state.path.read_bytes() == before


def test_state_set_child_of_non_object_names_the_culprit(tmp_path):
    state = StateFile(tmp_path)
    state.set(["a=1"])
    with pytest.raises(ConfigError, match=r"'a' is 1, not an object"):
        state.set(["a.b=2"])


def test_state_get_missing_key_and_corrupt_file(tmp_path):
    state = StateFile(tmp_path)
    state.set(["a.b=1"])
    with pytest.raises(ConfigError, match=r"No state key 'a\.c'"):
        state.get("a.c")
    with pytest.raises(ConfigError, match=r"No state key 'a\.b\.c'"):
        state.get("a.b.c")
    state.path.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        state.load()
    with pytest.raises(ConfigError):
        state.set(["x=1"])  # never overwrites a file it cannot read
    assert state.path.read_text() == "{not json"
    state.path.write_text("[1]")
    with pytest.raises(ConfigError, match="JSON object"):
        state.load()
