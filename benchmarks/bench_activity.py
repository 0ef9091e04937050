"""The Now line's latency: agent output line → a client of the live channel, on the owning server AND on a second
server that only observes the same folder (issue 13: "reaches the screen within 1 s").

A slow demo-agent batch writes one stream-json line every ``--delay`` seconds. Two async clients long-poll
``GET workflow/orchestrate/activity?since=<etag>``: one on the server that owns the orchestration, one on a second
server over the same root (an observer: it never drives, it derives the activity from the run folder itself). For
every answer, lag = time received − ``lastOutputAt`` (stream.jsonl's modification time as the server read it = when
the agent wrote that line). The browser test measures the same path to the screen (MutationObserver in Chromium).

    .venv/bin/python benchmarks/bench_activity.py --delay 0.3 --batches 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import API, TOKEN, LiveServer, prepare_sample


async def follow(url: str, project: str, lags: list[float], stop: asyncio.Event) -> None:
    import httpx

    etag = None
    async with httpx.AsyncClient(base_url=url + API, headers={"Authorization": f"token {TOKEN}"}, timeout=40) as http:
        while not stop.is_set():
            params = {"projectId": project}
            if etag is not None:
                params.update(since=etag, timeout="5")
            body = (await http.get("workflow/orchestrate/activity", params=params)).json()
            received = time.time()
            if body["etag"] != etag:
                etag = body["etag"]
                act = body.get("activity")
                if act and act.get("lastOutputAt") and not act.get("finished"):
                    lags.append(received - datetime.fromisoformat(act["lastOutputAt"]).timestamp())


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay", type=float, default=0.3)
    parser.add_argument("--batches", type=int, default=2)
    args = parser.parse_args()
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = base / "root"
        prepare_sample(root / "todo")
        env = {"SPECFLOW_DEMO_SCENARIO": "slow", "SPECFLOW_DEMO_DELAY": str(args.delay)}
        owner = LiveServer(root, base / "owner", agent_env=env)
        observer = LiveServer(root, base / "observer", agent_env=env)
        owner.start()
        observer.start()
        try:
            import httpx

            with httpx.Client(base_url=owner.api, headers=owner.headers, timeout=30) as http:
                config = {"skipDesign": True, "skipAnalyze": True, "skipVerify": True, "pauseBetweenBatches": True}
                r = http.post("workflow/orchestrate", json={"projectId": "todo", "config": config})
                r.raise_for_status()
            lags: dict[str, list[float]] = {"owner": [], "observer": []}

            async def run() -> None:
                stop = asyncio.Event()
                tasks = [
                    asyncio.create_task(follow(owner.url, "todo", lags["owner"], stop)),
                    asyncio.create_task(follow(observer.url, "todo", lags["observer"], stop)),
                ]
                done = 0
                async with httpx.AsyncClient(base_url=owner.api, headers=owner.headers, timeout=30) as http:
                    while done < args.batches:
                        await asyncio.sleep(0.5)
                        ex = (await http.get("workflow/orchestrate/status", params={"projectId": "todo"})).json()
                        ex = ex["orchestration"]
                        if ex["status"] == "paused":
                            done += 1
                            if done < args.batches:
                                body = {"projectId": "todo", "id": ex["id"]}
                                (await http.post("workflow/orchestrate/resume", json=body)).raise_for_status()
                    await http.post("workflow/orchestrate/cancel", json={"projectId": "todo", "id": ex["id"]})
                stop.set()
                for t in tasks:
                    t.cancel()

            asyncio.run(run())
        finally:
            owner.stop()
            observer.stop()
    print(
        f"`benchmarks/bench_activity.py --delay {args.delay} --batches {args.batches}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; load {load0:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after\n"
    )
    print("| host | answers | median | p90 | max |")
    print("|---|---:|---:|---:|---:|")
    for name, values in lags.items():
        if not values:
            print(f"| {name} | 0 | — | — | — |")
            continue
        print(
            f"| {name} | {len(values)} | {statistics.median(values) * 1000:.0f} ms | {pct(values, 0.9) * 1000:.0f} ms"
            f" | {max(values) * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
