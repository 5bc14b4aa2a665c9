#!/usr/bin/env python3
"""A small MCP server built on the official Python SDK (`mcp` 2.3), used as a
known, deterministic upstream in MCPGuard's integration tests.

It exposes:

* tools
  - ``echo(message)``       returns ``message`` unchanged
  - ``add(a, b)``           returns ``a + b``
  - ``slow(seconds)``       sleeps, sending a progress notification every 100 ms
                            when the caller asked for progress (sent a progress token)
  - ``log(message, level)`` sends one logging notification (unless logging/setLevel
                            raised this connection's threshold above ``level``),
                            then returns ``message``
  - ``ask_user(question)``  elicits ``{"value": <string>}`` from the client and returns
                            the value (or ``decline`` / ``cancel``)
  - ``sample(prompt)``      asks the client to sample an LLM, returns the sampled text
  - ``list_roots()``        asks the client for its roots, returns them as JSON
* resources: ``echo://static`` and the template ``echo://item/{id}``
* prompt: ``greet(name)``, with completion for its ``name`` argument and for the
  template's ``id`` variable.

Elicitation, sampling and roots are written with the SDK's ``Resolve(...)``
dependencies rather than by calling the session directly: the SDK then picks
the mechanism that fits the negotiated protocol era - a standalone
server-to-client request (``elicitation/create``, ``sampling/createMessage``,
``roots/list``) on handshake-era connections (<= 2025-11-25), or an
``InputRequiredResult`` that the client answers by retrying the call with
``inputResponses`` on 2026-07-28 connections. The inputRequests keys are the
resolvers' ``module:qualname`` (``__main__:_ask``, ``__main__:_sample``,
``__main__:_roots`` when run as a script).

Note: the default 127.0.0.1 bind turns on the SDK's DNS-rebinding protection,
which only accepts Host headers 127.0.0.1:*, localhost:* and [::1]:*.

Usage:
    py_echo_server.py [--transport stdio|streamable-http] [--host 127.0.0.1] [--port 8000]
                      [--path /mcp] [--stateless] [--json-response]
"""

from __future__ import annotations

import argparse
import os
import json
import warnings
import weakref
from typing import Annotated, Any

import anyio
from mcp.server.mcpserver import (
    Context,
    Elicit,
    ElicitationResult,
    ListRoots,
    MCPServer,
    Resolve,
    Sample,
)
from mcp.server.mcpserver.resolve import AcceptedElicitation
from mcp_types import (
    Completion,
    CompletionArgument,
    CompletionContext,
    CreateMessageResult,
    EmptyResult,
    ListRootsResult,
    PromptReference,
    ResourceTemplateReference,
    SamplingMessage,
    SetLevelRequestParams,
    TextContent,
)
from pydantic import BaseModel

# Logging, roots and sampling are deprecated at 2026-07-28 but are exactly what this server exercises.
warnings.filterwarnings("ignore")

server = MCPServer(
    name="py-echo-server",
    version="1.0.0",
    instructions="Deterministic test server for MCPGuard integration tests.",
)

# Values offered by the completion handler (prompt argument `name`, template variable `id`).
_NAMES = ["alice", "alfred", "bob", "carol"]
_ITEM_IDS = ["1", "2", "3", "10", "42"]


# ---------------------------------------------------------------------------
# Plain tools
# ---------------------------------------------------------------------------


@server.tool()
def echo(message: str) -> str:
    """Return the message unchanged."""
    return message


@server.tool()
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@server.tool()
async def slow(seconds: float, ctx: Context) -> str:
    """Sleep for `seconds`, reporting progress every 100 ms if the caller sent a progress token."""
    steps = max(1, round(seconds * 10))
    for step in range(1, steps + 1):
        await anyio.sleep(seconds / steps)
        # A no-op when the request carried no progress token.
        await ctx.report_progress(step, steps, f"step {step}/{steps}")
    return f"slept {seconds}s"


# ---------------------------------------------------------------------------
# Fault tools: real misbehaviour for the gateway's fault tests
# ---------------------------------------------------------------------------


@server.tool()
def crash(code: int = 3) -> str:
    """Exit the whole server process at once, mid-call, with exit status `code`."""
    os._exit(code)


@server.tool()
async def hang() -> str:
    """Never answer."""
    await anyio.sleep_forever()
    return "unreachable"


_LEVELS = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]
# Threshold set by logging/setLevel (handshake era), per connection; "debug" until set.
_min_level: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _connection(session: Any) -> Any:
    # Each request gets its own ServerSession wrapper; the Connection behind it is per client.
    return getattr(session, "_connection", session)


async def _set_level(ctx: Any, params: SetLevelRequestParams) -> EmptyResult:
    """logging/setLevel handler; registering it also advertises the logging capability."""
    _min_level[_connection(ctx.session)] = params.level
    return EmptyResult()


server._lowlevel_server.add_request_handler("logging/setLevel", SetLevelRequestParams, _set_level)


@server.tool()
async def log(message: str, ctx: Context, level: str = "info") -> str:
    """Send `message` as a logging notification at `level`, then return it.

    Handshake-era clients receive it unless logging/setLevel raised the threshold
    above `level`; 2026-07-28 clients only when the request opted in to logs
    (`io.modelcontextprotocol/logLevel` in `_meta`) at or below `level`.
    """
    threshold = _min_level.get(_connection(ctx.session), "debug")
    if _LEVELS.index(level) >= _LEVELS.index(threshold):
        await ctx.log(level, message, logger_name="py-echo-server")  # type: ignore[arg-type]
    return message


# ---------------------------------------------------------------------------
# Tools that need the client: elicitation, sampling, roots
# ---------------------------------------------------------------------------


class Answer(BaseModel):
    """The form the client fills in for `ask_user`: a single string field."""

    value: str


def _ask(question: str) -> Elicit[Answer]:
    # Resolver: receives the tool argument `question` by name.
    return Elicit(question, Answer)


@server.tool()
def ask_user(
    question: str,
    answer: Annotated[ElicitationResult[Answer], Resolve(_ask)],
) -> str:
    """Ask the user `question` (form elicitation) and return the answered value."""
    if isinstance(answer, AcceptedElicitation):
        return answer.data.value
    return answer.action  # "decline" or "cancel"


def _sample(prompt: str) -> Sample:
    return Sample(
        [SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
        max_tokens=100,
    )


@server.tool()
def sample(
    prompt: str,
    completion: Annotated[CreateMessageResult, Resolve(_sample)],
) -> str:
    """Ask the client's LLM to complete `prompt` and return the sampled text."""
    content = completion.content
    if isinstance(content, TextContent):
        return content.text
    return json.dumps(content.model_dump(mode="json", by_alias=True, exclude_none=True))


def _roots() -> ListRoots:
    return ListRoots()


@server.tool()
def list_roots(roots: Annotated[ListRootsResult, Resolve(_roots)]) -> str:
    """Ask the client for its roots and return them as a JSON list of {uri, name}."""
    return json.dumps([r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in roots.roots])


# ---------------------------------------------------------------------------
# Resources and prompts
# ---------------------------------------------------------------------------


@server.resource("echo://static", name="static", mime_type="text/plain")
def static_resource() -> str:
    """A fixed text resource."""
    return "static resource content"


@server.resource("echo://item/{id}", name="item", mime_type="text/plain")
def item_resource(id: str) -> str:  # noqa: A002 - the URI variable is called `id`
    """A templated resource echoing its id."""
    return f"item {id}"


@server.prompt()
def greet(name: str) -> str:
    """A one-message prompt greeting `name`."""
    return f"Hello, {name}! Please greet them back."


@server.completion()
async def complete(
    ref: PromptReference | ResourceTemplateReference,
    argument: CompletionArgument,
    context: CompletionContext | None,
) -> Completion | None:
    """Prefix completion for greet's `name` and the item template's `id`."""
    if isinstance(ref, PromptReference) and ref.name == "greet" and argument.name == "name":
        candidates = _NAMES
    elif isinstance(ref, ResourceTemplateReference) and argument.name == "id":
        candidates = _ITEM_IDS
    else:
        return None
    values = [c for c in candidates if c.startswith(argument.value)]
    return Completion(values=values, total=len(values), has_more=False)


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--path", default="/mcp", help="HTTP endpoint path (default /mcp)")
    parser.add_argument(
        "--stateless", action="store_true", help="stateless HTTP: no Mcp-Session-Id (no legacy back-channel)"
    )
    parser.add_argument("--json-response", action="store_true", help="answer POSTs with JSON instead of SSE")
    parser.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate (with --tls-key)")
    parser.add_argument("--tls-key", help="the PEM private key of --tls-cert")
    args = parser.parse_args()

    if args.transport == "stdio":
        server.run("stdio")
    elif args.tls_cert:
        import uvicorn

        app = server.streamable_http_app(
            streamable_http_path=args.path,
            stateless_http=args.stateless,
            json_response=args.json_response,
            host=args.host,
        )
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            ssl_certfile=args.tls_cert,
            ssl_keyfile=args.tls_key,
            log_level="warning",
        )
    else:
        server.run(
            "streamable-http",
            host=args.host,
            port=args.port,
            streamable_http_path=args.path,
            stateless_http=args.stateless,
            json_response=args.json_response,
        )


if __name__ == "__main__":
    main()
