"""``sales-agent gameday``: named faults against a real Prometheus and Alertmanager, measured.

The game day starts the whole alerting path on loopback (two ``simulate --forever`` text agents and a
voice one, the local LLM providers and CRM, STT and TTS stand-ins, a Collector stand-in, the Debian
``prometheus`` and ``prometheus-alertmanager`` with the repo's rules and Alertmanager template, the local
notification sink as every receiver), then injects each scenario's fault, waits for the notifications,
recovers, waits for the resolved ones, and reports per scenario: expected alerts, fired alerts, time to
notification, time to the resolved notification after recovery, and unexpected alerts. The series each
scenario produced are written as promtool test files, so CI replays the same scenarios against the rules
without a live run.

Modules: ``scenarios`` (what each fault does and which alerts it must raise), ``stack`` (the
processes), ``observe`` (Prometheus, notifications, host CPU), ``record`` (promtool files),
``scan`` (no e-mail, phone number or secret in anything exported), ``report`` (the table),
``command`` (the CLI and the run).
"""
