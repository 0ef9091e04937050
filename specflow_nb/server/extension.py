"""``SpecflowExtension``: wiring only. It builds the engine, registers the routes and runs the engine's loop."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from traitlets import Dict, DottedObjectName, Enum, Float, Int, List, TraitError, Unicode, default, observe, validate
from traitlets.utils.importstring import import_item

from specflow_nb.engine import Engine, check_engine_class
from specflow_nb.models import OrchestrationExecution, utcnow
from specflow_nb.scanner import DEFAULT_SCAN_DEPTH, MAX_SCAN_DEPTH


class SpecflowExtension(ExtensionApp):
    """Hosts one :class:`specflow_nb.orchestrator.Orchestrator` over the server's root dir."""

    name = "specflow"
    description = "Complete a spec-driven development phase with an AI coding agent."
    load_other_extensions = True

    agent_command = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Agent command for every run (overrides each orchestration's agentCommand), e.g. a team's wrapper.",
    )
    default_model = Unicode(None, allow_none=True, config=True, help="Model used when a request does not name one.")
    decision_model = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Model of the read-only helper that diagnoses a failure at needs attention, when a request does not "
        "set decisionModel (default: haiku).",
    )
    stale_after_seconds = Float(
        None,
        allow_none=True,
        config=True,
        help="A run with no output for this long is reported as stalled (overrides staleAfterSeconds).",
    )
    max_concurrent_orchestrations = Int(
        20, config=True, help="Active orchestrations this server runs at once; a start beyond it gets 409."
    )
    agent_env = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="Extra environment for agent runs (e.g. API keys). Never persisted, never logged.",
    )
    default_agent = Enum(
        ["claude", "codex"],
        None,
        allow_none=True,
        config=True,
        help="The agent of a start request that names none: claude (Claude Code) or codex (the Codex CLI).",
    )
    allowed_agents = List(
        Enum(["claude", "codex"]),
        None,
        allow_none=True,
        config=True,
        help="The agents a request may choose (default: both); a start with another one is refused.",
    )
    codex_command = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Command for every Codex run (a path or a team's wrapper); default: the request's, or `codex` when "
        "agent_command is set.",
    )
    codex_prices = Dict(
        None,
        allow_none=True,
        config=True,
        help="USD per 1M tokens for each Codex model, e.g. {'gpt-5': {'inputPerMtok': 1.25, 'cachedInputPerMtok': "
        "0.125, 'outputPerMtok': 10}} ('name*' prices a family). Default: specflow_nb.agent.codex.DEFAULT_PRICES. "
        "A budgeted Codex start with an unpriced model is refused.",
    )
    codex_args = List(
        Unicode(),
        config=True,
        help="Extra `codex exec` options for every Codex run, before the subcommand (e.g. -c model_provider=...).",
    )
    # ---- what a grant may do (README "Security"; specflow_nb.policy, specflow_nb.redact)
    verify_command = Unicode(
        None,
        allow_none=True,
        config=True,
        help="The verify command of a start request that names none (anyone with specflow write may start with it).",
    )
    verify_commands = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="Named verify commands anyone with specflow write may pick, e.g. {'tests': 'pytest -q'}. Any other "
        "verifyCommand needs execute permission on kernels or terminals.",
    )
    agent_commands = Dict(
        key_trait=Unicode(),
        value_trait=Unicode(),
        config=True,
        help="Named agent commands anyone with specflow write may pick. Any other agentCommand needs execute "
        "permission on kernels or terminals (agent_command, when set, replaces every one).",
    )
    allowed_models = List(
        Unicode(),
        config=True,
        help="Models anyone with specflow write may pick besides the default; any other needs execute permission.",
    )
    env_allow = List(
        Unicode(),
        config=True,
        help="Names (or PREFIX_*) of server environment variables the verify command and agent runs may see, "
        "besides PATH, HOME, USER, LOGNAME, SHELL, LANG, LC_*, TERM, TMPDIR, TZ, VIRTUAL_ENV, CONDA_*, SPECFLOW_* "
        "(and the agent's own ANTHROPIC_*/CLAUDE_* or OPENAI_*/CODEX_*, proxy and CA settings).",
    )
    shell_for = Enum(
        ["execute", "all"],
        "execute",
        config=True,
        help="Who gets an agent with a shell (Claude Code's Bash): 'execute' = runs of orchestrations started, and "
        "not since continued, by a user with execute permission on kernels or terminals; 'all' = every run.",
    )
    approved_commands_file = Unicode(
        None,
        allow_none=True,
        config=True,
        help="Where digests of commands chosen by users with execute permission are kept (default: "
        "{jupyter runtime dir}/specflow-approved-commands.json). A record naming any other command runs nothing.",
    )
    scan_depth = Int(
        DEFAULT_SCAN_DEPTH,
        min=0,
        max=MAX_SCAN_DEPTH,
        config=True,
        help="How many folder levels below the root to look for projects (folders holding specs/ or .specflow/; a "
        "project's own folders are not searched): what the projects overview lists and what the engine resumes "
        "after a restart (EngineSettings.scan_depth).",
    )
    projects_scan_depth = Int(
        None,
        allow_none=True,
        min=0,
        max=MAX_SCAN_DEPTH,
        config=True,
        help="The former name of scan_depth (setting it sets scan_depth).",
    )
    projects_scan_limit = Int(200, config=True, help="The projects overview lists at most this many projects.")
    activity_refresh_seconds = Float(
        30.0,
        config=True,
        help="While an orchestration is active, count it as server activity this often (seconds; 0 disables): an "
        "agent run can go minutes without a saved change, and JupyterHub's idle culler must not see that as idle.",
    )
    owner_lease_seconds = Float(
        30.0,
        config=True,
        help="Several hosts, one project: an orchestration owned by an engine on another machine (a shared folder) "
        "is taken over when its owner has not renewed its lease for this long (seconds).",
    )
    owner_renew_seconds = Float(5.0, config=True, help="How often this server renews the leases of what it owns.")
    command_timeout_seconds = Float(
        10.0,
        config=True,
        help="How long a command for an orchestration another host owns waits for that owner to take it (then 409).",
    )
    rescan_seconds = Float(
        30.0,
        config=True,
        help="How often to look for orchestrations other hosts started under the root (to observe them live and "
        "take them over if their owner dies).",
    )
    notify_webhook_url = Unicode(
        "",
        config=True,
        help="A URL that gets a JSON POST (Slack-compatible 'text') when an orchestration this server drives needs "
        "attention, asks questions, is ready to merge, completes or fails. A secret: never served or logged.",
    )
    notify_webhook_events = List(
        Unicode(),
        default_value=["needs_attention", "waiting_input", "waiting_merge", "completed", "failed"],
        config=True,
        help="Which notifications the webhook gets.",
    )
    # ---- the estimate before start (README "Configuration"; specflow_nb.estimate)
    estimate_seconds_per_task = Float(
        120.0,
        min=0.0,
        max=86_400.0,
        config=True,
        help="The Start form's estimate while a project has no completed batch yet: seconds one task takes "
        "(afterwards the median of the project's past batches is used).",
    )
    estimate_usd_per_task = Float(
        0.15,
        min=0.0,
        max=1000.0,
        config=True,
        help="The same for the cost: USD one task costs while a project has no past batches.",
    )
    estimate_step_seconds = Dict(
        key_trait=Enum(["design", "analyze", "verify", "merge"]),
        value_trait=Float(min=0.0, max=604_800.0),
        config=True,
        help="Seconds each step's run takes while the project has no past run of it, e.g. {'design': 900}; a step "
        "left out keeps its default (design 600, analyze 180, verify 300, merge by an agent 120).",
    )
    estimate_step_usd = Dict(
        key_trait=Enum(["design", "analyze", "verify", "merge"]),
        value_trait=Float(min=0.0, max=10_000.0),
        config=True,
        help="USD each step's run costs while the project has no past run of it; a step left out keeps its "
        "default (design 1.0, analyze 0.3, verify 0.5, merge by an agent 0.2).",
    )
    # A dotted name: a configured one is imported and checked against the Engine Protocol as the settings are read
    # (the server refuses to start with a TraitError naming what is missing); the engine is built on first use.
    orchestrator_class = DottedObjectName(
        "specflow_nb.orchestrator.Orchestrator",
        config=True,
        help="The engine class (pluggable like jupyter-scheduler's scheduler_class): built as cls(root=..., "
        "settings=...), it must have every member of specflow_nb.engine.Engine (docs/engine-api.md).",
    )

    _orchestrator: Engine | None = None
    _loop_running: bool = False
    _activity_timer: Any = None
    _unsubscribe_webhook: Any = None

    @default("agent_env")
    def _default_agent_env(self) -> dict[str, str]:
        return {}

    @observe("projects_scan_depth")
    def _alias_scan_depth(self, change: Any) -> None:
        if change["new"] is not None:
            self.scan_depth = change["new"]

    @validate("orchestrator_class")
    def _check_orchestrator_class(self, proposal: Any) -> str:
        """A configured engine class must import and have every member of the Engine Protocol."""
        value = str(proposal["value"])
        try:
            engine_class(value)
        except TypeError as exc:
            raise TraitError(f"SpecflowExtension.orchestrator_class: {exc}") from None
        except Exception as exc:  # ImportError, AttributeError, or whatever importing its module raised
            raise TraitError(
                f"SpecflowExtension.orchestrator_class: cannot import {value!r} ({type(exc).__name__}: {exc}). "
                "Name an importable class, e.g. 'specflow_nb.orchestrator.Orchestrator'."
            ) from None
        return value

    @property
    def approved_commands_path(self) -> Path:
        from specflow_nb.policy import default_approvals_path

        return Path(self.approved_commands_file) if self.approved_commands_file else default_approvals_path()

    def initialize_settings(self) -> None:
        """Secrets: every agent_env value is redacted from what specflow_nb writes, serves and logs."""
        from specflow_nb import redact

        redact.register(dict(self.agent_env).values())
        redact.install_log_filter(self.log, getattr(self.serverapp, "log", self.log))

    # -- wiring ------------------------------------------------------------------------------------------------

    @property
    def root_dir(self) -> Path:
        """The server's root dir: every projectId is confined to it."""
        assert self.serverapp is not None
        return Path(self.serverapp.root_dir).expanduser().resolve()

    @property
    def orchestrator(self) -> Engine:
        """The engine, built on first use (the loop starts separately, in the server's start hook)."""
        if self._orchestrator is None:
            from specflow_nb.estimate import DEFAULT_STEP_SECONDS, DEFAULT_STEP_USD
            from specflow_nb.orchestrator import EngineSettings

            settings = EngineSettings(
                agent_command=self.agent_command,
                default_model=self.default_model,
                decision_model=self.decision_model,
                stale_after_seconds=self.stale_after_seconds,
                max_concurrent=self.max_concurrent_orchestrations,
                agent_env=dict(self.agent_env),
                host_kind="server",
                host_url=self._server_url(),
                lease_seconds=self.owner_lease_seconds,
                renew_seconds=self.owner_renew_seconds,
                command_timeout_seconds=self.command_timeout_seconds,
                rescan_seconds=self.rescan_seconds,
                scan_depth=self.scan_depth,
                default_agent=self.default_agent,
                allowed_agents=list(self.allowed_agents) if self.allowed_agents is not None else None,
                codex_command=self.codex_command,
                codex_prices=dict(self.codex_prices) if self.codex_prices is not None else None,
                codex_args=list(self.codex_args),
                trust_requests=False,  # requests come from users who may not run code: specflow_nb.policy
                approved_commands_file=self.approved_commands_path,
                verify_command=self.verify_command,
                verify_commands=dict(self.verify_commands),
                agent_commands=dict(self.agent_commands),
                allowed_models=list(self.allowed_models),
                env_allow=list(self.env_allow),
                shell_for=self.shell_for,
                estimate_seconds_per_task=self.estimate_seconds_per_task,
                estimate_usd_per_task=self.estimate_usd_per_task,
                estimate_step_seconds={**DEFAULT_STEP_SECONDS, **dict(self.estimate_step_seconds)},
                estimate_step_usd={**DEFAULT_STEP_USD, **dict(self.estimate_step_usd)},
            )
            orch = engine_class(self.orchestrator_class)(root=self.root_dir, settings=settings)
            from specflow_nb import redact

            redact.install_log_filter(self.log)  # the engine's module loggers exist now
            orch.subscribe(self._on_change)
            self._orchestrator = orch
        return self._orchestrator

    def _server_url(self) -> str | None:
        """This server's URL for owner records (other hosts name it in messages); never carries the token."""
        try:
            url = str(self.serverapp.connection_url) if self.serverapp is not None else None
        except Exception:  # not yet bound to a port
            return None
        return url.split("?")[0] if url else None

    def initialize_handlers(self) -> None:
        from specflow_nb.server.handlers import handler_routes

        self.handlers.extend(handler_routes())

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        """Called by the server once its event loop runs (``ServerApp._post_start``)."""
        await self.start_loop()

    async def start_loop(self) -> None:
        """Start the engine's loop: it reconciles every orchestration under the root (adopts live agent runs)."""
        if self._loop_running:
            return
        await self.orchestrator.start_loop()
        self._loop_running = True
        if self.notify_webhook_url and self._unsubscribe_webhook is None:
            from specflow_nb.webhook import Webhook

            # Only the owning engine emits notifications, so a team hears of each event once, whoever observes.
            hook = Webhook(self.notify_webhook_url, events=self.notify_webhook_events)
            self._unsubscribe_webhook = hook.attach(self.orchestrator)
        if self.activity_refresh_seconds > 0 and self._activity_timer is None:
            from tornado.ioloop import PeriodicCallback

            self._activity_timer = PeriodicCallback(self._refresh_activity, self.activity_refresh_seconds * 1000)
            self._activity_timer.start()
        self.log.info("specflow | orchestration loop started for %s", self.root_dir)

    async def stop_loop(self) -> None:
        """Stop the loop; detached agent runs keep going and the next start adopts them."""
        if not self._loop_running:
            return
        self._loop_running = False
        if self._unsubscribe_webhook is not None:
            self._unsubscribe_webhook()
            self._unsubscribe_webhook = None
        if self._activity_timer is not None:
            self._activity_timer.stop()
            self._activity_timer = None
        await self.orchestrator.stop_loop()
        self.log.info("specflow | orchestration loop stopped")

    async def stop_extension(self) -> None:
        await self.stop_loop()
        from specflow_nb.server import offload

        offload.shutdown()  # the big-preview worker process, if one was started

    # -- idle culling ------------------------------------------------------------------------------------------

    def current_activity(self) -> bool:
        """True while an orchestration runs, so ``shutdown_no_activity`` does not stop a phase in progress."""
        return self._orchestrator is not None and bool(self._orchestrator.active())

    def _on_change(self, execution: OrchestrationExecution) -> None:
        self._touch()

    def _refresh_activity(self) -> None:
        # A batch run may save nothing for many minutes; while one is active the server is busy, not idle.
        if self.current_activity():
            self._touch()

    def _touch(self) -> None:
        # Settings ending in "_last_activity" feed ServerApp.last_activity() (the /api/status "last_activity"
        # that a JupyterHub single-user server posts to the hub for the idle culler), so a phase counts as activity.
        if self.serverapp is not None and getattr(self.serverapp, "web_app", None) is not None:
            self.serverapp.web_app.settings["specflow_last_activity"] = utcnow()


def engine_class(dotted: str) -> Callable[..., Engine]:
    """The engine class a dotted name names, checked against the Engine Protocol (TypeError naming what it lacks)."""
    cls: Callable[..., Engine] = check_engine_class(import_item(dotted))
    return cls
