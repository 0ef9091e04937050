"""The run's session leader: a tiny Python script (no site, no specflow_nb import) that runs the agent as its
child and records its exit status; the Codex variant also retries a rate-limited turn inside the run.

Apart as data: the scripts run in their own interpreter, so nothing here may import anything but the stdlib.
"""

from __future__ import annotations

#: How long a recorder waits, after telling its host how the run ended, for the host to let go of the pipe before
#: it writes exit.json anyway (a host that is alive but no longer waiting).
EXIT_HOLD_MS = 1000

#: The recorders' common step once the run has ended (``result``: exit.json's content, bytes): tell the launching
#: host on its pipe, then wait until it lets go of the pipe (POLLERR: its read end is closed) or EXIT_HOLD_MS.
_TELL_THEN_WRITE = f"""
if notify >= 0:
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    try:
        os.write(notify, result)
        held = select.poll()
        held.register(notify, select.POLLERR)
        held.poll({EXIT_HOLD_MS})
    except OSError:
        pass
    os.close(notify)
"""

#: The run's session leader: a tiny Python process (no site, no specflow_nb import) that runs the agent as its child
#: and records the agent's exit status in exit.json. Without it a server that adopted a run after a restart could
#: never learn how the run ended (only a parent can read a process's exit status). SIGTERM to the group reaches
#: the agent; the recorder survives it (a handler, not SIG_IGN, so the agent does not inherit the immunity) to
#: write the status; SIGKILL ends both. The end is told first to the host that launched the run, on the pipe named
#: by ``SPECFLOW_EXIT_FD`` (taken out of the agent's environment and not inherited by it): exit.json's content, in
#: one write of less than PIPE_BUF bytes, right after the agent's end (the ``endedAt`` stamp). That host records the
#: run's end in the orchestration record, for which it needs no file; the recorder then waits until the host closes
#: the pipe (it has moved on: the next run has started, or it died) or :data:`EXIT_HOLD_MS` have passed, and only
#: then writes exit.json and exits: the file's write and this process's exit stay out of the host's transition,
#: where they would compete with it for the machine (they cost the transition about half a millisecond there).
#: exit.json is for everyone else: a host that adopted the run notices it through its watch on the run folder, a
#: restart reads it; its temp file is opened before the agent starts, so writing it is one write and one rename.
#: A recorder that dies before telling closes the pipe empty: the host then falls back to exit.json and the
#: recorder's pidfd.
EXIT_RECORDER = (
    """
import json, os, select, signal, sys, time
path, argv = sys.argv[1], sys.argv[2:]
notify = int(os.environ.pop("SPECFLOW_EXIT_FD", "-1"))
if notify >= 0:
    os.set_inheritable(notify, False)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda *_: None)
leader = os.path.join(os.path.dirname(path), "leader.json")
with open(leader + ".tmp", "w") as f:
    json.dump({"pid": os.getpid()}, f)
os.replace(leader + ".tmp", leader)
out = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
pid = os.fork()
if pid == 0:
    try:
        os.execv(argv[0], argv)
    except OSError as exc:
        sys.stderr.write(f"{argv[0]}: {exc}\\n")
        os._exit(127)
code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
now = time.time()
ended = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%06d+00:00" % (now % 1 * 1e6)
result = json.dumps({"exitCode": code, "endedAt": ended}).encode()
"""
    + _TELL_THEN_WRITE
    + """
os.write(out, result)
os.close(out)
os.replace(path + ".tmp", path)
os._exit(code if code >= 0 else 128 - code)
"""
)


#: The session leader of a Codex run (see :data:`EXIT_RECORDER`, which it extends): when Codex fails a
#: turn on a rate limit, the recorder waits (backoff doubling from the base) and resumes the same thread with a
#: short "continue" prompt, a bounded number of times, appending to the same output; a run being killed (kill.json)
#: is never retried. Arguments: exit.json path, a JSON {retries, backoff, baseArgv}, the agent's argv.
CODEX_RECORDER = (
    r"""
import json, os, re, select, signal, sys, time
path, spec, argv = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
run_dir = os.path.dirname(path)
notify = int(os.environ.pop("SPECFLOW_EXIT_FD", "-1"))
if notify >= 0:
    os.set_inheritable(notify, False)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda *_: None)
leader = os.path.join(run_dir, "leader.json")
with open(leader + ".tmp", "w") as f:
    json.dump({"pid": os.getpid()}, f)
os.replace(leader + ".tmp", leader)
rate = re.compile(r"\b429\b|rate.?limit|too many requests", re.I)

def run(argv, stdin_path):
    pid = os.fork()
    if pid == 0:
        try:
            if stdin_path is not None:
                fd = os.open(stdin_path, os.O_RDONLY)
                os.dup2(fd, 0)
                os.close(fd)
            os.execv(argv[0], argv)
        except OSError as exc:
            sys.stderr.write(f"{argv[0]}: {exc}\n")
            os._exit(127)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

def last_failure():
    thread, failed = None, None
    try:
        with open(os.path.join(run_dir, "stream.jsonl"), "rb") as f:
            for raw in f:
                try:
                    obj = json.loads(raw)
                except ValueError:
                    continue
                if not isinstance(obj, dict):
                    continue
                if obj.get("type") == "thread.started":
                    thread = obj.get("thread_id")
                elif obj.get("type") == "turn.started":
                    failed = None
                elif obj.get("type") == "turn.failed":
                    failed = str((obj.get("error") or {}).get("message") or "")
    except OSError:
        pass
    return thread, failed

code = run(argv, None)
attempt = 0
while code != 0 and attempt < int(spec.get("retries", 0)):
    if os.path.exists(os.path.join(run_dir, "kill.json")):
        break
    thread, failed = last_failure()
    if not failed or not rate.search(failed):
        break
    attempt += 1
    wait = float(spec.get("backoff", 10)) * 2 ** (attempt - 1)
    sys.stderr.write(f"specflow: rate limited ({failed}); retry {attempt} of {spec['retries']} in {wait:g}s\n")
    sys.stderr.flush()
    deadline = time.time() + wait
    while time.time() < deadline and not os.path.exists(os.path.join(run_dir, "kill.json")):
        time.sleep(min(0.5, max(0.0, deadline - time.time())))
    if os.path.exists(os.path.join(run_dir, "kill.json")):
        break
    if thread:
        prompt = os.path.join(run_dir, "retry-prompt.md")
        with open(prompt, "w") as f:
            f.write("Continue with the task above from where you stopped: the previous attempt was interrupted "
                    "by a rate limit. Finish it and give the final answer in the requested format.\n")
        code = run([*spec["baseArgv"], "resume", thread, "-"], prompt)
    else:
        code = run(argv, os.path.join(run_dir, "prompt.md"))
now = time.time()
ended = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%06d+00:00" % (now % 1 * 1e6)
result = json.dumps({"exitCode": code, "endedAt": ended, "rateLimitRetries": attempt}).encode()
"""
    + _TELL_THEN_WRITE
    + """
with open(path + ".tmp", "wb") as f:
    f.write(result)
os.replace(path + ".tmp", path)
os._exit(code if code >= 0 else 128 - code)
"""
)
