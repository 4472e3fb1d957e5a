"""LLM settings: default chain, keys from env, left-out providers, startup errors, env JSON and YAML."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from agent.llm import LLMSettings, NoUsableLLMProvider, ProviderConfig
from agent.llm.chain import usable_providers

KEY_VARS = ("OPENROUTER_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "ANTHROPIC_API_KEY")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for var in (*KEY_VARS, "SALES_AGENT_LLM_CHAIN", "SALES_AGENT_LLM_CONFIG", "SALES_AGENT_LLM_COOLDOWN_S"):
        monkeypatch.delenv(var, raising=False)


def test_default_chain_order_and_models():
    settings = LLMSettings.load()
    assert [(p.name, p.litellm_model) for p in settings.chain] == [
        ("openrouter", "openrouter/openai/gpt-4o-mini"),
        ("openai", "openai/gpt-4o-mini"),
        ("gemini", "gemini/gemini-2.5-flash"),
        ("anthropic", "anthropic/claude-haiku-4-5"),
    ]
    assert settings.first_token_deadline_s <= 2.0


def test_missing_keys_are_left_out_with_one_log_line_each(monkeypatch, caplog):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    monkeypatch.setenv("GOOGLE_API_KEY", "g-secret")
    with caplog.at_level(logging.INFO, logger="agent.llm.chain"):
        providers = usable_providers(LLMSettings.load())
    assert [p.name for p in providers] == ["openai", "gemini"]
    assert [p.position for p in providers] == [0, 1]
    left_out = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(left_out) == 2
    assert "openrouter" in left_out[0] and "OPENROUTER_API_KEY" in left_out[0]
    assert "anthropic" in left_out[1] and "ANTHROPIC_API_KEY" in left_out[1]
    assert all("secret" not in r.getMessage() for r in caplog.records)


def test_no_usable_provider_is_a_clear_startup_error():
    with pytest.raises(NoUsableLLMProvider, match="lacks its API key"):
        usable_providers(LLMSettings.load())


def test_chain_from_env_json(monkeypatch):
    chain = [
        {"name": "primary", "kind": "local", "model": "m1", "api_base": "http://127.0.0.1:8081/v1"},
        {"name": "backup", "kind": "local", "model": "m2", "api_base": "http://127.0.0.1:8082/v1"},
    ]
    monkeypatch.setenv("SALES_AGENT_LLM_CHAIN", json.dumps(chain))
    monkeypatch.setenv("SALES_AGENT_LLM_COOLDOWN_S", "12.5")
    settings = LLMSettings.load()
    assert [p.name for p in usable_providers(settings)] == ["primary", "backup"]
    assert settings.cooldown_s == 12.5


def test_yaml_file_with_env_override(monkeypatch, tmp_path):
    path = tmp_path / "llm.yaml"
    path.write_text(
        "first_token_deadline_s: 1.5\n"
        "allowed_fails: 4\n"
        "chain:\n"
        "  - {name: local1, kind: local, model: tiny, api_base: 'http://127.0.0.1:9000/v1'}\n"
        "  - {name: oa, kind: openai, model: gpt-4o-mini}\n"
    )
    monkeypatch.setenv("SALES_AGENT_LLM_CONFIG", str(path))
    monkeypatch.setenv("SALES_AGENT_LLM_COOLDOWN_S", "7")
    settings = LLMSettings.load()
    assert [p.name for p in settings.chain] == ["local1", "oa"]
    assert (settings.first_token_deadline_s, settings.allowed_fails, settings.cooldown_s) == (1.5, 4, 7.0)
    # The worker's aggregate settings read the same file (not just the env).
    from agent.app_settings import AppSettings

    assert [p.name for p in AppSettings.from_env().llm.chain] == ["local1", "oa"]


def test_bad_config_is_rejected_specifically(tmp_path):
    with pytest.raises(ValidationError, match="needs api_base"):
        ProviderConfig(name="x", kind="local", model="m")
    with pytest.raises(ValidationError, match="unique"):
        LLMSettings(chain=[ProviderConfig(name="a", kind="openai", model="m")] * 2)
    with pytest.raises(ValidationError, match="empty"):
        LLMSettings(chain=[])
    from agent.llm import LLMConfigError

    with pytest.raises(LLMConfigError, match="does not exist"):
        LLMSettings.load(config=tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("chain: [unclosed\n")
    with pytest.raises(LLMConfigError, match="not valid YAML"):
        LLMSettings.load(config=broken)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("chain: []\n")
    with pytest.raises(LLMConfigError, match=r"wrong\.yaml: invalid LLM settings"):
        LLMSettings.load(config=wrong)


def test_api_key_override_variable(monkeypatch):
    monkeypatch.setenv("MY_GATEWAY_KEY", "sk-gateway-secret")
    chain = [{"name": "gw", "kind": "openai", "model": "m", "api_key_env": "MY_GATEWAY_KEY"}]
    monkeypatch.setenv("SALES_AGENT_LLM_CHAIN", json.dumps(chain))
    [config] = LLMSettings.load().chain
    assert config.key() is not None and config.key().get_secret_value() == "sk-gateway-secret"
    assert "sk-gateway-secret" not in repr(config) + config.model_dump_json()


def test_a_redis_url_shares_the_cooldowns_and_a_malformed_one_is_a_clear_error():
    from pydantic import ValidationError

    from agent.llm import build_llm
    from agent.resilience.shared_cooldowns import SharedCooldowns

    with pytest.raises(ValidationError, match="SALES_AGENT_LLM_REDIS_URL must be a redis://"):
        LLMSettings.for_local(["http://127.0.0.1:1/v1"], redis_url="127.0.0.1:6379")
    settings = LLMSettings.for_local(["http://127.0.0.1:1/v1"], redis_url="redis://:pw@127.0.0.1:6379/0")
    chain = build_llm(settings).chain
    assert isinstance(chain.cooldowns, SharedCooldowns)
    assert chain.cooldowns.url == "redis://127.0.0.1:6379/0"  # shown without its password
    assert "pw" not in repr(settings)
