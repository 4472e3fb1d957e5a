"""Optional Prometheus ``/metrics`` on the same MeterProvider (a second MetricReader).

A dedicated ``CollectorRegistry`` keeps the endpoint to exactly the OTel metrics (plus
``target_info`` carrying the resource), without prometheus_client's own process_* collectors,
which would duplicate the psutil ``process.*`` instruments under other names.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIServer

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from prometheus_client import CollectorRegistry, start_http_server

from telemetry.config_errors import listen_error


@dataclass
class MetricsServer:
    reader: PrometheusMetricReader
    registry: CollectorRegistry
    host: str
    port: int  # the bound port (a free one when 0 was asked for)
    _server: WSGIServer | None = None
    _thread: threading.Thread | None = None

    def start(self, setting: str = "metrics port") -> None:
        """Serve ``/metrics``; a port that cannot be bound is a ``ConfigError`` naming ``setting``."""
        try:
            server, thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        except OSError as exc:
            raise listen_error(exc, self.host, self.port, setting) from None
        self._server, self._thread = server, thread
        self.port = server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def create_metrics_server(host: str, port: int) -> MetricsServer:
    """The reader goes into the MeterProvider; call ``start()`` once the provider exists."""
    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(registry=registry)
    return MetricsServer(reader=reader, registry=registry, host=host, port=port)
