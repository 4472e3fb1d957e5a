"""Tenant ids: the one format the tenant registry, the CRM facade and the local CRM service accept.

Lower-case letters, digits and hyphens, 2 to 63 characters, not starting with a hyphen: the shape of
a DNS label, so an id can become a host name, a metric label value or a file name unchanged.
"""

from __future__ import annotations

import re
from typing import Final

TENANT_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{1,62}$"
TENANT_ID_RE: Final = re.compile(TENANT_ID_PATTERN)


def is_tenant_id(value: object) -> bool:
    """True for a well-formed tenant id (a whole-string match: a trailing newline is not accepted)."""
    return isinstance(value, str) and TENANT_ID_RE.fullmatch(value) is not None
