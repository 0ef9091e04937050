"""Who may choose what runs (ARCHITECTURE.md, "What a grant may do").

Reading or controlling orchestrations never lets anyone choose what runs. The fields of a configuration that choose
what runs (:data:`COMMAND_FIELDS`: agentCommand, verifyCommand, model, fallbackModel, decisionModel) are a *choice* only when they
differ from what the server would use anyway (its default or one of its named presets). A host whose callers may
run code anyway (the CLI, the engine in a kernel: ``EngineSettings.trust_requests``) records every command it is
given as approved; the Jupyter server accepts a choice only from a user its authorizer grants ``execute`` on
``kernels`` or ``terminals`` (and then approves it). Before every run — start, answer, retry, heal, a restart, a
record rebuilt or edited on disk — :func:`enforce_agent_command` and :func:`enforce_verify_command` check the
command the record names against the server's settings and the approvals, so a record nobody with ``execute``
chose runs nothing it names.

Approvals are SHA-256 digests (never the commands themselves) in one file per OS user outside every project:
``{jupyter runtime dir}/specflow-approved-commands.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from specflow_nb.errors import SpecflowError
from specflow_nb.models import DEFAULT_AGENT_COMMANDS, OrchestrationConfig

#: Request fields that choose what runs (snake_case names of OrchestrationConfig).
COMMAND_FIELDS: tuple[str, ...] = ("agent_command", "verify_command", "model", "fallback_model", "decision_model")
#: jupyter_server's resources whose ``execute`` permission means "may run code on this server".
EXECUTE_RESOURCES: tuple[str, ...] = ("kernels", "terminals")
_CAMEL_FIELDS = ("agentCommand", "verifyCommand", "model", "fallbackModel", "decisionModel")
APPROVALS_FILE = "specflow-approved-commands.json"
#: The tools of an agent run nobody with execute started or continued: no shell.
NO_SHELL_TOOLS: tuple[str, ...] = ("Read", "Edit", "Write", "Glob", "Grep")

_lock = threading.Lock()


class CommandNotAllowed(SpecflowError):
    """A request chose what runs without permission to run code on the server (403)."""

    http_status = 403


def default_approvals_path() -> Path:
    """``{jupyter runtime dir}/specflow-approved-commands.json`` (outside every project)."""
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        base = Path(jupyter_runtime_dir())
    except Exception:  # jupyter_core missing or broken: the same place it would choose by default
        base = Path.home() / ".local" / "share" / "jupyter" / "runtime"
    return base / APPROVALS_FILE


def _digest(kind: str, command: str) -> str:
    return hashlib.sha256(f"{kind}\0{command.strip()}".encode()).hexdigest()


def _read(path: Path) -> set[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    items = data.get("approved") if isinstance(data, dict) else None
    return {x for x in items if isinstance(x, str)} if isinstance(items, list) else set()


def approve(path: Path | None, kind: str, command: str | None) -> None:
    """Record that someone who may run code chose ``command`` (kind: agent or verify)."""
    if path is None or not command or not command.strip():
        return
    digest = _digest(kind, command)
    with _lock:
        known = _read(path)
        if digest in known:
            return
        known.add(digest)
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"approved": sorted(known)}, fh)
            os.replace(tmp, path)


def is_approved(path: Path | None, kind: str, command: str) -> bool:
    return path is not None and _digest(kind, command) in _read(path)


def revoke(path: Path | None, kind: str, command: str) -> None:
    """Withdraw an approval (e.g. the shell of an orchestration a user without execute continues)."""
    if path is None:
        return
    digest = _digest(kind, command)
    with _lock:
        known = _read(path)
        if digest not in known:
            return
        known.discard(digest)
        with contextlib.suppress(OSError):
            tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"approved": sorted(known)}, fh)
            os.replace(tmp, path)


# ---- the agent's shell ------------------------------------------------------------------------------------------
# A server gives an agent run Bash only when a user with execute started the orchestration and no user without
# execute has continued it since (``SpecflowExtension.shell_for = "all"`` gives it to every run). The grant is an
# approval of the orchestration id, kept outside the project like command approvals, so an edited record cannot
# claim it. While a start is under way the grant is held for the project ("pending"), because the first run
# starts before the handler learns the new id; one orchestration per project makes that unambiguous.


def grant_shell_pending(path: Path | None, project: Path) -> None:
    approve(path, "shell-pending", str(project))


def settle_shell(path: Path | None, project: Path, orchestration_id: str | None) -> None:
    """After a start: the pending grant becomes the orchestration's (or is dropped when nothing started)."""
    if orchestration_id:
        approve(path, "shell", orchestration_id)
    revoke(path, "shell-pending", str(project))


def revoke_shell(path: Path | None, orchestration_id: str) -> None:
    revoke(path, "shell", orchestration_id)


def shell_allowed(settings: Any, project: Path, orchestration_id: str) -> bool:
    if not _enforcing(settings) or getattr(settings, "shell_for", "execute") == "all":
        return True
    path = _get(settings, "approved_commands_file")
    return is_approved(path, "shell", orchestration_id) or is_approved(path, "shell-pending", str(project))


def restrict_tools(opts: Any, settings: Any, project: Path, orchestration_id: str) -> Any:
    """``opts`` (AgentOptions) without the shell when :func:`shell_allowed` says no (Claude Code: Bash is neither
    allowed nor available; the Codex CLI has no tool list and keeps its sandbox)."""
    if getattr(opts, "agent", "claude") != "claude" or shell_allowed(settings, project, orchestration_id):
        return opts
    allowed = [t for t in (opts.allowed_tools or NO_SHELL_TOOLS) if t in NO_SHELL_TOOLS] or list(NO_SHELL_TOOLS)
    denied = [*opts.disallowed_tools, *(t for t in ("Bash",) if t not in opts.disallowed_tools)]
    return opts.model_copy(update={"allowed_tools": allowed, "disallowed_tools": denied})


def approve_config(path: Path | None, config: OrchestrationConfig) -> None:
    approve(path, "agent", config.agent_command)
    approve(path, "verify", config.verify_command)
    approve(path, "model", config.model)
    approve(path, "model", config.fallback_model)
    if config.decision_model != OrchestrationConfig.model_fields["decision_model"].default:  # haiku needs none
        approve(path, "model", config.decision_model)


# ---- settings views (duck-typed: EngineSettings, or the extension's traitlets) -----------------------------------


def _get(settings: Any, name: str, default: Any = None) -> Any:
    value = getattr(settings, name, default)
    return default if value is None else value


def agent_presets(settings: Any) -> dict[str, str]:
    return dict(_get(settings, "agent_commands", {}) or {})


def verify_presets(settings: Any) -> dict[str, str]:
    return dict(_get(settings, "verify_commands", {}) or {})


def default_config(settings: Any, agent: str = "claude") -> OrchestrationConfig:
    """What the server uses for the command fields when a request leaves them out."""
    base = OrchestrationConfig.model_validate({"agent": agent})
    update: dict[str, Any] = {}
    if _get(settings, "default_model"):
        update["model"] = settings.default_model
    if _get(settings, "verify_command"):
        update["verify_command"] = settings.verify_command
    return base.model_copy(update=update)


def resolve_presets(config: OrchestrationConfig, settings: Any) -> OrchestrationConfig:
    """A preset's name in agentCommand or verifyCommand becomes its command."""
    update: dict[str, Any] = {}
    if config.verify_command and config.verify_command in verify_presets(settings):
        update["verify_command"] = verify_presets(settings)[config.verify_command]
    if config.agent_command in agent_presets(settings):
        update["agent_command"] = agent_presets(settings)[config.agent_command]
    return config.model_copy(update=update) if update else config


def choices(config: OrchestrationConfig, given: Iterable[str], settings: Any) -> list[str]:
    """The camelCase names of the command fields ``config`` (presets resolved) chooses beyond the server's own."""
    defaults = default_config(settings, config.agent)
    given = set(given)
    chosen: list[str] = []
    # agentCommand: the server's agent_command (and codex_command) replace it for every run: then it is no choice
    imposed = _get(settings, "agent_command") or (config.agent == "codex" and _get(settings, "codex_command"))
    if "agent_command" in given and not imposed:
        allowed = {DEFAULT_AGENT_COMMANDS[config.agent], *agent_presets(settings).values()}
        if config.agent_command not in allowed:
            chosen.append("agentCommand")
    if "verify_command" in given and config.verify_command:
        allowed_verify = {defaults.verify_command, *verify_presets(settings).values()}
        if config.verify_command not in allowed_verify:
            chosen.append("verifyCommand")
    models = _allowed_models(config, settings)
    if "model" in given and config.model and config.model not in models:
        chosen.append("model")
    if "fallback_model" in given and config.fallback_model and config.fallback_model not in models:
        chosen.append("fallbackModel")
    if (
        "decision_model" in given
        and config.decision_model
        and config.decision_model not in _decision_models(config, settings)
    ):
        chosen.append("decisionModel")
    return chosen


def permissions(may_execute: bool, settings: Any) -> dict[str, Any]:
    """What the panel's Start form may let this user set (the preview's ``permissions``)."""
    return {
        "mayExecute": may_execute,
        "commandFields": list(_CAMEL_FIELDS),
        "editableCommandFields": list(_CAMEL_FIELDS) if may_execute else [],
        "agentCommands": agent_presets(settings),
        "verifyCommands": verify_presets(settings),
        "models": sorted({m for m in (_get(settings, "allowed_models", []) or []) if m}),
        "missing": None if may_execute else "execute on kernels or terminals",
    }


# ---- enforcement before every run ----------------------------------------------------------------------------------


def _enforcing(settings: Any) -> bool:
    return not bool(getattr(settings, "trust_requests", True))


def _allowed_models(config: OrchestrationConfig, settings: Any) -> set[str | None]:
    builtin = OrchestrationConfig.model_validate({"agent": config.agent}).model
    return {default_config(settings, config.agent).model, builtin, *(_get(settings, "allowed_models", []) or [])}


def _decision_models(config: OrchestrationConfig, settings: Any) -> set[str | None]:
    """The decision helper's models nobody needs to approve: the allowed ones, the built-in default (haiku) and the
    host's ``decision_model``."""
    builtin = OrchestrationConfig.model_validate({"agent": config.agent}).decision_model
    return {*_allowed_models(config, settings), builtin, _get(settings, "decision_model")}


def enforce_models(config: OrchestrationConfig, settings: Any) -> None:
    """The record's model and fallback model must be the server's default, allowed, or approved (chosen by someone
    who may run code). Raises CommandNotAllowed."""
    if not _enforcing(settings):
        return
    allowed = _allowed_models(config, settings)
    decision = _decision_models(config, settings)
    for field, value, ok in (
        ("model", config.model, allowed),
        ("fallbackModel", config.fallback_model, allowed),
        ("decisionModel", config.decision_model, decision),
    ):
        if value and value not in ok and not is_approved(_get(settings, "approved_commands_file"), "model", value):
            raise CommandNotAllowed(
                f"The {field} {value!r} was not chosen by someone who may run code on this server: not run.",
                hint="A user with execute permission (kernels or terminals) must start it, or add it to "
                "SpecflowExtension.allowed_models.",
            )


def enforce_agent_command(config: OrchestrationConfig, settings: Any) -> OrchestrationConfig:
    """The configuration a run may use: the server's agent_command wins; otherwise the record's command must be the
    agent's default, a preset, or approved (chosen by someone who may run code); so must its models
    (:func:`enforce_models`). Raises CommandNotAllowed."""
    enforce_models(config, settings)
    if _get(settings, "agent_command") and config.agent == "claude":
        return config.model_copy(update={"agent_command": settings.agent_command})
    if not _enforcing(settings):
        return config
    if config.agent == "codex" and (_get(settings, "codex_command") or _get(settings, "agent_command")):
        return config  # codex_command() imposes the server's command
    command = config.agent_command
    if command in (DEFAULT_AGENT_COMMANDS[config.agent], *agent_presets(settings).values()):
        return config
    if is_approved(_get(settings, "approved_commands_file"), "agent", command):
        return config
    raise CommandNotAllowed(
        f"The agent command {command!r} was not chosen by someone who may run code on this server: not run.",
        hint="A user with execute permission (kernels or terminals) must start it, or set "
        "SpecflowExtension.agent_command / agent_commands.",
    )


def verify_refusal(command: str, settings: Any) -> str | None:
    """None when ``command`` may run as the verify command; else why not (the verify step then fails)."""
    if not _enforcing(settings):
        return None
    if command in (_get(settings, "verify_command"), *verify_presets(settings).values()):
        return None
    if is_approved(_get(settings, "approved_commands_file"), "verify", command):
        return None
    return (
        f"verifyCommand {command!r} was not run: nobody who may run code on this server chose it "
        "(set SpecflowExtension.verify_command or verify_commands, or start as a user with execute permission)."
    )


def may_execute(check: Any, handler: Any, user: Any) -> bool:
    """Does the authorizer grant ``execute`` on kernels or terminals (jupyter_server's own routes' check)?"""
    return any(check(handler, user, "execute", resource) for resource in EXECUTE_RESOURCES)
