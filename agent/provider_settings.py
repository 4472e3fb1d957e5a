"""What every provider chain's settings share (LLM, STT, TTS): keys, the chain variable, the YAML file.

Each chain area is one pydantic-settings class with a ``config`` field (its YAML file) and a ``chain``
of providers. Sources, later ones winning: defaults < the YAML file < the environment; then each
provider's API key is read from its kind's standard variable (or the one named by ``api_key_env``) into
a ``SecretStr``. Keys are never taken from the chain JSON or the YAML file and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

import yaml
from pydantic import BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings

from telemetry.config_errors import ConfigError, decode_json, describe_validation

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


class KeyedProvider(BaseModel):
    """A chain link whose key is read once from the environment (``with_key_from``)."""

    # kind -> the variables holding its key, first set wins (empty: the kind needs no key).
    key_env_vars: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    kind: str
    api_key_env: str | None = None  # read the key from this variable instead of the kind's default
    # Filled from the environment by the area's ``load`` (``api_key_env`` or the kind's variable).
    api_key: SecretStr | None = Field(default=None, exclude=True)

    def key(self) -> SecretStr | None:
        """The key to send; ``local`` needs none (a placeholder is sent unless ``api_key_env`` is set)."""
        if self.kind == "local" and not self.api_key_env:
            return SecretStr("local-no-key")
        return self.api_key

    def key_env_names(self) -> tuple[str, ...]:
        return (self.api_key_env,) if self.api_key_env else tuple(self.key_env_vars[self.kind])

    def with_key_from(self, environ: Mapping[str, str]) -> Self:
        """A copy holding the key from the first of ``key_env_names()`` set in ``environ``."""
        if self.api_key is not None:
            return self
        for var in self.key_env_names():
            if environ.get(var):
                return self.model_copy(update={"api_key": SecretStr(environ[var])})
        return self


def decode_chain(chain: Any, example: str) -> Any:
    """A chain from the environment is JSON; no link may carry its key there."""
    chain = decode_json(chain, f"a list of providers, e.g. {example}")
    for item in chain if isinstance(chain, list) else ():
        if isinstance(item, Mapping) and "api_key" in item:
            raise ValueError(
                "a provider cannot carry its api_key here: keys are read from the environment "
                "(the kind's variable, or the one named by api_key_env)"
            )
    return chain


def with_keys_from(settings: Any, environ: Mapping[str, str]) -> Any:
    """A copy of a chain area whose providers hold their API keys read from ``environ``.

    Built with ``model_construct`` (the values are validated already) so that the copy still knows
    which fields were configured: ``model_copy(update=...)`` would count the chain as set.
    """
    values = {**dict(settings), "chain": [p.with_key_from(environ) for p in settings.chain]}
    return type(settings).model_construct(_fields_set=set(settings.model_fields_set), **values)


def load_chain_settings(
    cls: type[SettingsT],
    *,
    what: str,
    error: Callable[[str], ConfigError],
    environ: Mapping[str, str] | None,
    overrides: Mapping[str, Any],
) -> SettingsT:
    """Defaults, then the YAML file (``<prefix>CONFIG`` or ``config=``), then env; then the keys.

    A bad YAML file raises ``error(message)`` naming the variable, the file and the field; a bad
    variable raises pydantic's ``ValidationError`` (``AppSettings.from_env`` names the variable).
    """
    environ = os.environ if environ is None else environ
    env_settings = cls(**overrides)
    path: Path | None = getattr(env_settings, "config", None)
    if path is None:
        return with_keys_from(env_settings, environ)
    variable = f"{cls.model_config.get('env_prefix', '')}CONFIG={path}"
    file_values = _read_yaml(path, variable, what, error)
    explicit = {k: getattr(env_settings, k) for k in env_settings.model_fields_set}  # env or overrides
    try:
        merged = cls.model_validate({**file_values, **explicit})
    except ValidationError as exc:
        raise error(f"{variable}: invalid {what} settings: {describe_validation(exc)}") from None
    return with_keys_from(merged, environ)


def _read_yaml(path: Path, variable: str, what: str, error: Callable[[str], ConfigError]) -> dict[str, Any]:
    if not path.is_file():
        state = "is a directory" if path.is_dir() else "does not exist"
        raise error(f"{variable}: the file {state}; expected a YAML file of {what} settings")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{variable}: cannot read the file: {exc}") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{variable}: not valid YAML{at}: {problem}") from None
    if not isinstance(loaded, dict):
        raise error(f"{variable}: expected a mapping of {what} settings at the top level")
    return loaded
