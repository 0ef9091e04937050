"""Secrets never leave the server: the environment runs get, and ``***`` in everything specflow_nb writes or serves.

ARCHITECTURE.md ("What a grant may do"): reading or controlling orchestrations never reveals the server's secrets.

* **Environments from an allow-list.** A verify command gets :data:`BASE_ALLOW` (PATH, HOME, locale, ``SPECFLOW_*``
  …) plus the names a server setting adds (``SpecflowExtension.env_allow``); an agent run gets that plus its own
  family's variables (:data:`AGENT_FAMILIES`: ``ANTHROPIC_*``/``CLAUDE_*`` for Claude Code, ``OPENAI_*``/``CODEX_*``
  for Codex, the proxy and CA settings) and the server's ``agent_env``. Nothing else of the server's environment.
* **Redaction.** Values of 8 or more characters of secret-looking variables (names containing KEY, TOKEN, SECRET,
  PASSWORD, CREDENTIAL) in the server's environment, and every value of ``agent_env`` (:func:`register`), are
  replaced by ``***`` (:func:`redact`) in the state file, the verify command's saved output (and so the decision
  log and recovery context), every REST response and the server's log (:class:`RedactingFilter`).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "***"
#: Shorter values are not redacted (they would mask ordinary words such as "true" or "1").
MIN_SECRET_LENGTH = 8
#: Registered values (agent_env) shorter than this are not redacted.
MIN_REGISTERED_LENGTH = 4
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)

#: What every command specflow_nb starts may see of the server's environment (exact names, or prefixes ending in *).
BASE_ALLOW: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LC_*",
    "TERM",
    "TMPDIR",
    "TZ",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "CONDA_DEFAULT_ENV",
    "SPECFLOW_*",
    # how Python tools behave (unbuffered output, encoding, import path): never secrets
    "PYTHONPATH",
    "PYTHONUNBUFFERED",
    "PYTHONIOENCODING",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUTF8",
    "NO_COLOR",
    # who commits (an agent's `git commit`): names and addresses, never credentials
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_NOSYSTEM",
)
#: Network settings every agent needs (a proxy, a company CA).
AGENT_NETWORK: tuple[str, ...] = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
)
#: Each agent's own variables (its API key and configuration).
AGENT_FAMILIES: dict[str, tuple[str, ...]] = {
    "claude": ("ANTHROPIC_*", "CLAUDE_*", "CLAUDECODE", "AWS_*", "CLOUD_ML_REGION", "GOOGLE_APPLICATION_CREDENTIALS"),
    "codex": ("OPENAI_*", "CODEX_*", "AZURE_OPENAI_*"),
}


def _matches(name: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith("*"):
            if name.startswith(pattern[:-1]):
                return True
        elif name == pattern:
            return True
    return False


def allowed_environment(patterns: Iterable[str], *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables of ``environ`` (default: the server's) whose names match ``patterns``."""
    pats = tuple(patterns)
    if environ is None:  # the server's: filtered once per change of the environment (every spawn asks)
        snapshot = _environ()
        key = (pats, snapshot)
        with _lock:
            found = _allowed_cache.get(key)
        if found is None:
            found = {k: v for k, v in snapshot.items() if _matches(k, pats)}
            with _lock:
                for stale in [k for k in _allowed_cache if k[1] is not snapshot]:
                    del _allowed_cache[stale]  # one environment at a time: earlier snapshots' entries go
                _allowed_cache[key] = found
        return dict(found)
    return {k: v for k, v in environ.items() if _matches(k, pats)}


class _Snapshot(dict[str, str]):
    """The server's environment at one moment (compared by identity: a new object whenever it changes)."""

    __hash__ = object.__hash__  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return self is other


_environ_raw: tuple[Any, ...] | None = None
_environ_snapshot: _Snapshot = _Snapshot()
_allowed_cache: dict[tuple[tuple[str, ...], _Snapshot], dict[str, str]] = {}


def _environ() -> _Snapshot:
    """``os.environ`` as a dict, decoded again only when it changed: on POSIX its raw bytes mapping is compared
    (a few microseconds), not decoded variable by variable on every spawn and every save."""
    global _environ_raw, _environ_snapshot
    raw_data = getattr(os.environ, "_data", None)
    raw = tuple(raw_data.items()) if isinstance(raw_data, dict) else tuple(os.environ.items())
    with _lock:
        if raw == _environ_raw:
            return _environ_snapshot
    snapshot = _Snapshot(os.environ)
    with _lock:
        _environ_raw, _environ_snapshot = raw, snapshot
    return snapshot


def verify_environment(extra: Iterable[str] = (), *, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a verify command: :data:`BASE_ALLOW` plus the names the server adds."""
    return allowed_environment((*BASE_ALLOW, *extra), environ=environ)


def agent_environment(
    agent: str,
    agent_env: Mapping[str, str] | None = None,
    extra: Iterable[str] = (),
    *,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment of an agent run: the verify allow-list, the agent's family, and ``agent_env``."""
    family = AGENT_FAMILIES.get(agent, AGENT_FAMILIES["claude"])
    env = allowed_environment((*BASE_ALLOW, *AGENT_NETWORK, *family, *extra), environ=environ)
    env.update(agent_env or {})
    return env


# ---- redaction --------------------------------------------------------------------------------------------------

_NOTHING = r"(?!x)x"
_lock = threading.Lock()
_registered: set[str] = set()
_pattern: re.Pattern[str] | None = None
_env_secrets: tuple[tuple[str, str], ...] | None = None  # the secret-named variables the pattern holds
_pattern_env: object = None  # the environment snapshot the pattern was last checked against


def secret_values(environ: Mapping[str, str] | None = None) -> set[str]:
    """Values of the secret-looking variables of ``environ`` (default: the server's), 8 characters or more."""
    source = os.environ if environ is None else environ
    return {v for k, v in source.items() if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH}


def _maskable(value: Any) -> bool:
    """Worth masking: not empty, not a number or a flag ("0.05", "1", "true" would mask ordinary text)."""
    if not isinstance(value, str) or len(value.strip()) < MIN_REGISTERED_LENGTH:
        return False
    if value.strip().lower() in ("true", "false", "yes", "no", "on", "off", "none", "null"):
        return False
    try:
        float(value)
    except ValueError:
        return True
    return False


def register(values: Iterable[str]) -> None:
    """Redact these values from now on: every ``agent_env`` value, whatever its name (except numbers and flags,
    and values under 4 characters, which are no secrets and would mask ordinary text)."""
    global _pattern
    new = {v for v in values if _maskable(v)}
    with _lock:
        if not new - _registered:
            return
        _registered.update(new)
        _pattern = None


def _current_pattern() -> re.Pattern[str] | None:
    global _pattern, _env_secrets, _pattern_env
    environ = _environ()
    with _lock:
        if _pattern is not None and _pattern_env is environ:
            return _pattern  # same environment, nothing registered since
    snapshot = tuple(sorted((k, v) for k, v in environ.items() if SECRET_NAME.search(k)))
    with _lock:
        if _pattern is None or snapshot != _env_secrets:
            values = secret_values(dict(snapshot)) | _registered
            _env_secrets = snapshot
            # longest first: a secret that contains another is masked whole
            ordered = sorted(values, key=len, reverse=True)
            _pattern = re.compile("|".join(re.escape(v) for v in ordered) if ordered else _NOTHING)
        _pattern_env = environ
        return _pattern


def redact(text: str) -> str:
    """``text`` with every known secret replaced by ``***``."""
    if not text:
        return text
    pattern = _current_pattern()
    return pattern.sub(MASK, text) if pattern is not None else text


def redact_data(value: Any) -> Any:
    """``redact`` applied to every string of a JSON-like value (dict keys included); numbers are left alone."""
    pattern = _current_pattern()
    if pattern is None or pattern.pattern == _NOTHING:
        return value

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return pattern.sub(MASK, item) if item else item
        if isinstance(item, dict):
            return {walk(k): walk(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [walk(v) for v in item]
        return item

    return walk(value)


def redact_json(text: str, *, indent: int | None = None) -> str:
    """JSON text with every secret inside its strings masked (the JSON stays valid; numbers are never touched)."""
    import json

    pattern = _current_pattern()
    if pattern is None or pattern.pattern == _NOTHING or not pattern.search(text):
        return text
    return json.dumps(redact_data(json.loads(text)), ensure_ascii=False, indent=indent)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets in a record's message (its arguments merged first)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler
            return True
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


#: Loggers whose records may carry request text or run output: filtered at the logger, so every handler (and
#: every handler added later) sees the masked record.
LOGGERS: tuple[str, ...] = ("tornado.access", "tornado.application", "tornado.general", "specflow_nb")


def install_log_filter(*loggers: logging.Logger | logging.LoggerAdapter[Any]) -> None:
    """Mask secrets in the server's log: a :class:`RedactingFilter` on ``loggers`` and :data:`LOGGERS` themselves
    (and every specflow_nb module logger that exists), and on every handler of them and of the root logger."""
    targets: list[logging.Logger] = [lg.logger if isinstance(lg, logging.LoggerAdapter) else lg for lg in loggers]
    targets += [logging.getLogger(name) for name in LOGGERS]
    targets += [
        lg
        for name, lg in list(logging.root.manager.loggerDict.items())
        if name.startswith("specflow_nb.") and isinstance(lg, logging.Logger)
    ]
    for lg in (*targets, logging.getLogger()):
        for owner in (lg, *lg.handlers):
            if not any(isinstance(f, RedactingFilter) for f in owner.filters):
                owner.addFilter(RedactingFilter())
