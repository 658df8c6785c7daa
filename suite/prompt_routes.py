"""Prompt routes: `[[prompts]]` turn `POST /prompts/<name>` with a JSON object of variables
into one LLM call (OpenAI chat or Anthropic messages) and its answer into plain JSON.

Pure: parsing, validation, rendering and answer extraction only; the gateway's
`proxy_addons/prompts.py` calls these from its hooks. Never does I/O.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from suite.llm_usage import parse_llm_response

if TYPE_CHECKING:
    from suite.config import Route, _Problems
    from suite.pool_config import LlmAlias

PROMPTS_PREFIX = "/prompts"
PROMPT_KEYS = {"name", "model", "template", "system", "max_tokens", "temperature", "description"}
VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Anthropic requires max_tokens; OpenAI-format calls without one let the provider decide.
DEFAULT_ANTHROPIC_MAX_TOKENS = 1024
ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True)
class PromptRoute:
    name: str
    target: str  # as written: an alias, or "<route>:<model>"
    route: str  # the route the call is sent through (an alias: its first target's route)
    model: str  # the `model` sent: the model of "<route>:<model>", or the alias name
    alias: str | None  # set when `target` is an [[llm_aliases]] name
    api_family: str  # 'openai' (chat/completions) | 'anthropic' (messages)
    path: str  # gateway path the call is rewritten to (matches `route`)
    template: str
    variables: tuple[str, ...]  # placeholders of system + template, in order of appearance
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    description: str | None = None
    provider: str | None = None  # the route's llm_provider

    @property
    def api(self) -> str:
        return "messages" if self.api_family == "anthropic" else "chat"


# -- templates ----------------------------------------------------------------------------
def template_variables(text: str) -> tuple[str, ...] | str:
    """The `{name}` placeholders of a template in order (each once), or the reason the
    template is not usable. `{{` and `}}` are literal braces."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        return f"is not a valid template ({e}; write {{{{ and }}}} for literal braces)"
    for _literal, field, spec, conversion in parsed:
        if field is None:
            continue
        if field == "" or field.isdigit():
            return "has a positional placeholder '{}': name every variable, e.g. {claim_id}"
        if not VARIABLE_RE.match(field):
            return (
                f"placeholder {{{field}}} is not a plain variable name (letters, digits, '_'; "
                "no attributes, indexes or spaces)"
            )
        if spec or conversion:
            return f"placeholder {{{field}}} must not have a format spec or conversion"
        if field not in names:
            names.append(field)
    return tuple(names)


def variable_text(value: Any) -> str:
    """A variable's value as it appears in the prompt: strings as-is, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def render_template(text: str, values: dict[str, Any]) -> str:
    """The template with each placeholder replaced; values are never re-interpreted as
    templates (a value containing '{x}' stays literal)."""
    out: list[str] = []
    for literal, field, _spec, _conversion in string.Formatter().parse(text):
        out.append(literal)
        if field is not None:
            out.append(variable_text(values[field]))
    return "".join(out)


def check_variables(prompt: PromptRoute, values: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(missing, extra) variable names, each sorted."""
    expected = set(prompt.variables)
    return sorted(expected - set(values)), sorted(set(values) - expected)


# -- the LLM call -------------------------------------------------------------------------
def prompt_forward_path(route: Route) -> str:
    """The gateway path of the route's chat (or messages) endpoint. The `/v1` segment is
    left out when the upstream base path (or the unstripped prefix) already ends in it,
    as the SDKs' base URLs do."""
    endpoint = "/messages" if route.llm_api_family == "anthropic" else "/chat/completions"
    base = route.upstreams[0].base_path if route.upstreams else ""
    seen_upstream = base if route.strip_prefix else base + route.prefix.rstrip("/")
    rel = endpoint if seen_upstream.endswith("/v1") else "/v1" + endpoint
    return (route.prefix.rstrip("/") if route.prefix != "/" else "") + rel


def llm_request_body(prompt: PromptRoute, values: dict[str, Any]) -> dict[str, Any]:
    """The provider request body (non-streamed) for these variables (already checked)."""
    user = render_template(prompt.template, values)
    system = render_template(prompt.system, values) if prompt.system else None
    body: dict[str, Any] = {"model": prompt.model}
    if prompt.api_family == "anthropic":
        if system:
            body["system"] = system
        body["messages"] = [{"role": "user", "content": user}]
        body["max_tokens"] = prompt.max_tokens or DEFAULT_ANTHROPIC_MAX_TOKENS
    else:
        messages = [{"role": "system", "content": system}] if system else []
        body["messages"] = [*messages, {"role": "user", "content": user}]
        if prompt.max_tokens is not None:
            # OpenAI's own API wants the newer name (reasoning models refuse max_tokens);
            # OpenAI-compatible servers (vLLM, Ollama...) know the older one.
            name = "max_completion_tokens" if prompt.provider == "openai" else "max_tokens"
            body[name] = prompt.max_tokens
    if prompt.temperature is not None:
        body["temperature"] = prompt.temperature
    body["stream"] = False
    return body


def answer_text(api_family: str, obj: dict[str, Any]) -> str | None:
    """The generated text of a non-streamed chat completion / message, or None."""
    if api_family == "anthropic":
        blocks = obj.get("content")
        if not isinstance(blocks, list):
            return None
        texts = [
            b["text"]
            for b in blocks
            if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        ]
        return "".join(texts)
    choices = obj.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return None
    message = choices[0].get("message")
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        return "".join(
            p.get("text", "")
            for p in content
            if isinstance(p, dict) and isinstance(p.get("text"), str)
        )
    return None


def prompt_answer(prompt: PromptRoute, body: bytes | None) -> dict[str, Any] | None:
    """The plain JSON answer for a provider's 200 body, or None if it is not one."""
    try:
        obj = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict):
        return None
    text = answer_text(prompt.api_family, obj)
    if text is None:
        return None
    # The same parser that fills the row, so the client and the row agree on the numbers.
    usage = parse_llm_response(prompt.api, body, streamed=False)
    prompt_tokens, completion_tokens = usage.prompt_tokens, usage.completion_tokens
    total = (
        prompt_tokens + completion_tokens
        if prompt_tokens is not None and completion_tokens is not None
        else None
    )
    return {
        "prompt": prompt.name,
        "answer": text,
        "model": usage.served_model,
        "finish_reason": usage.finish_reason,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": total,
        },
    }


def upstream_error_message(body: bytes | None) -> str | None:
    """The message of a provider's error body (OpenAI or Anthropic shape), if any."""
    try:
        obj = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(obj, dict) and isinstance(obj.get("error"), dict):
        message = obj["error"].get("message")
        return message if isinstance(message, str) else None
    return None


# -- config -------------------------------------------------------------------------------
def _shadowing_route(routes: list[Route]) -> Route | None:
    """A route (other than a catch-all '/') whose prefix covers /prompts/..."""
    for route in routes:
        if route.prefix != "/" and route.matches(PROMPTS_PREFIX + "/x"):
            return route
    return None


def parse_prompts(
    problems: _Problems,
    raw: object,
    routes: list[Route],
    aliases: tuple[LlmAlias, ...] = (),
) -> tuple[PromptRoute, ...]:
    """Validate `[[prompts]]`; every mistake goes to `problems`."""
    from suite.config import ROUTE_NAME_RE, _check_keys, _number

    if raw is None:
        return ()
    if not isinstance(raw, list):
        problems.add(
            "prompts", "must be an array of tables ([[prompts]] with name, model, template)"
        )
        return ()
    by_name = {r.name: r for r in routes}
    by_specificity = sorted(routes, key=lambda r: len(r.prefix), reverse=True)
    if raw and (shadow := _shadowing_route(routes)) is not None:
        problems.add(
            "prompts",
            f"route {shadow.name!r} (prefix {shadow.prefix!r}) takes the paths "
            f"{PROMPTS_PREFIX}/<name> that prompt routes answer; give it another prefix",
        )
    prompts: list[PromptRoute] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        where = f"prompts[{i}]"
        if not isinstance(item, dict):
            problems.add(where, "must be a table ([[prompts]] with name, model, template)")
            continue
        _check_keys(problems, f"{where}.", item, PROMPT_KEYS)
        before = len(problems.items)
        name = item.get("name")
        if name is None:
            problems.add(f"{where}.name", "is required (used in the URL: POST /prompts/<name>)")
        elif not isinstance(name, str) or not ROUTE_NAME_RE.match(name):
            problems.add(
                f"{where}.name",
                f"{name!r} is not URL-safe (letters, digits, '_', '.', '-'; at most 64)",
            )
        elif name in seen:
            problems.add(f"{where}.name", f"{name!r} is already used by prompts[{seen[name]}]")
        else:
            seen[name] = i
        variables: list[str] = []
        template = item.get("template")
        if template is None:
            problems.add(f"{where}.template", "is required (text with {variable} placeholders)")
        elif not isinstance(template, str) or not template.strip():
            problems.add(f"{where}.template", f"{template!r} must be a non-empty string")
        else:
            found = template_variables(template)
            if isinstance(found, str):
                problems.add(f"{where}.template", found)
            else:
                variables += found
        system = item.get("system")
        if system is not None:
            if not isinstance(system, str):
                problems.add(f"{where}.system", f"{system!r} must be a string")
            else:
                found = template_variables(system)
                if isinstance(found, str):
                    problems.add(f"{where}.system", found)
                else:
                    variables = [*found, *(v for v in variables if v not in found)]
        max_tokens = item.get("max_tokens")
        if max_tokens is not None:
            _number(
                problems, f"{where}.max_tokens", max_tokens, minimum=1, maximum=1_000_000,
                integer=True,
            )  # fmt: skip
        temperature = item.get("temperature")
        if temperature is not None:
            _number(problems, f"{where}.temperature", temperature, minimum=0, maximum=2)
        description = item.get("description")
        if description is not None and not isinstance(description, str):
            problems.add(f"{where}.description", f"{description!r} must be a string")
        target = item.get("model")
        route: Route | None = None
        model = alias = None
        if target is None:
            problems.add(
                f"{where}.model", 'is required (an [[llm_aliases]] name or "<route>:<model>")'
            )
        elif not isinstance(target, str) or not target.strip():
            problems.add(f"{where}.model", f"{target!r} must be a non-empty string")
        else:
            route_name, sep, rest = target.partition(":")
            found_alias = next((a for a in aliases if a.name == target), None)
            if found_alias is not None:
                alias, model = target, target
                first = found_alias.targets[0].route if found_alias.targets else ""
                route = by_name.get(first)
                if route is None:
                    problems.add(
                        f"{where}.model",
                        f"alias {target!r} has no target on a known route to send the call to",
                    )
            elif sep and route_name in by_name:
                route, model = by_name[route_name], rest.strip()
                if not model:
                    problems.add(f"{where}.model", f"{target!r} names no model after ':'")
            else:
                known_aliases = ", ".join(sorted(a.name for a in aliases)) or "none defined"
                known_routes = ", ".join(sorted(by_name)) or "none defined"
                problems.add(
                    f"{where}.model",
                    f"{target!r} is neither an [[llm_aliases]] name (aliases: {known_aliases}) "
                    f'nor "<route>:<model>" on a known route (routes: {known_routes})',
                )
            if route is not None and route.mcp:
                problems.add(
                    f"{where}.model", f"route {route.name!r} is an MCP route, not an LLM route"
                )
                route = None
        path = prompt_forward_path(route) if route is not None else ""
        if route is not None:
            owner = next((r for r in by_specificity if r.matches(path)), None)
            if owner is not route:
                problems.add(
                    f"{where}.model",
                    f"the call would go to {path!r}, which route "
                    f"{owner.name if owner else None!r} takes instead of {route.name!r}",
                )
        if len(problems.items) > before or route is None:
            continue
        assert isinstance(name, str) and isinstance(template, str) and isinstance(target, str)
        assert model is not None
        prompts.append(
            PromptRoute(
                name=name,
                target=target,
                route=route.name,
                model=model,
                alias=alias,
                api_family=route.llm_api_family,
                path=path,
                template=template,
                variables=tuple(variables),
                system=system,
                max_tokens=max_tokens,
                temperature=None if temperature is None else float(temperature),
                description=description,
                provider=route.llm_provider,
            )
        )
    return tuple(prompts)
