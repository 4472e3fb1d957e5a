"""Read the compose stack's files the way Docker Compose would, for tests that run without Docker.

Docker cannot run on the development machines, so tests/*/test_compose_*.py and tests/*/test_stack_*.py
check the stack by reading it: this module loads docker-compose.yml with Compose's variable
interpolation (``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``, ``${VAR:?error}``, ``${VAR?error}``,
``${VAR:+alt}``, ``$VAR``, ``$$``) applied to values after YAML parsing, as Compose does, and parses
``host:port`` endpoints. Hand-written because no maintained Python library implements Compose's
interpolation (docker-compose v1 did, and is unmaintained).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DEPLOY = REPO / "deploy"

_REFERENCE = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:-|-|:\?|\?|:\+|\+)(?P<arg>.*))?$", re.DOTALL
)


class InterpolationError(ValueError):
    """A ``${VAR:?message}`` whose variable is unset or empty, or a malformed reference."""


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines as Compose reads ``.env`` (comments and blank lines skipped, quotes removed)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
            raise ValueError(f"{path}:{number}: expected KEY=VALUE, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Substitute Compose variable references in one string value."""

    def substitute(match: re.Match[str]) -> str:
        if match.group("escaped"):
            return "$"
        if match.group("plain"):
            return env.get(match.group("plain"), "")
        braced = _BRACED.match(match.group("braced"))
        if braced is None:
            raise InterpolationError(f"malformed variable reference {match.group(0)!r}")
        name, op, arg = braced.group("name", "op", "arg")
        value = env.get(name)
        is_set, non_empty = value is not None, bool(value)
        if op is None:
            return value or ""
        if op == ":-":
            return value if non_empty else arg  # type: ignore[return-value]
        if op == "-":
            return value if is_set else arg  # type: ignore[return-value]
        if op in (":?", "?"):
            if (op == ":?" and not non_empty) or (op == "?" and not is_set):
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return value  # type: ignore[return-value]
        if op == ":+":
            return arg if non_empty else ""
        return arg if is_set else ""  # "+"

    return _REFERENCE.sub(substitute, text)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """Interpolate every string value (not keys) of a parsed YAML document."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def variables_referenced(text: str) -> set[str]:
    """Names of the variables a file's text refers to (``$$`` escapes excluded)."""
    names: set[str] = set()
    for match in _REFERENCE.finditer(text):
        if match.group("plain"):
            names.add(match.group("plain"))
        elif match.group("braced") is not None:
            braced = _BRACED.match(match.group("braced"))
            if braced:
                names.add(braced.group("name"))
    return names


def load_compose(env: Mapping[str, str]) -> dict[str, Any]:
    """docker-compose.yml parsed (YAML anchors and merge keys resolved) and interpolated with ``env``."""
    return interpolate_tree(yaml.safe_load(COMPOSE_FILE.read_text()), env)


def example_env(**overrides: str) -> dict[str, str]:
    """The values of .env.example, as a user who copied it would have them, plus ``overrides``."""
    return {**read_env_file(ENV_EXAMPLE), **overrides}


def endpoint(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``http://host:port/path``, ``host:port`` or ``dns:///host:port``."""
    parts = urlsplit(address if "//" in address else f"tcp://{address}")
    host = parts.hostname or (parts.path.lstrip("/").rsplit(":", 1)[0] if parts.path else "")
    port = parts.port
    if port is None and parts.path:  # dns:///host:port keeps the address in the path
        _, _, tail = parts.path.lstrip("/").rpartition(":")
        port = int(tail) if tail.isdigit() else None
    if port is None:
        default = {"http": 80, "https": 443}.get(parts.scheme)
        if default is None:
            raise ValueError(f"no port in endpoint {address!r}")
        port = default
    if not host:
        raise ValueError(f"no host in endpoint {address!r}")
    return host, port
