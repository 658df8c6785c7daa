"""Injecting the provider's own key into a request the gateway forwards.

Routes that name `provider_key = "${OPENAI_API_KEY}"` get that key set the way their wire
format expects it (OpenAI: `Authorization: Bearer`, Anthropic: `x-api-key`); whatever
credential the client sent (its gateway key, or nothing) is removed first, so a client
never needs, and never sees, the provider key.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from suite.config import Route

CREDENTIAL_HEADERS = ("authorization", "x-api-key", "api-key")
_CREDENTIAL_BYTES = frozenset(n.encode() for n in CREDENTIAL_HEADERS)


def apply_provider_key(headers: MutableMapping[str, str], route: Route) -> bool:
    """Replace the client's credentials with the route's provider key; False if it has none."""
    if not route.provider_key:
        return False
    anthropic = route.llm_api_family == "anthropic"
    fields = getattr(headers, "fields", None)
    if isinstance(fields, tuple):
        # mitmproxy's Headers: one pass over the raw fields instead of a lookup per name
        # (this runs on every proxied request).
        kept = tuple(f for f in fields if f[0].lower() not in _CREDENTIAL_BYTES)
        added = (
            (b"x-api-key", route.provider_key.encode())
            if anthropic
            else (b"authorization", f"Bearer {route.provider_key}".encode())
        )
        headers.fields = (*kept, added)  # type: ignore[attr-defined]
        return True
    for name in CREDENTIAL_HEADERS:
        if name in headers:
            del headers[name]
    if anthropic:
        headers["x-api-key"] = route.provider_key
    else:
        headers["authorization"] = f"Bearer {route.provider_key}"
    return True
