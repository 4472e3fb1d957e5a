"""Look for contact data and secrets in everything a run exported: raw OTLP bodies, logs, metrics.

The scripted callers' e-mail addresses and phone numbers follow known shapes
(``agent/simulate/scripts.py``: ``<first>.<run>.<n>@<company>.example.com``, ``+1 415 555 NNNN``), so
the scan looks for those shapes in every encoding a value can take on its way out: plain, percent-
encoded (``%40``, ``%2B``, double-encoded ``%2540``), JSON- and HTML-escaped (``\\u0040``, ``&#64;``),
spelled out ("lee at umbrella"), with separators or none, any letter case. The e-mail's local part
alone is searched too: it is unique to the script and survives every encoding of the ``@``. Plus any
e-mail address at all, and the secrets the run planted. Protobuf stores strings as raw UTF-8, so the
bodies are searched as bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

_FIRST_NAMES = "dana|lee|sam|ari|kim|noa|max|ira"  # agent/simulate/scripts.py prospect_for
_AT = rb"(?:@|%40|%2540|\\u0040|\\x40|&#64;|&commat;|\s+at\s+)"
_SEP = rb"(?:[\s.\-()]|%20|%2520|\+)?"
PATTERNS: dict[str, re.Pattern[bytes]] = {
    "script e-mail local part": re.compile(rb"(?i)\b(?:" + _FIRST_NAMES.encode() + rb")\.[0-9a-f]{6}\.\d+"),
    # Local part and domain labels of 2+ characters: in binary protobuf (timestamps, ids) a stray 0x40
    # between printable bytes ("9@g.BX") is otherwise an "address".
    "e-mail address": re.compile(
        rb"(?i)[a-z0-9._+-]{2,64}" + _AT + rb"[a-z0-9-]{2,}(?:\.[a-z0-9-]{2,})*\.[a-z]{2,}\b"
    ),
    "script phone number": re.compile(
        rb"(?:\+|%2B|%252B|\\u002b)?1?" + _SEP + rb"\(?415\)?" + _SEP + rb"555" + _SEP + rb"\d{4}(?!\d)", re.I
    ),
}
# Addresses that are configuration, not contact data (the Alertmanager sender default).
_ALLOWED_EMAILS = (b"alertmanager@localhost",)


@dataclass(frozen=True)
class Finding:
    source: str
    kind: str
    excerpt: str  # with the match itself masked, so a report does not repeat the leak


def _excerpt(data: bytes, start: int, end: int) -> str:
    before = data[max(0, start - 40) : start].decode("utf-8", "replace")
    after = data[end : end + 40].decode("utf-8", "replace")
    masked = f"<{end - start} bytes>"
    return re.sub(r"[^\x20-\x7e]", ".", f"{before}{masked}{after}")


def scan_bytes(source: str, data: bytes, secrets: Iterable[str] = ()) -> list[Finding]:
    findings: list[Finding] = []
    for kind, pattern in PATTERNS.items():
        for match in pattern.finditer(data):
            if kind == "e-mail address" and match.group(0).lower() in _ALLOWED_EMAILS:
                continue
            findings.append(Finding(source, kind, _excerpt(data, match.start(), match.end())))
    for secret in secrets:
        needle = secret.encode()
        position = data.find(needle)
        if position >= 0:
            findings.append(Finding(source, "secret", _excerpt(data, position, position + len(needle))))
    return findings


def scan_paths(paths: Iterable[Path], secrets: Iterable[str] = ()) -> list[Finding]:
    secrets = tuple(secrets)
    findings: list[Finding] = []
    for path in paths:
        if path.is_file():
            findings.extend(scan_bytes(str(path), path.read_bytes(), secrets))
    return findings
