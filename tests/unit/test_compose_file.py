"""docker-compose.yml is valid, pinned, self-contained and documented — checked without a Docker engine."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import re
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

_spec = importlib.util.spec_from_file_location(
    "stackcheck", Path(__file__).parents[2] / "deploy/stackcheck.py"
)
stackcheck = importlib.util.module_from_spec(_spec)
sys.modules["stackcheck"] = stackcheck
_spec.loader.exec_module(stackcheck)

REPO = stackcheck.REPO
TEST_PASSWORD = "test-only-password"


@pytest.fixture(scope="module")
def compose() -> dict:
    return stackcheck.load_compose(stackcheck.example_env(GRAFANA_ADMIN_PASSWORD=TEST_PASSWORD))


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def compose_spec_schema() -> dict:
    """The Compose Specification's JSON schema, as vendored by check-jsonschema (a dev dependency).

    Source: compose-spec/compose-spec schema/compose-spec.json, shipped in check_jsonschema's
    builtin_schemas/vendor (its license file sits beside it).
    """
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(schema_file.read_text())


def test_compose_file_is_valid_against_the_compose_specification(compose):
    schema = compose_spec_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    errors = sorted(validator_class(schema).iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_schema_validation_would_catch_a_broken_file(compose):
    """Guard against a vacuous schema check: an unknown service key must be rejected."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["grafana"]["imagee"] = "typo"
    schema = compose_spec_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert any("imagee" in error.message for error in validator.iter_errors(broken))


def test_grafana_starts_without_a_password_read_only_and_never_as_admin_admin():
    services = stackcheck.load_compose(stackcheck.example_env(GRAFANA_ADMIN_PASSWORD=""))["services"]
    grafana = services["grafana"]
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true" and env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == ""  # unset: the entrypoint below takes over
    script = " ".join(grafana["command"])
    # An empty password never reaches Grafana (whose default would be admin/admin): a random one does,
    # and the login form is hidden; with a password set, the script leaves it alone.
    assert 'if [ -z "$GF_SECURITY_ADMIN_PASSWORD" ]' in script and "/dev/urandom" in script
    assert "GF_AUTH_DISABLE_LOGIN_FORM=true" in script and script.rstrip().endswith("exec /run.sh")
    assert grafana["entrypoint"] == ["/bin/sh", "-c"]
    set_password = stackcheck.load_compose(stackcheck.example_env(GRAFANA_ADMIN_PASSWORD="s3cret"))
    assert set_password["services"]["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "s3cret"
    text = stackcheck.COMPOSE_FILE.read_text()
    assert not re.search(r"ADMIN_PASSWORD\s*[:=]\s*[\"']?admin\b", text)
    assert stackcheck.read_env_file(stackcheck.ENV_EXAMPLE)["GRAFANA_ADMIN_PASSWORD"] == ""


def test_grafana_does_not_wait_for_alertmanager_to_be_healthy(services):
    # An Alertmanager that refuses its configuration never gets healthy; Grafana must start anyway.
    assert services["grafana"]["depends_on"]["alertmanager"]["condition"] == "service_started"


def test_every_image_is_pinned_to_a_version_tag(services):
    for name, service in services.items():
        image = service.get("image")
        assert image, f"service {name} has no image (a build needs an image name too, so services share it)"
        if "build" in service:
            assert image == "sales-agent-observability:local", f"{name}: built image must use the shared name"
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} uses latest"
        # PostgreSQL's releases are major.minor (16.6); everything else here is major.minor.patch.
        release = r"\d+\.\d+" if repository == "postgres" else r"v?\d+\.\d+\.\d+"
        assert re.fullmatch(rf"{release}(-[a-z0-9.]+)?", tag), f"{name}: {image!r} is not a release tag"


def test_build_contexts_and_bind_mounted_paths_exist(services):
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = REPO / build["context"]
            assert context.is_dir(), f"{name}: build context {context} missing"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), f"{name}: Dockerfile missing"
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: mounted path {source} does not exist"


def test_named_volumes_are_declared_and_used(compose, services):
    declared = set(compose.get("volumes", {}))
    used: set[str] = set()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared at the top level"
                used.add(source)
    assert used == declared, f"declared but unused volumes: {declared - used}"
    for data_service, path in [("prometheus", "/prometheus"), ("tempo", "/var/tempo"), ("loki", "/loki"),
                               ("grafana", "/var/lib/grafana"), ("alertmanager", "/alertmanager"),
                               ("crm", "/data")]:  # fmt: skip
        targets = {v.split(":")[1] for v in services[data_service]["volumes"] if not v.startswith((".", "/"))}
        assert path in targets, f"{data_service} keeps its data in a named volume at {path}"


def test_host_ports_bind_to_loopback_only(services):
    for name, service in services.items():
        for mapping in service.get("ports", []):
            assert isinstance(mapping, str), f"{name}: use the short '127.0.0.1:host:container' form"
            assert mapping.startswith("127.0.0.1:"), f"{name}: port {mapping} is published on every interface"


def test_depends_on_names_real_services_with_the_checks_the_condition_needs(services):
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], (
                    f"{name} waits for {dependency}'s health, it has none"
                )
            if condition == "service_completed_successfully":
                assert services[dependency].get("restart") == "no", f"{dependency} is one-shot"
            # A default-profile service must not wait for one that only runs under a profile.
            if not service.get("profiles"):
                assert not services[dependency].get("profiles"), (
                    f"{name} depends on profile-only {dependency}"
                )


def test_every_long_running_service_has_a_healthcheck(services):
    for name, service in services.items():
        if service.get("restart") == "no":
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no healthcheck"
        if test[1] == "/probe/busybox":
            volumes = service.get("volumes", [])
            assert "probe-tools:/probe:ro" in volumes, f"{name} probes with busybox but does not mount it"
            assert services[name]["depends_on"]["init"]["condition"] == "service_completed_successfully"


def test_app_healthcheck_urls_hit_the_port_the_command_serves(services):
    for name, service in services.items():
        if "build" not in service:
            continue
        env = service.get("environment", {})
        host, port = stackcheck.endpoint(env["HEALTHCHECK_URL"])
        assert host == "127.0.0.1"
        argv = service.get("command", [])
        served = {int(argv[i + 1]) for i, arg in enumerate(argv) if arg == "--port"}
        served |= {int(env[var]) for var in ("SALES_AGENT_HEALTH_PORT",) if var in env}
        assert port in served, f"{name}: healthcheck probes :{port}, the process serves {served}"


def test_apps_export_otlp_to_the_collectors_otlp_port(services):
    collector_config = yaml.safe_load((stackcheck.DEPLOY / "otel-collector/config.yaml").read_text())
    protocols = collector_config["receivers"]["otlp"]["protocols"]
    otlp_ports = {"http/protobuf": stackcheck.endpoint(protocols["http"]["endpoint"])[1],
                  "grpc": stackcheck.endpoint(protocols["grpc"]["endpoint"])[1]}  # fmt: skip
    exporting = [
        name for name, s in services.items() if "OTEL_EXPORTER_OTLP_ENDPOINT" in s.get("environment", {})
    ]
    assert {"simulate", "agent", "crm", "llm-primary", "llm-backup"} <= set(exporting)
    for name in exporting:
        env = services[name]["environment"]
        host, port = stackcheck.endpoint(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
        assert host == "otel-collector", f"{name} exports to {host}"
        assert port == otlp_ports[env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")], name
        assert str(port) in services["otel-collector"]["expose"]


def test_the_agent_worker_runs_only_in_the_livekit_profile_next_to_livekit(services):
    assert services["agent"]["profiles"] == ["livekit"]
    assert services["livekit"]["profiles"] == ["livekit"]
    assert services["agent"]["network_mode"] == "service:livekit"
    assert "--dev" in services["livekit"]["command"]
    assert services["agent"]["command"] == ["start"]
    from agent.llm.settings import LLMSettings

    env = services["agent"]["environment"]
    chain = LLMSettings.model_validate({"chain": json.loads(env["SALES_AGENT_LLM_CHAIN"])}).chain
    assert [p.kind for p in chain][-2:] == ["local", "local"], "the local providers end the chain"
    compose_text = stackcheck.COMPOSE_FILE.read_text()
    for provider in chain:
        if provider.kind != "local":  # its key is passed through from .env (empty: left out of the chain)
            key = provider.key_env_names()[0]
            assert key in env and f"{key}: ${{{key}:-}}" in compose_text, f"{provider.name}: {key} not passed"


def test_the_scale_profile_runs_replicas_on_one_redis_and_one_postgres(services):
    """`--profile scale`: several replicas of the agent share the LLM cooldowns (Redis) and the CRM
    outbox (PostgreSQL), both in the profile, reachable by service name, without host ports."""
    from agent.crm.settings import CrmSettings
    from agent.llm.settings import LLMSettings

    workers = services["workers"]
    assert workers["profiles"] == ["scale"] and int(workers["deploy"]["replicas"]) >= 2
    assert not workers.get("ports"), "replicas cannot share host ports"
    assert workers["command"] == services["simulate"]["command"]
    env = workers["environment"]
    outbox = CrmSettings(CRM_OUTBOX_URL=env["CRM_OUTBOX_URL"]).outbox_location
    redis_url = LLMSettings(redis_url=env["SALES_AGENT_LLM_REDIS_URL"]).redis_url.get_secret_value()
    for url, service in ((outbox, "postgres"), (redis_url, "redis")):
        host, port = stackcheck.endpoint(url.split("@")[-1] if "@" in url else url)
        assert host == service and str(port) in services[service]["expose"], url
        assert services[service]["profiles"] == ["scale"] and not services[service].get("ports")
        assert workers["depends_on"][service]["condition"] == "service_healthy"
    postgres = services["postgres"]["environment"]
    assert outbox.endswith(f"/{postgres['POSTGRES_DB']}") and f"//{postgres['POSTGRES_USER']}:" in outbox
    assert f":{postgres['POSTGRES_PASSWORD']}@" in outbox
    prometheus = yaml.safe_load((stackcheck.DEPLOY / "prometheus/prometheus.yml").read_text())
    (agent_job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == "sales-agent"]
    assert {"workers"} <= {name for sd in agent_job["dns_sd_configs"] for name in sd["names"]}


def test_simulate_drives_the_local_providers_and_crm(services):
    argv = services["simulate"]["command"]
    assert argv[:2] == ["simulate", "--forever"]
    llm_urls = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--llm-url"]
    crm_urls = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--crm-url"]
    for url in [*llm_urls, *crm_urls]:
        host, port = stackcheck.endpoint(url)
        assert str(port) in services[host]["expose"], f"{url}: {host} does not listen on {port}"
    assert [stackcheck.endpoint(u)[0] for u in llm_urls] == ["llm-primary", "llm-backup"]


def test_every_variable_the_compose_file_uses_is_documented_in_env_example():
    used = stackcheck.variables_referenced(stackcheck.COMPOSE_FILE.read_text())
    documented = set(stackcheck.read_env_file(stackcheck.ENV_EXAMPLE))
    assert used - documented == set(), f"undocumented in .env.example: {sorted(used - documented)}"


def test_env_example_holds_no_real_secret():
    for key, value in stackcheck.read_env_file(stackcheck.ENV_EXAMPLE).items():
        if key.endswith(("_API_KEY", "_PASSWORD", "_TOKEN")):
            assert value in ("", "devkey"), f"{key} must be empty in .env.example"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A}", {"A": "1"}, "1"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("${A:+alt}", {"A": "x"}, "alt"),
        ("$A and $$A", {"A": "1"}, "1 and $A"),
        ("127.0.0.1:${P:-3000}:3000", {}, "127.0.0.1:3000:3000"),
    ],
)
def test_interpolation_follows_compose_rules(text, env, expected):
    assert stackcheck.interpolate(text, env) == expected


def test_interpolation_reports_a_missing_required_variable():
    with pytest.raises(stackcheck.InterpolationError, match="required variable B is missing a value: set B"):
        stackcheck.interpolate("${B:?set B}", {})


_DURATION_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


def _seconds(duration: str) -> int:
    return sum(int(n) * _DURATION_S[unit] for n, unit in re.findall(r"(\d+)([smhdwy])", duration))


def test_prometheus_keeps_every_range_the_rules_read(services) -> None:
    """The 30-day availability rules read ``[30d]``: a shorter retention (it was 7 d) makes them a
    7-day figure under a 30-day name."""
    from prometheus_helpers import load_rule_groups

    longest = max(
        _seconds(window)
        for group in load_rule_groups()
        for rule in group["rules"]
        for window in re.findall(r"\[(\w+)(?::\w*)?\]", rule["expr"])
    )
    assert longest == _seconds("30d")
    (retention,) = [
        arg.split("=", 1)[1]
        for arg in services["prometheus"]["command"]
        if arg.startswith("--storage.tsdb.retention.time=")
    ]
    assert _seconds(retention) >= longest, retention
