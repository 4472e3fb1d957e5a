"""The stack's config files parse and are wired to each other: every endpoint one component names is a
compose service and a port that service really listens on (derived from that service's own config);
datasource uids line up; Prometheus/Alertmanager configs pass promtool/amtool. No Docker needed."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_helpers import check_logql

_spec = importlib.util.spec_from_file_location(
    "stackcheck", Path(__file__).parents[2] / "deploy/stackcheck.py"
)
stackcheck = importlib.util.module_from_spec(_spec)
sys.modules["stackcheck"] = stackcheck
_spec.loader.exec_module(stackcheck)

REPO = stackcheck.REPO
DEPLOY = stackcheck.DEPLOY
DATASOURCE_UIDS = {"prometheus", "tempo", "loki", "alertmanager"}
# Grafana's built-in pseudo datasources a dashboard may name.
BUILTIN_DATASOURCES = {"-- Grafana --", "grafana", "-- Mixed --", "-- Dashboard --"}


def read_yaml(relative: str) -> Any:
    return yaml.safe_load((DEPLOY / relative).read_text())


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    env = stackcheck.example_env(GRAFANA_ADMIN_PASSWORD="test-only-password")
    return stackcheck.load_compose(env)["services"]


@pytest.fixture(scope="module")
def collector() -> dict[str, Any]:
    return read_yaml("otel-collector/config.yaml")


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    return read_yaml("prometheus/prometheus.yml")


def port_of(address: str) -> int:
    return stackcheck.endpoint(address)[1]


def flag_value(argv: list[str], flag: str) -> str | None:
    for index, arg in enumerate(argv):
        if arg == flag:
            return argv[index + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def listening_ports(services: dict[str, Any]) -> dict[str, set[int]]:
    """What each service listens on, read from that service's own configuration (not from compose)."""
    collector = read_yaml("otel-collector/config.yaml")
    protocols = collector["receivers"]["otlp"]["protocols"]
    telemetry_reader = collector["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    tempo = read_yaml("tempo/tempo.yaml")
    tempo_otlp = tempo["distributor"]["receivers"]["otlp"]["protocols"]
    loki = read_yaml("loki/loki.yaml")
    prometheus_listen = flag_value(services["prometheus"]["command"], "--web.listen-address") or ":9090"
    alertmanager_argv = " ".join(services["alertmanager"]["command"]).split()
    alertmanager_listen = flag_value(alertmanager_argv, "--web.listen-address") or ":9093"
    grafana_port = int(services["grafana"].get("environment", {}).get("GF_SERVER_HTTP_PORT", 3000))
    ports: dict[str, set[int]] = {
        "init": set(),
        "otel-collector": {
            port_of(protocols["grpc"]["endpoint"]),
            port_of(protocols["http"]["endpoint"]),
            port_of(collector["exporters"]["prometheus"]["endpoint"]),
            port_of(collector["extensions"]["health_check"]["endpoint"]),
            int(telemetry_reader["prometheus"]["port"]),
        },
        "tempo": {
            tempo["server"]["http_listen_port"],
            tempo["server"]["grpc_listen_port"],
            port_of(tempo_otlp["grpc"]["endpoint"]),
            port_of(tempo_otlp["http"]["endpoint"]),
        },
        "loki": {loki["server"]["http_listen_port"], loki["server"]["grpc_listen_port"]},
        "prometheus": {port_of(f"x{prometheus_listen}")},
        "alertmanager": {port_of(f"x{alertmanager_listen}")},
        "grafana": {grafana_port},
        # livekit-server --dev: HTTP/WebSocket 7880, ICE/TCP 7881, ICE/UDP 7882.
        "livekit": {7880, 7881},
        # `--profile scale`: the images' defaults (redis-server's --port, postgres' PGPORT are not set).
        "redis": {int(flag_value(services["redis"]["command"], "--port") or 6379)},
        "postgres": {int(services["postgres"].get("environment", {}).get("PGPORT", 5432))},
    }
    for name, service in services.items():
        if "build" not in service:
            continue
        argv = service.get("command", [])
        own = {int(argv[i + 1]) for i, arg in enumerate(argv) if arg == "--port"}
        env = service.get("environment", {})
        if argv and argv[0] in ("simulate", "start"):  # these serve /health and /metrics
            own |= {int(env["SALES_AGENT_HEALTH_PORT"]), int(env["SALES_AGENT_METRICS_PORT"])}
        shared = service.get("network_mode", "").removeprefix("service:")
        ports.setdefault(shared or name, set()).update(own)
        ports.setdefault(name, set())
    return ports


@pytest.fixture(scope="module")
def listening(services) -> dict[str, set[int]]:
    return listening_ports(services)


@pytest.mark.parametrize(
    "relative",
    sorted(str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*") if p.suffix in (".yml", ".yaml", ".tmpl")),
)
def test_every_deploy_config_file_parses_as_a_yaml_mapping(relative):
    assert isinstance(read_yaml(relative), dict), f"{relative} is not a YAML mapping"


def test_compose_expose_documents_exactly_what_each_service_listens_on(services, listening):
    assert set(listening) == set(services)
    for name, service in services.items():
        exposed = {int(port) for port in service.get("expose", [])}
        assert exposed == listening[name], f"{name}: expose {exposed}, listens on {listening[name]}"


def test_published_ports_reach_a_listening_port(services, listening):
    livekit_media = {7882}  # WebRTC media over UDP (livekit-server --dev)
    for name, service in services.items():
        for mapping in service.get("ports", []):
            container_port = int(mapping.rsplit(":", 1)[1].split("/")[0])
            allowed = listening[name] | (livekit_media if name == "livekit" else set())
            assert container_port in allowed, f"{name} publishes {mapping}, listens on {listening[name]}"


def rendered_alertmanager(tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    output = tmp_path / "alertmanager.yml"
    subprocess.run(
        ["sh", str(DEPLOY / "alertmanager/render.sh"), str(DEPLOY / "alertmanager/alertmanager.yml.tmpl"),
         str(output)],
        env={"PATH": os.environ["PATH"], **env},
        check=True,
        timeout=30,
    )  # fmt: skip
    return yaml.safe_load(output.read_text())


def endpoint_references(services, tmp_path_factory) -> list[tuple[str, str, str]]:
    """(who refers, what, address) for every network address a component is configured to reach."""
    refs: list[tuple[str, str, str]] = []
    collector = read_yaml("otel-collector/config.yaml")
    for exporter, config in collector["exporters"].items():
        if "endpoint" in config and exporter != "prometheus":  # prometheus is a listener, not a client
            refs.append(("otel-collector", f"exporter {exporter}", config["endpoint"]))
    prometheus = read_yaml("prometheus/prometheus.yml")
    for job in prometheus["scrape_configs"]:
        for static in job.get("static_configs", []):
            refs += [("prometheus", f"job {job['job_name']}", t) for t in static["targets"]]
        for dns in job.get("dns_sd_configs", []):
            refs += [("prometheus", f"job {job['job_name']}", f"{n}:{dns['port']}") for n in dns["names"]]
    for am in prometheus["alerting"]["alertmanagers"]:
        refs += [("prometheus", "alerting", t) for s in am["static_configs"] for t in s["targets"]]
    for remote in read_yaml("tempo/tempo.yaml")["metrics_generator"]["storage"]["remote_write"]:
        refs.append(("tempo", "metrics-generator remote_write", remote["url"]))
    for source in read_yaml("grafana/provisioning/datasources/datasources.yaml")["datasources"]:
        refs.append(("grafana", f"datasource {source['uid']}", source["url"]))
    am_env = {k: v for k, v in services["alertmanager"]["environment"].items() if v}
    rendered = rendered_alertmanager(tmp_path_factory.mktemp("am"), am_env)
    for receiver in rendered["receivers"]:
        refs += [
            ("alertmanager", f"receiver {receiver['name']}", w["url"]) for w in receiver["webhook_configs"]
        ]
    for provider in json.loads(services["agent"]["environment"]["SALES_AGENT_LLM_CHAIN"]):
        if provider.get("api_base"):
            refs.append(("agent", f"llm provider {provider['name']}", provider["api_base"]))
    for name, service in services.items():
        env = service.get("environment", {})
        for variable in ("OTEL_EXPORTER_OTLP_ENDPOINT", "CRM_URL", "LIVEKIT_URL"):
            if variable in env:
                refs.append((name, variable, env[variable]))
        argv = service.get("command", [])
        refs += [(name, arg, argv[i + 1]) for i, arg in enumerate(argv) if arg in ("--llm-url", "--crm-url")]
    return refs


def test_every_endpoint_names_a_service_and_a_port_it_listens_on(services, listening, tmp_path_factory):
    refs = endpoint_references(services, tmp_path_factory)
    assert len(refs) > 20
    for who, what, address in refs:
        host, port = stackcheck.endpoint(address)
        if host in ("localhost", "127.0.0.1"):  # itself, or the namespace it shares
            host = services.get(who, {}).get("network_mode", "").removeprefix("service:") or who
        assert host in services, f"{who} {what} -> {address}: {host} is not a compose service"
        assert port in listening[host], f"{who} {what} -> {address}: {host} listens on {listening[host]}"


def test_collector_own_metrics_keep_the_names_the_runbooks_cite(collector):
    # An explicit `readers` block replaces the default reader, which strips type and unit suffixes.
    (reader,) = collector["service"]["telemetry"]["metrics"]["readers"]
    exporter = reader["pull"]["exporter"]["prometheus"]
    assert exporter["without_type_suffix"] and exporter["without_units"] and exporter["without_scope_info"]
    cited = set()
    for page in (REPO / "docs" / "runbooks").glob("*.md"):
        cited |= set(re.findall(r"\botelcol_[a-z_]+", page.read_text()))
    assert cited, "the runbooks cite the Collector's metrics"
    assert not {name for name in cited if name.endswith(("_total", "_seconds", "_bytes"))}


def test_collector_pipelines_are_complete(collector):
    pipelines = collector["service"]["pipelines"]
    assert set(pipelines) == {"metrics", "traces", "logs"}
    used = {kind: set() for kind in ("receivers", "processors", "exporters")}
    for signal, pipeline in pipelines.items():
        for kind in used:
            for component in pipeline[kind]:
                assert component in collector[kind], f"{signal}: {component} is not defined in {kind}"
                used[kind].add(component)
        assert pipeline["processors"][0] == "memory_limiter", f"{signal}: memory_limiter must come first"
        assert "batch" in pipeline["processors"], signal
        assert pipeline["receivers"] == ["otlp"], signal
    for kind, names in used.items():
        assert names == set(collector[kind]), f"defined but unused {kind}: {set(collector[kind]) - names}"
    assert collector["service"]["extensions"] == ["health_check"]
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    exporter = collector["exporters"]["prometheus"]
    assert exporter["enable_open_metrics"] is True, "exemplars need OpenMetrics"
    assert exporter["resource_to_telemetry_conversion"]["enabled"] is False, (
        "resource attrs stay on target_info"
    )
    traces = collector["exporters"][pipelines["traces"]["exporters"][0]]
    assert stackcheck.endpoint(traces["endpoint"])[0] == "tempo"
    logs = collector["exporters"][pipelines["logs"]["exporters"][0]]
    assert logs["endpoint"] == "http://loki:3100/otlp", "Loki's native OTLP endpoint"


def test_prometheus_scrapes_each_app_metric_once_and_the_backends(prometheus_config, services):
    jobs = {job["job_name"]: job for job in prometheus_config["scrape_configs"]}
    collector_exporter = jobs["otel-collector-exporter"]
    assert collector_exporter["honor_labels"] is True, "keep job/instance from service.name/instance.id"
    assert collector_exporter["static_configs"][0]["targets"] == ["otel-collector:8889"]
    assert jobs["otel-collector"]["static_configs"][0]["targets"] == ["otel-collector:8888"]
    assert {"tempo", "loki", "prometheus", "alertmanager"} <= set(jobs)
    # The apps' own /metrics are liveness-only: every sample dropped, so nothing is counted twice.
    liveness = jobs["sales-agent"]
    assert liveness["metric_relabel_configs"] == [
        {"source_labels": ["__name__"], "regex": ".+", "action": "drop"}
    ]
    app_metrics_ports = {int(s["environment"]["SALES_AGENT_METRICS_PORT"]) for s in services.values()
                         if "SALES_AGENT_METRICS_PORT" in s.get("environment", {})}  # fmt: skip
    for name, job in jobs.items():
        if name == "sales-agent":
            continue
        targets = [t for s in job.get("static_configs", []) for t in s["targets"]]
        assert not any(port_of(t) in app_metrics_ports for t in targets), f"{name} scrapes an app /metrics"
    argv = services["prometheus"]["command"]
    assert "--enable-feature=exemplar-storage" in argv
    assert "--web.enable-remote-write-receiver" in argv, "Tempo's metrics-generator remote-writes here"


def test_prometheus_loads_the_mounted_alert_rules(prometheus_config, services):
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    config_dir = Path(flag_value(services["prometheus"]["command"], "--config.file")).parent
    assert mounts[str(config_dir / "prometheus.yml")] == "./deploy/prometheus/prometheus.yml"
    rules_dirs = {str(config_dir / Path(glob).parent) for glob in prometheus_config["rule_files"]}
    assert rules_dirs == {"/etc/prometheus/rules"}
    assert mounts["/etc/prometheus/rules"] == "./alert-rules"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian package prometheus) missing")
def test_promtool_checks_the_prometheus_config_with_its_rule_files(tmp_path):
    (tmp_path / "prometheus.yml").write_text((DEPLOY / "prometheus/prometheus.yml").read_text())
    (tmp_path / "rules").symlink_to(REPO / "alert-rules")
    result = subprocess.run(
        ["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    if any((REPO / "alert-rules").glob("*.y*ml")):
        assert "rule files found" in result.stdout and "SUCCESS: 0 rule files" not in result.stdout


def test_tempo_generates_metrics_into_prometheus_and_stores_locally():
    tempo = read_yaml("tempo/tempo.yaml")
    processors = tempo["overrides"]["defaults"]["metrics_generator"]["processors"]
    assert {"service-graphs", "span-metrics"} <= set(processors)
    (remote,) = tempo["metrics_generator"]["storage"]["remote_write"]
    assert remote["url"] == "http://prometheus:9090/api/v1/write" and remote["send_exemplars"] is True
    assert tempo["storage"]["trace"]["backend"] == "local"
    assert tempo["stream_over_http_enabled"] is True


def test_loki_accepts_otlp_with_structured_metadata():
    loki = read_yaml("loki/loki.yaml")
    assert loki["limits_config"]["allow_structured_metadata"] is True
    latest = loki["schema_config"]["configs"][-1]
    assert (latest["store"], latest["schema"]) == ("tsdb", "v13"), "structured metadata needs tsdb + v13"
    assert loki["auth_enabled"] is False


@pytest.fixture(scope="module")
def datasources() -> list[dict[str, Any]]:
    return read_yaml("grafana/provisioning/datasources/datasources.yaml")["datasources"]


def referenced_uids(node: Any) -> set[str]:
    """Every datasourceUid / datasource.uid value anywhere in a JSON/YAML tree."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasourceUid" and isinstance(value, str):
                found.add(value)
            elif key == "datasource" and isinstance(value, dict) and isinstance(value.get("uid"), str):
                found.add(value["uid"])
            elif key == "datasource" and isinstance(value, str):
                found.add(value)
            else:
                found |= referenced_uids(value)
    elif isinstance(node, list):
        for item in node:
            found |= referenced_uids(item)
    return found


def test_datasources_have_the_fixed_uids_and_link_to_each_other(datasources):
    by_uid = {source["uid"]: source for source in datasources}
    assert set(by_uid) == DATASOURCE_UIDS
    assert [s["uid"] for s in datasources if s.get("isDefault")] == ["prometheus"]
    assert referenced_uids(datasources) <= DATASOURCE_UIDS
    prometheus, tempo, loki = (
        by_uid["prometheus"]["jsonData"],
        by_uid["tempo"]["jsonData"],
        by_uid["loki"]["jsonData"],
    )
    # Our exemplars (via the Collector) say trace_id, Tempo's span-metric exemplars traceID: both link.
    assert prometheus["exemplarTraceIdDestinations"] == [
        {"name": "trace_id", "datasourceUid": "tempo", "urlDisplayLabel": "Open trace"},
        {"name": "traceID", "datasourceUid": "tempo", "urlDisplayLabel": "Open trace"},
    ]
    # Trace -> logs matches the trace_id structured metadata, not a text search of the log line.
    to_logs = tempo["tracesToLogsV2"]
    assert to_logs["datasourceUid"] == "loki" and to_logs["customQuery"] is True
    assert not to_logs["filterByTraceID"]
    assert to_logs["query"] == '{$${__tags}} | trace_id="$${__trace.traceId}"'
    expanded = to_logs["query"].replace("$${__tags}", 'service_name="x"')
    check_logql(expanded.replace("$${__trace.traceId}", "abc"))
    assert tempo["tracesToMetrics"]["datasourceUid"] == "prometheus"
    assert tempo["serviceMap"]["datasourceUid"] == "prometheus"
    (derived,) = loki["derivedFields"]
    assert (derived["datasourceUid"], derived["matcherType"], derived["matcherRegex"]) == (
        "tempo",
        "label",
        "trace_id",
    )
    assert by_uid["alertmanager"]["jsonData"]["implementation"] == "prometheus"


def test_grafana_variables_in_provisioning_are_escaped():
    """Grafana expands $VAR / ${VAR} in provisioning files: Grafana's own ${__...} macros need $$."""
    for path in (DEPLOY / "grafana/provisioning").rglob("*.yaml"):
        text = path.read_text()
        assert not re.search(r"(?<!\$)\$\{?__", text), f"{path}: unescaped Grafana macro"


def test_span_metrics_queries_match_what_tempo_generates(datasources):
    tempo = next(s for s in datasources if s["uid"] == "tempo")["jsonData"]
    for query in tempo["tracesToMetrics"]["queries"]:
        assert re.search(r"traces_spanmetrics_(calls_total|latency_bucket)", query["query"]), query


def test_the_dashboards_folder_is_provisioned_and_its_datasource_uids_exist(services):
    provider = read_yaml("grafana/provisioning/dashboards/dashboards.yaml")["providers"][0]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["grafana"]["volumes"]}
    assert mounts[provider["options"]["path"]] == "./dashboards"
    assert (REPO / "dashboards").is_dir()
    home = services["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/")
    assert (REPO / "dashboards" / Path(home).name).is_file(), f"home dashboard {home} is not in dashboards/"
    for path in sorted((REPO / "dashboards").glob("*.json")):
        dashboard = json.loads(path.read_text())
        template_names = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
        for uid in referenced_uids(dashboard):
            variable = re.fullmatch(r"\$\{?(\w+)\}?", uid)
            if variable:
                assert variable.group(1) in template_names, f"{path.name}: undefined variable {uid}"
                continue
            assert uid in DATASOURCE_UIDS | BUILTIN_DATASOURCES, f"{path.name}: unknown datasource uid {uid}"


def test_alertmanager_template_variables_are_passed_and_documented(services):
    template = (DEPLOY / "alertmanager/alertmanager.yml.tmpl").read_text()
    variables = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", template))
    variables |= set(re.findall(r"^#if ([A-Za-z_][A-Za-z0-9_]*)", template, re.MULTILINE))
    passed = set(services["alertmanager"]["environment"])
    documented = set(stackcheck.read_env_file(stackcheck.ENV_EXAMPLE))
    assert variables - passed == set(), f"not passed to the alertmanager container: {variables - passed}"
    assert variables - documented == set(), f"not documented in .env.example: {variables - documented}"
    command = " ".join(services["alertmanager"]["command"])
    assert "render.sh /etc/alertmanager/alertmanager.yml.tmpl /tmp/alertmanager.yml" in command
    assert "--config.file=/tmp/alertmanager.yml" in command
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["alertmanager"]["volumes"]}
    assert mounts["/etc/alertmanager"] == "./deploy/alertmanager"


AM_REAL_VALUES = {
    "ALERTMANAGER_PAGER_WEBHOOK_URL": "https://pager.example.com/hook",
    "ALERTMANAGER_SLACK_API_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
    "ALERTMANAGER_SLACK_CHANNEL": "#alerts",
    "ALERTMANAGER_SMTP_SMARTHOST": "smtp.example.com:587",
    "ALERTMANAGER_EMAIL_TO": "oncall@example.com",
    "ALERTMANAGER_SMTP_USERNAME": "user",
    "ALERTMANAGER_SMTP_PASSWORD": 'p"ss\\word',
}


@pytest.mark.skipif(
    shutil.which("amtool") is None, reason="amtool (Debian package prometheus-alertmanager) missing"
)
@pytest.mark.parametrize("receivers", ["defaults from .env.example", "real receivers"])
def test_amtool_accepts_the_config_compose_renders(services, tmp_path, receivers):
    env = {k: v for k, v in services["alertmanager"]["environment"].items() if v}
    if receivers == "real receivers":
        env |= AM_REAL_VALUES
    rendered = rendered_alertmanager(tmp_path, env)
    result = subprocess.run(
        ["amtool", "check-config", str(tmp_path / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    by_name = {receiver["name"]: receiver for receiver in rendered["receivers"]}
    if receivers == "real receivers":
        assert (
            by_name["pager"]["webhook_configs"][0]["url"] == AM_REAL_VALUES["ALERTMANAGER_PAGER_WEBHOOK_URL"]
        )
        assert by_name["chat"]["slack_configs"][0]["channel"] == "#alerts"
        assert by_name["low-priority"]["email_configs"][0]["auth_password"] == 'p"ss\\word'
    else:
        for receiver in by_name.values():
            assert "slack_configs" not in receiver and "email_configs" not in receiver
            for webhook in receiver["webhook_configs"]:
                assert stackcheck.endpoint(webhook["url"]) == ("notification-sink", 8300)
