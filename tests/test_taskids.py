"""Task-id lists written first..last in JSON (issue 12: a 200,000-task phase keeps its record and responses small)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.bench_big_preview import big_tasks
from specflow_nb import machine as M
from specflow_nb.models import BatchItem, OrchestrationConfig, OrchestrationExecution, PlannedBatch
from specflow_nb.store import OrchestrationStore
from specflow_nb.taskids import MAX_IDS, MIN_LIST, compact, describe, expand
from specflow_nb.tasks import parse_tasks, plan_batches

AT = datetime(2026, 11, 30, tzinfo=timezone.utc)
LIMIT = 2_000_000  # bytes: the limit for the state file and each response


def wide(n: int) -> list[str]:
    return [f"T{k:06d}" for k in range(1, n + 1)]


def test_short_lists_stay_literal_and_long_runs_are_written_first_to_last():
    assert compact(["T001", "T002", "T003"]) == ["T001", "T002", "T003"]
    assert compact(wide(1000)) == ["T000001..T001000"]
    ids = [*wide(100), "T000100a", "T000100b", "T000100c", "X-1", *[f"T{k:06d}" for k in range(101, 103)]]
    assert compact(ids) == ["T000001..T000100", "T000100a..T000100c", "X-1", "T000101", "T000102"]
    assert expand(compact(ids)) == ids
    assert describe(wide(70)) == "T000001..T000070"
    assert describe(["T001", "T002"]) == "T001, T002"


def test_a_run_keeps_the_first_ids_width_across_a_new_digit():
    ids = [f"T{k:03d}" for k in range(950, 1050)]  # T950 … T999, T1000 … T1049
    assert compact(ids) == ["T950..T1049"]
    assert expand(["T950..T1049"]) == ids
    padded = [f"T{k:04d}" for k in range(900, 1000)] + ["T1000"]
    assert expand(compact(padded)) == padded


@pytest.mark.parametrize(
    "bad",
    ["T010..T005", "T001..X", "T001a..T002b", "T001..T001a", "T0001..T002", "..", "T001.."],
)
def test_malformed_runs_are_refused(bad):
    with pytest.raises(ValueError):
        expand([bad])


def test_an_expansion_past_the_limit_is_refused_before_it_is_built():
    with pytest.raises(ValueError, match="more than"):
        expand(["T000..T999999999"])
    with pytest.raises(ValueError, match="more than"):
        expand([f"T{MAX_IDS:07d}..T{MAX_IDS * 2:07d}", "T0000001..T0000002"])


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.integers(0, 20_000).map(lambda n: f"T{n:03d}"),
            st.integers(0, 999).map(lambda n: f"T{n:06d}"),
            st.tuples(st.integers(0, 99), st.sampled_from("abyz")).map(lambda t: f"T{t[0]:03d}{t[1]}"),
            st.text(alphabet="T0123.a", max_size=8).filter(lambda s: ".." not in s),
        ),
        max_size=400,
    ).flatmap(lambda xs: st.just(xs) | st.just(sorted(set(xs))) | st.just(wide(len(xs) + MIN_LIST)))
)
def test_expand_undoes_compact_for_any_list(ids):
    assert expand(compact(ids)) == ids
    assert len(compact(ids)) <= len(ids)


def test_models_keep_every_id_in_python_and_runs_in_json():
    item = BatchItem(index=0, section="All", task_ids=wide(5000))
    data = json.loads(item.model_dump_json(by_alias=True))
    assert data["taskIds"] == ["T000001..T005000"]
    assert item.model_dump(by_alias=True)["taskIds"] == wide(5000)  # Python dumps stay whole
    assert BatchItem.model_validate(data).task_ids == wide(5000)
    assert PlannedBatch.model_validate({"index": 0, "section": "s", "taskIds": ["T001", "T002"]}).task_ids == [
        "T001",
        "T002",
    ]


def test_only_an_id_holding_a_run_is_expanded_and_a_non_string_id_is_refused():
    # ids next to each other never make a run between them (the check joins the list's ids in one scan)
    assert PlannedBatch.model_validate({"index": 0, "section": "s", "taskIds": ["T1.", ".T2"]}).task_ids == [
        "T1.",
        ".T2",
    ]
    assert BatchItem.model_validate({"index": 0, "section": "s", "taskIds": ["X", "T001..T003"]}).task_ids == [
        "X",
        "T001",
        "T002",
        "T003",
    ]
    with pytest.raises(ValueError, match="string"):
        BatchItem.model_validate({"index": 0, "section": "s", "taskIds": ["T001..T003", 7]})


def test_a_record_with_a_malformed_or_huge_run_is_set_aside_and_never_blocks_the_project(tmp_path):
    store = OrchestrationStore(tmp_path)
    good = OrchestrationExecution(id="20260101T000000-good00", project_id=".", started_at=AT, updated_at=AT)
    store.save(good)
    for name, ids in (("20260101T000001-bad001", ["T000..T999999999"]), ("20260101T000002-bad002", ["T9..T1"])):
        bad = json.loads(store.path_for(good.id).read_text())
        bad["id"] = name
        bad["batches"]["items"] = [{"index": 0, "section": "x", "taskIds": ids}]
        store.path_for(name).write_text(json.dumps(bad))
    assert [ex.id for ex in store.list()] == [good.id]
    assert len(store.corrupt_files()) == 2


@pytest.mark.parametrize("sub_every", [0, 10], ids=["wide-ids", "sub-ids"])
def test_a_200000_task_phase_keeps_its_record_and_plan_under_2_mb(tmp_path, sub_every):
    parsed = parse_tasks(big_tasks(200_000, sub_every=sub_every))
    plan = plan_batches(parsed)
    assert plan.task_count >= 200_000
    snap = M.ProjectSnapshot(
        has_spec=True, has_plan=True, has_tasks=True, task_ids=[t.id for t in parsed.tasks], batch_plan=plan
    )
    ex = M.new_execution("20261130T000000-big000", ".", OrchestrationConfig(skip_analyze=True), AT)
    ex, actions = M.transition(ex, M.Started(at=AT, snapshot=snap))
    assert isinstance(actions[-1], M.SpawnBatch) and actions[-1].task_ids == plan.batches[0].task_ids
    store = OrchestrationStore(tmp_path)
    path = store.save(ex)
    assert path.stat().st_size < LIMIT
    assert len(plan.model_dump_json(by_alias=True)) < LIMIT
    back = store.load(ex.id)
    assert [b.task_ids for b in back.batches.items] == [b.task_ids for b in plan.batches]
    # the decision log names the plan without repeating every id; the running batch's sentence uses runs
    log = {e.decision: e for e in back.decision_log}
    assert len(json.dumps(log["batch_plan"].data)) < 100_000
    reason = log["next_batch"].reason
    assert len(reason) < 200, reason
    if sub_every:
        assert reason.endswith(", …, T001000a (1,100 tasks))"), reason
    else:
        assert reason.endswith("(T000001..T001000)"), reason
