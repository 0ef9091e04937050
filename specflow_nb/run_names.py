"""What batches and agent runs are called in words: "batch 2 of 4: Core", "the healer of batch 2", "Design · #001".

Apart from :mod:`specflow_nb.summary` (the status words) because the decision log's words
(:mod:`specflow_nb.log_words`) name runs too: both read the names from here. Pure functions of an
``OrchestrationExecution`` and a run id (``{orchestration}-{seq}-{label}``); no I/O.
"""

from __future__ import annotations

import re

from specflow_nb.models import STEP_ORDER, BatchItem, OrchestrationExecution


def sentence(text: str) -> str:
    """``text`` with its first letter capitalised."""
    return text[:1].upper() + text[1:] if text else text


def current_batch(ex: OrchestrationExecution) -> BatchItem | None:
    items = ex.batches.items
    return items[ex.batches.current] if 0 <= ex.batches.current < len(items) else None


def batch_name(ex: OrchestrationExecution, b: BatchItem, *, section: bool = True) -> str:
    name = f"batch {b.index + 1} of {ex.batches.total}"
    return f"{name}: {b.section}" if section and b.section else name


def batch_at(ex: OrchestrationExecution, index: int | None) -> BatchItem | None:
    items = ex.batches.items
    return items[index] if index is not None and 0 <= index < len(items) else None


def run_phrase(ex: OrchestrationExecution, run_id: str) -> str:
    """ "the run of batch 2", "the healer of batch 2", "the design run", "the merge" — from a run id's label."""
    label = run_id.rsplit("-", 1)[-1]
    if m := re.fullmatch(r"batch(\d+)", label):
        return f"the run of batch {m.group(1)}"
    if m := re.fullmatch(r"heal(\d+)", label):
        return f"the healer of batch {m.group(1)}"
    if label == "merge":
        return "the merge"
    if label == "diagnose":
        return "the diagnosis helper"
    if label in {s.value for s in STEP_ORDER}:
        return f"the {label} run"
    return "an agent run"


def run_label(ex: OrchestrationExecution, run_id: str) -> str:
    """A run's name in a list: "Batch 2 of 4: Core · #005", "Healer of batch 2 · #006", "Design · #001"."""
    parts = run_id.rsplit("-", 2)
    seq = f" · #{parts[-2]}" if len(parts) == 3 and parts[-2].isdigit() else ""
    label = parts[-1]
    if m := re.fullmatch(r"batch(\d+)", label):
        b = batch_at(ex, int(m.group(1)) - 1)
        return sentence(batch_name(ex, b) if b else f"batch {m.group(1)}") + seq
    if m := re.fullmatch(r"heal(\d+)", label):
        return f"Healer of batch {m.group(1)}{seq}"
    if label == "diagnose":
        return f"Diagnosis helper{seq}"
    return sentence(label.replace("_", " ")) + seq


def where_stopped(ex: OrchestrationExecution, run_id: str | None, *, during: str = "during") -> str | None:
    """ "during batch 2 of 4: Core", "while healing batch 2 of 4", "during the verify step" for a run id."""
    if not run_id:
        return None
    label = run_id.rsplit("-", 1)[-1]
    if m := re.fullmatch(r"(batch|heal)(\d+)", label):
        b = batch_at(ex, int(m.group(2)) - 1)
        name = batch_name(ex, b) if b else f"batch {m.group(2)}"
        return f"while healing {name}" if m.group(1) == "heal" else f"{during} {name}"
    if label == "merge":
        return f"{during} the merge"
    if label in {s.value for s in STEP_ORDER}:
        return f"{during} the {label} step"
    return None
