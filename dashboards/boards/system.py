"""System: process and host CPU, memory, disk, network, file descriptors, event-loop lag (psutil).

The process.* and system.* names are the OTel semantic-convention names telemetry/system_metrics.py
registers (they are not project names, so they are not in telemetry/names.py); they go through the
same Prometheus translation as ours.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard
from grafana_foundation_sdk.models.dashboard import Dashboard

from dashboards import kit
from dashboards.alert_thresholds import alert_threshold
from dashboards.kit import prom
from dashboards.metrics import counter, gauge, label
from dashboards.promql import APP, or_zero, selector, sum_rate
from telemetry import names

UID = "sales-agent-system"


def build() -> Dashboard:
    instance = "instance"
    cpu_busy = alert_threshold("HighCpuUsage")
    memory_full = alert_threshold("HighSystemMemoryUsage")
    lag = alert_threshold("EventLoopLagHigh")
    signal = label(names.TELEMETRY_SIGNAL)
    generation = label(names.CPYTHON_GC_GENERATION)
    host_cpu, idle = gauge("system.cpu.utilization", "1"), selector(APP, 'cpu_mode="idle"')
    board = (
        kit.board(
            UID,
            "Sales agent / System",
            "Process and host CPU, memory, disk, network, file descriptors and event-loop lag (psutil).",
        )
        .with_row(dashboard.Row("CPU and memory"))
        .with_panel(
            kit.timeseries_panel(
                "CPU",
                [
                    prom(f"{gauge('process.cpu.utilization', '1')}{{{APP}}}", "agent process {{instance}}"),
                    prom(f"1 - avg by ({instance}) ({host_cpu}{{{idle}}})", "host {{instance}}"),
                ],
                unit="percentunit",
                maximum=1,
                thresholds=kit.above(cpu_busy, "orange"),
                description="Process CPU is normalised by the core count. HighCpuUsage warns when the host "
                f"is busier than {kit.percent(cpu_busy)} (dashed line).",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Memory",
                [
                    prom(f"{gauge('process.memory.usage', 'By')}{{{APP}}}", "agent RSS {{instance}}"),
                    prom(f"{gauge('process.memory.virtual', 'By')}{{{APP}}}", "agent virtual {{instance}}"),
                    prom(
                        f"sum by ({instance}) ({gauge('system.memory.usage', 'By')}{{{APP}}})",
                        "host total {{instance}}",
                    ),
                ],
                unit="bytes",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Host memory used",
                [
                    prom(
                        f'{gauge("system.memory.utilization", "1")}{{{APP}, system_memory_state="used"}}',
                        "{{instance}}",
                    )
                ],
                unit="percentunit",
                maximum=1,
                thresholds=kit.above(memory_full),
                description=f"HighSystemMemoryUsage pages above {kit.percent(memory_full)}.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Load average",
                [
                    prom(f"{gauge('system.cpu.load_average.1m')}{{{APP}}}", "1m {{instance}}"),
                    prom(f"{gauge('system.cpu.load_average.5m')}{{{APP}}}", "5m {{instance}}"),
                ],
            )
        )
        .with_row(dashboard.Row("Disk, network, file descriptors"))
        .with_panel(
            kit.timeseries_panel(
                "Disk used",
                [
                    prom(
                        f"{gauge('system.filesystem.utilization', '1')}{{{APP}}}",
                        "{{system_filesystem_mountpoint}} {{instance}}",
                    )
                ],
                unit="percentunit",
                maximum=1,
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Network I/O",
                [
                    prom(
                        sum_rate(counter("system.network.io", "By"), APP, [instance, "network_io_direction"]),
                        "{{network_io_direction}} {{instance}}",
                    )
                ],
                unit="Bps",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Open file descriptors and threads",
                [
                    prom(f"{gauge('process.unix.file_descriptor.count')}{{{APP}}}", "fds {{instance}}"),
                    prom(f"{gauge('process.thread.count')}{{{APP}}}", "threads {{instance}}"),
                ],
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Event loop lag",
                [prom(f"{gauge(names.EVENT_LOOP_LAG, 's')}{{{APP}}}", "{{instance}}")],
                unit="s",
                thresholds=kit.above(lag),
                description=f"How late the asyncio loop runs a timer. EventLoopLagHigh warns above {lag:g} s.",  # noqa: E501
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Garbage collections",
                [
                    prom(
                        sum_rate(counter(names.CPYTHON_GC_COLLECTIONS), APP, [instance, generation]),
                        f"generation {kit.legend(generation, instance)}",
                    )
                ],
                unit="ops",
                width=24,
                description="CPython collections per second by generation. A generation-2 collection stops "
                "the event loop while it walks the heap: compare with the event loop lag.",
            )
        )
        .with_panel(
            kit.timeseries_panel(
                "Telemetry export failures",
                [
                    prom(
                        or_zero(
                            sum_rate(counter(names.TELEMETRY_EXPORT_FAILURES), APP, [signal]),
                            {signal: "none"},
                        ),
                        kit.legend(signal),
                    )
                ],
                unit="ops",
                width=24,
                description="OTLP exports that failed, by signal; 0 (none) while every export succeeds.",
            )
        )
    )
    return kit.finish(board)
