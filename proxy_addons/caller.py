"""Records which service made a call, when the client says so with an `x-aiops-caller`
header: the service catalog turns it into an observed dependency (caller -> route).

Only a valid service name is recorded; anything else is ignored (and counted), never an
error for the client. The header is passed on unchanged.
"""

from __future__ import annotations

import logging
import re

from mitmproxy import http

log = logging.getLogger("aiops.caller")

CALLER_HEADER = "x-aiops-caller"
# The same rule as route and service names in the config.
CALLER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
META_FIELDS = "aiops_fields"  # merged into the captured row by proxy_addons.capture


def parse_caller(value: str | None) -> str | None:
    """The service name in a caller header, or None when absent or not a valid name."""
    if value is None:
        return None
    name = value.strip()
    return name if CALLER_NAME_RE.match(name) else None


class CallerHeader:
    def __init__(self) -> None:
        self.invalid = 0

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        raw = flow.request.headers.get(CALLER_HEADER)
        if raw is None:
            return
        caller = parse_caller(raw)
        if caller is None:
            self.invalid += 1
            if self.invalid == 1 or self.invalid % 1000 == 0:
                log.warning(
                    "caller: %d %s headers ignored (not a service name: letters, digits, "
                    "'_', '.', '-'; at most 64)",
                    self.invalid,
                    CALLER_HEADER,
                )
            return
        flow.metadata.setdefault(META_FIELDS, {})["caller"] = caller


addons = [CallerHeader()]
