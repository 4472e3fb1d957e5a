"""Problems an operator has to fix before a process can start, as one line that names the culprit.

A bad environment variable, an unusable file or a port that is already taken all end the same way:
``ConfigError`` with a message naming the variable/file/port and what was expected; every entry point
runs through ``run_main``, which prints it as one line on stderr and exits with status 2 (the exit
status argparse uses for bad arguments), never with a traceback.

It lives in ``telemetry/`` because that is the one package every process of this repository (the
agent, the local services, the benchmarks) already depends on; it knows nothing of the agent.
"""

from __future__ import annotations

import errno
import json
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # pydantic is imported where it is used: run_main is on every command's first line
    from pydantic import ValidationError
    from pydantic_settings import BaseSettings

EXIT_CONFIG_ERROR = 2
SettingsT = TypeVar("SettingsT", bound="BaseSettings")


class ConfigError(ValueError):
    """The process cannot start with this configuration; the message says what to fix."""


def env_name(settings_cls: type[BaseSettings], field: str) -> str:
    """The environment variable that sets ``field`` of ``settings_cls`` (its alias, else prefix + name)."""
    info = settings_cls.model_fields[field]
    alias = info.validation_alias or info.alias
    if isinstance(alias, str):
        return alias
    choices = getattr(alias, "choices", None)  # AliasChoices: the first one is the current name
    if choices and isinstance(choices[0], str):
        return choices[0]
    prefix = str(settings_cls.model_config.get("env_prefix") or "")
    return f"{prefix}{field}".upper()


def _field_for(settings_cls: type[BaseSettings], loc0: str) -> str | None:
    if loc0 in settings_cls.model_fields:
        return loc0
    for name, info in settings_cls.model_fields.items():
        alias = info.validation_alias or info.alias
        names = [alias] if isinstance(alias, str) else list(getattr(alias, "choices", None) or [])
        if loc0 in names:
            return name
    return None


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return repr(text[:60] + "..." if len(text) > 60 else text)


def settings_error(exc: ValidationError, settings_cls: type[BaseSettings]) -> ConfigError:
    """One line per invalid value, each starting with the variable's name; secrets are never echoed."""
    problems = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"]]
        field = _field_for(settings_cls, loc[0]) if loc else None
        variable = env_name(settings_cls, field) if field else (loc[0] if loc else settings_cls.__name__)
        secret = field is not None and _is_secret(settings_cls, field)
        problems.append(f"{variable}: {_describe(error, loc[1:], show_input=not secret)}")
    return ConfigError("; ".join(problems))


def describe_validation(exc: ValidationError) -> str:
    """A pydantic error as one line: ``where: what (got value)`` per problem."""
    return "; ".join(_describe(e, [str(p) for p in e["loc"]]) for e in exc.errors(include_url=False))


def _describe(error: Any, where: list[str], *, show_input: bool = True) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    got = f" (got {_shown(error.get('input'))})" if show_input and error["type"] != "missing" else ""
    return f"{'.'.join(where) + ': ' if where else ''}{message}{got}"


def _is_secret(settings_cls: type[BaseSettings], field: str) -> bool:
    from pydantic import SecretStr

    return SecretStr.__name__ in repr(settings_cls.model_fields[field].annotation)


def load_settings(settings_cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """``settings_cls`` from the environment (for entry points), a bad value raised as ``ConfigError``."""
    from pydantic import ValidationError

    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        raise settings_error(exc, settings_cls) from None


def decode_json(value: Any, expected: str) -> Any:
    """For ``NoDecode`` fields: parse a JSON string from the environment with a message saying so."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"expected JSON ({expected}), but it is not valid JSON: {exc}") from None


def listen_error(exc: OSError, host: str, port: int, setting: str) -> ConfigError:
    """A failed bind as a startup error naming the setting that chose the port."""
    if exc.errno == errno.EADDRINUSE:
        reason = "the port is already in use"
    elif exc.errno == errno.EACCES:
        reason = "permission denied (ports below 1024 need privileges)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        reason = "the address is not one of this machine's"
    else:
        reason = exc.strerror or str(exc)
    return ConfigError(f"{setting}: cannot listen on {host}:{port}: {reason}; expected a free port")


def bind_listener(host: str, port: int, setting: str) -> socket.socket:
    """A listening TCP socket, bound now so a taken port fails at start, served later (aiohttp SockSite)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"{setting}: cannot resolve host {host!r}: {exc.strerror}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what aiohttp's TCPSite does
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise listen_error(exc, host, port, setting) from None
    sock.setblocking(False)
    return sock


def run_main(prog: str, main: Callable[[], int | None]) -> int:
    """Run an entry point: a ``ConfigError`` becomes one line on stderr and exit status 2."""
    try:
        return main() or 0
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG_ERROR
