"""Activity and transcripts from run folders, without an engine: words for tool calls, turns, cost, the Codex
stream, incremental reading (half-written lines, a replaced file), shortening and redaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from specflow_nb.activity import ActivityReader, describe_tool, now_text
from specflow_nb.transcript import MAX_ENTRIES, TOOL_RESULT_CHARS, build


def _assistant(msg_id: str, *blocks: dict) -> str:
    return json.dumps({"type": "assistant", "message": {"id": msg_id, "content": list(blocks)}}) + "\n"


def _tool(name: str, **inp: object) -> dict:
    return {"type": "tool_use", "id": f"t-{name}", "name": name, "input": inp}


@pytest.mark.parametrize(
    ("name", "inp", "words"),
    [
        ("Edit", {"file_path": "/p/src/todo/store.py"}, "Editing src/todo/store.py"),
        ("MultiEdit", {"file_path": "/p/a.py"}, "Editing a.py"),
        ("Write", {"file_path": "/elsewhere/x.md"}, "Writing /elsewhere/x.md"),
        ("Read", {"file_path": "/p/specs/0001-x/tasks.md"}, "Reading specs/0001-x/tasks.md"),
        ("Bash", {"command": "pytest -q\necho done"}, "Running pytest -q"),
        ("exec_command", {"command": ["bash", "-lc", "ls"]}, "Running bash -lc ls"),
        ("Grep", {"pattern": "def main"}, "Searching for def main"),
        ("TodoWrite", {"todos": []}, "Updating its to-do list"),
        ("mcp__github__create_issue", {}, "Using mcp__github__create_issue"),
    ],
)
def test_tool_calls_in_words(name: str, inp: dict, words: str) -> None:
    assert describe_tool(name, inp, Path("/p")) == words


def test_turns_cost_and_incremental_reading(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    stream = run / "stream.jsonl"
    init = json.dumps({"type": "system", "subtype": "init", "cwd": str(tmp_path)}) + "\n"
    first = _assistant(
        "m1", {"type": "text", "text": "Looking at the tasks."}, _tool("Read", file_path=f"{tmp_path}/t.md")
    )
    stream.write_text(init + first[:20])  # a half-written line is not read yet
    reader = ActivityReader(run)
    assert reader.poll().turns == 0
    with stream.open("a") as f:
        f.write(first[20:] + _assistant("m1", _tool("Edit", file_path=f"{tmp_path}/src/a.py")))
    t = reader.poll()
    assert (t.turns, t.now, t.tool) == (1, "Editing src/a.py", "Editing src/a.py")  # one message, two lines
    assert [line.text for line in t.recent] == ["Looking at the tasks.", "Reading t.md", "Editing src/a.py"]
    with stream.open("a") as f:
        f.write(_assistant("m2", {"type": "text", "text": "Done."}))
        f.write(json.dumps({"type": "result", "is_error": False, "total_cost_usd": 0.1234, "num_turns": 3}) + "\n")
    t = reader.poll()
    assert t.finished and t.cost_usd == pytest.approx(0.1234) and t.turns == 3
    assert t.now == "Finished after 3 turn(s), $0.12"
    # the folder's stream replaced (a retry reusing it): read from the start again
    stream.unlink()
    stream.write_text(_assistant("m9", _tool("Bash", command="make test")))
    t = reader.poll()
    assert (t.turns, t.now, t.finished) == (1, "Running make test", False)


def test_codex_events(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    lines = [
        {"type": "thread.started", "thread_id": "th"},
        {"type": "item.started", "item": {"id": "1", "type": "command_execution", "command": "pytest -q"}},
        {"type": "item.completed", "item": {"id": "1", "type": "command_execution", "command": "pytest -q"}},
        {"type": "item.completed", "item": {"type": "file_change", "changes": [{"path": str(tmp_path / "s.py")}]}},
        {"type": "item.completed", "item": {"type": "agent_message", "text": "All green."}},
        {"type": "turn.failed", "error": {"message": "rate limited"}},
    ]
    (run / "stream.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    t = ActivityReader(run, cwd=tmp_path).poll()
    assert [line.text for line in t.recent] == [
        "Running pytest -q",
        "Editing s.py",
        "All green.",
        "Turn failed: rate limited",
    ]
    assert t.is_error and t.turns == 1


def test_now_text_is_one_line() -> None:
    from specflow_nb.activity import Activity

    act = Activity(run_id="r", now="Editing a.py", turns=4, cost_usd=None)
    assert now_text(act) == "Editing a.py · turn 4"
    assert now_text(Activity(run_id="r")) == "Starting the agent…"


def test_a_long_run_is_shortened_and_secrets_redacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "tok-0123456789-abcdef"
    monkeypatch.setenv("MY_SERVICE_TOKEN", secret)
    folder = tmp_path / ".specflow" / "workflows" / "o-001-batch1"
    folder.mkdir(parents=True)
    (folder / "prompt.md").write_text(f"Do the batch. Use {secret}.\n")
    out = []
    for i in range(MAX_ENTRIES):
        out.append(_assistant(f"m{i}", {"type": "tool_use", "id": f"t{i}", "name": "Bash", "input": {"command": "ls"}}))
        result = {"type": "tool_result", "tool_use_id": f"t{i}", "content": "x" * 5000}
        out.append(json.dumps({"type": "user", "message": {"content": [result]}}) + "\n")
    (folder / "stream.jsonl").write_text("".join(out))
    (folder / "stderr.log").write_text("boom " * 2000 + f"token={secret}\n")
    t = build(tmp_path, "o-001-batch1", "todo")
    assert t.available and len(t.entries) == MAX_ENTRIES and t.omitted_entries == MAX_ENTRIES
    assert all(len(e.body) <= TOOL_RESULT_CHARS + 40 for e in t.entries)
    assert t.entries[1].truncated and t.entries[0].title == "Running ls"
    body = t.model_dump_json()
    assert secret not in body and "***" in t.prompt and "token=***" in t.stderr_tail
    assert not build(tmp_path, "../etc", "todo").available and not build(tmp_path, "nope", "todo").available
