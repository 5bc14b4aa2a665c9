#!/usr/bin/env python3
"""MCPGuard conformance fixture: an upstream MCP server for the conformance suite.

This server implements the fixtures that the server scenarios of
`@modelcontextprotocol/conformance` look for (tools such as `test_simple_text`,
resources such as `test://static-text`, prompts such as `test_simple_prompt`,
completion, logging, progress, elicitation/sampling, subscriptions, the
multi-round-trip `InputRequiredResult` flow, ...). MCPGuard's tests run the suite
against it directly (to know what the upstream itself passes) and through the
gateway (to check the gateway does not lose anything on the way).

One process serves both protocol eras the suite tests, on the same endpoint:

* 2025-11-25 (handshake era): `initialize` handshake, `Mcp-Session-Id`
  sessions, server-to-client requests (sampling, elicitation, roots) sent on the
  request's SSE stream, `logging/setLevel`, `resources/subscribe`.
* 2026-07-28 (stateless era): per-request `_meta` envelope, `server/discover`,
  no back-channel. Whatever a tool needs from the client is asked for with an
  `InputRequiredResult` and arrives on the client's retry (`inputResponses`,
  with the opaque `requestState` sealed by the SDK's `RequestStateBoundary`).
  Change notifications ride `subscriptions/listen` streams.

The SDK (`mcp` 2.3) picks the era per request from the `MCP-Protocol-Version`
header (HTTP) or from the first message (stdio); the handlers below adapt with
`is_modern(ctx)` where the eras differ, mostly through `ask()`, which turns "I
need this from the client" into a back-channel request or an
`InputRequiredResult` as the era requires.

Beyond the scored scenarios it also carries what the suite's unscored ones look
for: a tool with an `x-mcp-header` parameter (SEP-2243 `Mcp-Param-*` header
validation, done by the SDK), `test_reconnection` (SSE polling/resumption via an
in-memory event store), `json_schema_2020_12_tool`, and a small in-memory
implementation of the tasks extension (`io.modelcontextprotocol/tasks`,
SEP-2663: `tasks/get`, `tasks/update`, `tasks/cancel` and the `greet`,
`slow_compute`, `failing_job`, ... fixtures), which the SDK does not provide.

Usage:
    python conformance_server.py --transport streamable-http --host 127.0.0.1 --port 3001
        serves http://127.0.0.1:3001/mcp
    python conformance_server.py --transport stdio

Built on the low-level `mcp.server.lowlevel.Server` rather than `MCPServer`:
the fixture needs exact wire shapes (hand-written input schemas, raw
elicitation schemas, `logging/setLevel` and `resources/subscribe` handlers,
era-dependent results) that the decorator API derives for you.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import io
import json
import logging
import struct
import sys
import time
import uuid
import warnings
import wave
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio
import anyio.abc
import mcp_types as types
from mcp.server.caching import CacheHint
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel.server import NotificationOptions, Server
from mcp.server.models import InitializationOptions
from mcp.server.request_state import RequestStateBoundary, RequestStateSecurity
from mcp.server.streamable_http import EventCallback, EventId, EventMessage, EventStore, StreamId
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourceUpdated,
    ToolsListChanged,
)
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.shared.inbound import decode_header_value
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, Field

# The fixture deliberately uses features that 2026-07-28 deprecates (logging,
# sampling, roots) because the 2025-11-25 scenarios require them.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

log = logging.getLogger("conformance-fixture")

SERVER_NAME = "mcpguard-conformance-fixture"
SERVER_VERSION = "1.0.0"

Ctx = ServerRequestContext[Any, Any]


# ---------------------------------------------------------------------------
# Static payloads
# ---------------------------------------------------------------------------


def _png_1x1_red() -> bytes:
    """A valid 1x1 red RGB PNG, built rather than pasted so it is easy to check."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", binascii.crc32(body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit, truecolour
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte + one red pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _wav_silence() -> bytes:
    """10 ms of 8 kHz 16-bit mono silence as a WAV file."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * 80)
    return buf.getvalue()


PNG_B64 = base64.b64encode(_png_1x1_red()).decode()
WAV_B64 = base64.b64encode(_wav_silence()).decode()

STATIC_TEXT = "This is the content of the static text resource."
WATCHED_TEXT = "This resource exists so clients can subscribe to it."
TEMPLATE_URI = "test://template/{id}/data"
TEMPLATE_PREFIX, TEMPLATE_SUFFIX = "test://template/", "/data"


# ---------------------------------------------------------------------------
# Era helpers
# ---------------------------------------------------------------------------


def is_modern(ctx: Ctx) -> bool:
    """True on the 2026-07-28 stateless wire (no back-channel, no handshake)."""
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


def text(value: str) -> types.TextContent:
    return types.TextContent(type="text", text=value)


def tool_text(value: str, *, is_error: bool = False) -> types.CallToolResult:
    return types.CallToolResult(content=[text(value)], is_error=is_error)


def client_supports(ctx: Ctx, capability: str) -> bool:
    """Whether the client declared `capability` (handshake or per-request `_meta`)."""
    caps = ctx.session.client_capabilities
    return caps is not None and getattr(caps, capability, None) is not None


def missing_capability(capability: str) -> MCPError:
    """The -32021 MissingRequiredClientCapabilityError; `requiredCapabilities` is a
    ClientCapabilities object keyed by the missing capability, e.g. {"sampling": {}}."""
    return MCPError(
        code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
        message=f"This request requires the client capability '{capability}'",
        data={"requiredCapabilities": {capability: {}}},
    )


# What each kind of input request needs from the client, and what answers it.
_CAPABILITY_FOR = {"elicitation/create": "elicitation", "sampling/createMessage": "sampling", "roots/list": "roots"}
_ANSWER_TYPES: dict[str, tuple[type[BaseModel], ...]] = {
    "elicitation/create": (types.ElicitResult,),
    "sampling/createMessage": (types.CreateMessageResult, types.CreateMessageResultWithTools),
    "roots/list": (types.ListRootsResult,),
}


def elicit_request(message: str, schema: dict[str, Any]) -> types.ElicitRequest:
    return types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=schema))


def sampling_request(prompt: str, max_tokens: int) -> types.CreateMessageRequest:
    return types.CreateMessageRequest(
        params=types.CreateMessageRequestParams(
            messages=[types.SamplingMessage(role="user", content=text(prompt))],
            max_tokens=max_tokens,
        )
    )


def roots_request() -> types.ListRootsRequest:
    return types.ListRootsRequest(params=types.RequestParams())


async def ask(
    ctx: Ctx,
    params: types.InputResponseRequestParams,
    requests: dict[str, types.InputRequest],
    *,
    request_state: str | None = None,
) -> dict[str, Any] | types.InputRequiredResult:
    """Obtain the client's answers to `requests`, whichever the era.

    Handshake era: each request goes to the client over this request's stream
    (a real `elicitation/create`, `sampling/createMessage` or `roots/list`) and
    the answers are returned.

    Stateless era: answers are taken from the retry's `inputResponses` (keys we
    did not ask for are ignored; a key whose answer has the wrong shape counts
    as unanswered). If anything is still missing, the `InputRequiredResult`
    asking for it (carrying `request_state`) is returned instead, and the
    handler passes it straight back as its result.

    Raises the -32021 error if the client did not declare a needed capability:
    a server must not ask for what the client cannot provide.
    """
    for request in requests.values():
        capability = _CAPABILITY_FOR[request.method]
        if not client_supports(ctx, capability):
            raise missing_capability(capability)

    if is_modern(ctx):
        provided = params.input_responses or {}
        answers = {
            key: provided[key]
            for key, request in requests.items()
            if isinstance(provided.get(key), _ANSWER_TYPES[request.method])
        }
        missing = {key: request for key, request in requests.items() if key not in answers}
        if missing:
            return types.InputRequiredResult(input_requests=missing, request_state=request_state)
        return answers

    answers = {}
    for key, request in requests.items():
        answers[key] = await ctx.session.send_request(
            request,  # type: ignore[arg-type]
            _ANSWER_TYPES[request.method][0],
            metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
        )
    return answers


def describe_answer(answer: Any) -> str:
    """A short human-readable rendering of one client answer."""
    if isinstance(answer, types.ElicitResult):
        return f"action={answer.action}, content={json.dumps(answer.content)}"
    if isinstance(answer, (types.CreateMessageResult, types.CreateMessageResultWithTools)):
        content = answer.content
        if isinstance(content, types.TextContent):
            return content.text
        return json.dumps(answer.model_dump(mode="json", by_alias=True, exclude_none=True)["content"])
    if isinstance(answer, types.ListRootsResult):
        return ", ".join(str(root.uri) for root in answer.roots) or "(no roots)"
    return repr(answer)


def elicited(answer: Any, field: str, default: str = "") -> str:
    """Field `field` of an accepted elicitation answer, or `default`."""
    if isinstance(answer, types.ElicitResult) and answer.action == "accept" and answer.content:
        value = answer.content.get(field)
        if value is not None:
            return str(value)
    return default


def encode_state(value: dict[str, Any]) -> str:
    """Serialize our requestState; the SDK's RequestStateBoundary seals (encrypts
    and authenticates) it on the way out."""
    return json.dumps(value, sort_keys=True)


def decode_state(params: types.InputResponseRequestParams) -> dict[str, Any]:
    """The plaintext requestState this server minted (already verified by the boundary)."""
    if not params.request_state:
        return {}
    try:
        value = json.loads(params.request_state)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------
# Mutable fixture state
# ---------------------------------------------------------------------------


class FixtureState:
    """Process-wide state: toggled dynamic entries, log levels, subscriptions."""

    def __init__(self) -> None:
        self.bus = InMemorySubscriptionBus()
        self.dynamic_tool_enabled = False
        self.dynamic_prompt_enabled = False
        # logging/setLevel per connection (handshake era only); the key is the
        # Mcp-Session-Id, or None on stdio / session-less connections.
        self.log_levels: dict[str | None, str] = {}
        self.subscriptions: dict[str | None, set[str]] = {}


STATE = FixtureState()

_LOG_ORDER = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"]


def connection_key(ctx: Ctx) -> str | None:
    headers = getattr(ctx.request, "headers", None)
    return headers.get("mcp-session-id") if headers is not None else None


async def send_log(ctx: Ctx, level: types.LoggingLevel, message: str) -> None:
    """Log to the client on this request's stream.

    Handshake era: honours the level set with logging/setLevel (default: all).
    Stateless era: the SDK only delivers when the request's `_meta` opted in
    with `io.modelcontextprotocol/logLevel`, at that level or above.
    """
    if not is_modern(ctx):
        threshold = STATE.log_levels.get(connection_key(ctx), "debug")
        if _LOG_ORDER.index(level) < _LOG_ORDER.index(threshold):
            return
    await ctx.session.send_log_message(level=level, data=message, logger=SERVER_NAME, related_request_id=ctx.request_id)


# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------

ToolHandler = Callable[[Ctx, types.CallToolRequestParams], Awaitable[Any]]
"""Returns a CallToolResult, an InputRequiredResult, or a CreateTaskResult dict."""


@dataclass
class FixtureTool:
    definition: types.Tool
    handler: ToolHandler


TOOLS: dict[str, FixtureTool] = {}
NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}}


def tool(
    name: str, description: str, input_schema: dict[str, Any] | None = None
) -> Callable[[ToolHandler], ToolHandler]:
    """Register a tool; registration order is the (deterministic) tools/list order."""

    def register(handler: ToolHandler) -> ToolHandler:
        definition = types.Tool(name=name, description=description, input_schema=input_schema or NO_ARGS)
        TOOLS[name] = FixtureTool(definition, handler)
        return handler

    return register


def string_args(*names: str) -> dict[str, Any]:
    """Input schema with the given required string arguments."""
    return {
        "type": "object",
        "properties": {name: {"type": "string"} for name in names},
        "required": list(names),
    }


def arg(params: types.CallToolRequestParams, name: str, default: str = "") -> str:
    value = (params.arguments or {}).get(name, default)
    return value if isinstance(value, str) else json.dumps(value)


# -- content types ----------------------------------------------------------


@tool("test_simple_text", "Returns a simple text content block.")
async def test_simple_text(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return tool_text("This is a simple text response for testing.")


@tool("test_image_content", "Returns an image content block (1x1 red PNG).")
async def test_image_content(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return types.CallToolResult(content=[types.ImageContent(type="image", data=PNG_B64, mime_type="image/png")])


@tool("test_audio_content", "Returns an audio content block (short WAV of silence).")
async def test_audio_content(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return types.CallToolResult(content=[types.AudioContent(type="audio", data=WAV_B64, mime_type="audio/wav")])


@tool("test_embedded_resource", "Returns an embedded text resource.")
async def test_embedded_resource(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    resource = types.TextResourceContents(
        uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
    )
    return types.CallToolResult(content=[types.EmbeddedResource(type="resource", resource=resource)])


@tool("test_multiple_content_types", "Returns text, image and embedded resource content together.")
async def test_multiple_content_types(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    resource = types.TextResourceContents(
        uri="test://mixed-content-resource",
        mime_type="application/json",
        text=json.dumps({"test": "data", "value": 123}),
    )
    return types.CallToolResult(
        content=[
            text("Multiple content types test:"),
            types.ImageContent(type="image", data=PNG_B64, mime_type="image/png"),
            types.EmbeddedResource(type="resource", resource=resource),
        ]
    )


@tool("test_error_handling", "Always fails with a tool-level error (isError: true).")
async def test_error_handling(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return tool_text("This tool intentionally returns an error for testing", is_error=True)


# -- notifications during a call ----------------------------------------------


async def _three_logs(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    await send_log(ctx, "info", "Tool execution started")
    await anyio.sleep(0.05)
    await send_log(ctx, "info", "Tool processing data")
    await anyio.sleep(0.05)
    await send_log(ctx, "info", "Tool execution completed")
    return tool_text("Tool with logging executed successfully")


tool("test_tool_with_logging", "Sends three info log notifications while it runs.")(_three_logs)
# The stateless-era scenario probes under this name that no log is sent unless
# the request opted in with `_meta["io.modelcontextprotocol/logLevel"]`.
tool("test_logging_tool", "Sends three info log notifications while it runs (same as test_tool_with_logging).")(
    _three_logs
)


@tool("test_tool_with_progress", "Reports progress 0/100, 50/100, 100/100 when given a progressToken.")
async def test_tool_with_progress(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    # report_progress is a no-op when the request carried no progressToken.
    for step, progress in enumerate((0, 50, 100)):
        if step:
            await anyio.sleep(0.05)
        await ctx.session.report_progress(progress, 100, f"step {step + 1} of 3")
    return tool_text("Tool with progress completed")


@tool("test_reconnection", "Closes its SSE response stream mid-call, then answers (resumable via Last-Event-ID).")
async def test_reconnection(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    # Only the handshake-era streamable HTTP transport with an event store can
    # do this; elsewhere close_sse_stream is None and the call just answers.
    if ctx.close_sse_stream is not None:
        await ctx.close_sse_stream()
        await anyio.sleep(0.2)
    return tool_text("Reconnection test completed")


# -- asking the client (elicitation, sampling, roots) -------------------------


@tool("test_sampling", "Asks the client's LLM (sampling/createMessage) to answer the prompt.", string_args("prompt"))
async def test_sampling(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    got = await ask(ctx, params, {"completion": sampling_request(arg(params, "prompt"), 100)})
    if isinstance(got, types.InputRequiredResult):
        return got
    return tool_text(f"LLM response: {describe_answer(got['completion'])}")


_USER_INFO_SCHEMA = {
    "type": "object",
    "properties": {
        "username": {"type": "string", "description": "User's response"},
        "email": {"type": "string", "description": "User's email address"},
    },
    "required": ["username", "email"],
}


@tool("test_elicitation", "Asks the user (elicitation/create) for a username and email.", string_args("message"))
async def test_elicitation(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    got = await ask(ctx, params, {"user_info": elicit_request(arg(params, "message"), _USER_INFO_SCHEMA)})
    if isinstance(got, types.InputRequiredResult):
        return got
    return tool_text(f"User response: {describe_answer(got['user_info'])}")


_SEP1034_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "User name", "default": "John Doe"},
        "age": {"type": "integer", "description": "User age", "default": 30},
        "score": {"type": "number", "description": "User score", "default": 95.5},
        "status": {
            "type": "string",
            "description": "User status",
            "enum": ["active", "inactive", "pending"],
            "default": "active",
        },
        "verified": {"type": "boolean", "description": "Verification status", "default": True},
    },
    "required": [],
}


@tool("test_elicitation_sep1034_defaults", "Elicits a form whose primitive fields all carry defaults (SEP-1034).")
async def test_elicitation_sep1034_defaults(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    got = await ask(ctx, params, {"profile": elicit_request("Please review your profile", _SEP1034_SCHEMA)})
    if isinstance(got, types.InputRequiredResult):
        return got
    return tool_text(f"Elicitation completed: {describe_answer(got['profile'])}")


_SEP1330_SCHEMA = {
    "type": "object",
    "properties": {
        # 1. untitled single-select
        "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
        # 2. titled single-select
        "titledSingle": {
            "type": "string",
            "oneOf": [
                {"const": "value1", "title": "First Option"},
                {"const": "value2", "title": "Second Option"},
                {"const": "value3", "title": "Third Option"},
            ],
        },
        # 3. legacy titled single-select (deprecated enumNames)
        "legacyEnum": {
            "type": "string",
            "enum": ["opt1", "opt2", "opt3"],
            "enumNames": ["Option One", "Option Two", "Option Three"],
        },
        # 4. untitled multi-select
        "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
        # 5. titled multi-select
        "titledMulti": {
            "type": "array",
            "items": {
                "anyOf": [
                    {"const": "value1", "title": "First Choice"},
                    {"const": "value2", "title": "Second Choice"},
                    {"const": "value3", "title": "Third Choice"},
                ]
            },
        },
    },
    "required": [],
}


@tool("test_elicitation_sep1330_enums", "Elicits a form using all five enum schema variants (SEP-1330).")
async def test_elicitation_sep1330_enums(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    got = await ask(ctx, params, {"choices": elicit_request("Please make your selections", _SEP1330_SCHEMA)})
    if isinstance(got, types.InputRequiredResult):
        return got
    return tool_text(f"Elicitation completed: {describe_answer(got['choices'])}")


@tool("test_streaming_elicitation", "Elicits a confirmation; never sends a standalone request on a 2026-07-28 stream.")
async def test_streaming_elicitation(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    got = await ask(ctx, params, {"confirm": elicit_request("Continue?", schema)})
    if isinstance(got, types.InputRequiredResult):
        return got
    return tool_text(f"Streaming elicitation completed: {describe_answer(got['confirm'])}")


@tool("test_missing_capability", "Needs the client's sampling capability; without it fails with -32021.")
async def test_missing_capability(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    if not client_supports(ctx, "sampling"):
        raise missing_capability("sampling")
    got = await ask(ctx, params, {"completion": sampling_request("Say hello", 20)})
    if isinstance(got, types.InputRequiredResult):
        return got
    return tool_text(f"Sampling capability present; LLM said: {describe_answer(got['completion'])}")


# -- multi-round-trip requests (InputRequiredResult, SEP-2322) ------------------

_NAME_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
_CONFIRM_SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


@tool("test_input_required_result_elicitation", "Asks for the user's name, then greets them.")
async def test_irr_elicitation(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    got = await ask(ctx, params, {"user_name": elicit_request("What is your name?", _NAME_SCHEMA)})
    if isinstance(got, types.InputRequiredResult):
        return got
    return tool_text(f"Hello, {elicited(got['user_name'], 'name', 'stranger')}!")


@tool("test_input_required_result_sampling", "Asks the client's LLM for the capital of France.")
async def test_irr_sampling(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    got = await ask(ctx, params, {"capital_question": sampling_request("What is the capital of France?", 100)})
    if isinstance(got, types.InputRequiredResult):
        return got
    return tool_text(f"The LLM answered: {describe_answer(got['capital_question'])}")


@tool("test_input_required_result_list_roots", "Asks the client for its roots and lists them.")
async def test_irr_list_roots(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    got = await ask(ctx, params, {"client_roots": roots_request()})
    if isinstance(got, types.InputRequiredResult):
        return got
    return tool_text(f"Client roots: {describe_answer(got['client_roots'])}")


async def _confirm_with_state(
    ctx: Ctx, params: types.CallToolRequestParams, purpose: str
) -> types.CallToolResult | types.InputRequiredResult:
    """Ask for a confirmation, carrying `requestState` through the round trip.

    The state is sealed by the SDK's RequestStateBoundary: a tampered echo is
    rejected before this handler runs, so a state that reaches us is ours.
    Without a valid state the confirmation is asked (again).
    """
    state = {"purpose": purpose, "round": 1}
    if is_modern(ctx) and decode_state(params) != state:
        params = params.model_copy(update={"input_responses": None})  # answers without our state don't count
    got = await ask(
        ctx, params, {"confirm": elicit_request("Please confirm", _CONFIRM_SCHEMA)}, request_state=encode_state(state)
    )
    if isinstance(got, types.InputRequiredResult):
        return got
    return tool_text(f"state-ok: requestState verified ({purpose}); {describe_answer(got['confirm'])}")


@tool("test_input_required_result_request_state", "Round-trips an opaque requestState; answers 'state-ok'.")
async def test_irr_request_state(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    return await _confirm_with_state(ctx, params, "request-state")


@tool("test_input_required_result_tampered_state", "Issues an integrity-protected requestState; rejects tampering.")
async def test_irr_tampered_state(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    return await _confirm_with_state(ctx, params, "tamper-check")


@tool("test_input_required_result_multiple_inputs", "Asks for an elicitation, a sampling and the roots at once.")
async def test_irr_multiple_inputs(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    requests: dict[str, types.InputRequest] = {
        "user_name": elicit_request("What is your name?", _NAME_SCHEMA),
        "greeting": sampling_request("Generate a greeting", 50),
        "client_roots": roots_request(),
    }
    got = await ask(ctx, params, requests, request_state=encode_state({"purpose": "multiple-inputs"}))
    if isinstance(got, types.InputRequiredResult):
        return got
    return tool_text(
        f"name={elicited(got['user_name'], 'name')}; greeting={describe_answer(got['greeting'])}; "
        f"roots={describe_answer(got['client_roots'])}"
    )


_COLOR_SCHEMA = {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]}


@tool("test_input_required_result_multi_round", "Two dependent questions; the first answer travels in requestState.")
async def test_irr_multi_round(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    step1 = elicit_request("Step 1: What is your name?", _NAME_SCHEMA)
    step2 = elicit_request("Step 2: What is your favorite color?", _COLOR_SCHEMA)
    state = decode_state(params)

    if state.get("step") == 2:  # round 3 (stateless era): the name is in the state
        got = await ask(ctx, params, {"step2": step2}, request_state=params.request_state)
        if isinstance(got, types.InputRequiredResult):
            return got
        return tool_text(f"{state.get('name', '')}'s favorite color is {elicited(got['step2'], 'color')}")

    got = await ask(ctx, params, {"step1": step1}, request_state=encode_state({"step": 1}))
    if isinstance(got, types.InputRequiredResult):
        return got
    name = elicited(got["step1"], "name")
    if is_modern(ctx):  # round 2: ask the second question, remembering the first answer
        return types.InputRequiredResult(
            input_requests={"step2": step2}, request_state=encode_state({"step": 2, "name": name})
        )
    got = await ask(ctx, params, {"step2": step2})
    assert not isinstance(got, types.InputRequiredResult)
    return tool_text(f"{name}'s favorite color is {elicited(got['step2'], 'color')}")


@tool("test_input_required_result_capabilities", "Asks only for what the client declared it can provide.")
async def test_irr_capabilities(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult:
    candidates: dict[str, types.InputRequest] = {
        "user_name": elicit_request("What is your name?", _NAME_SCHEMA),
        "greeting": sampling_request("Generate a greeting", 50),
        "client_roots": roots_request(),
    }
    requests = {k: r for k, r in candidates.items() if client_supports(ctx, _CAPABILITY_FOR[r.method])}
    if not requests:
        return tool_text("The client declared none of elicitation, sampling or roots; nothing was asked.")
    got = await ask(ctx, params, requests)
    if isinstance(got, types.InputRequiredResult):
        return got
    return tool_text("; ".join(f"{key}: {describe_answer(answer)}" for key, answer in got.items()))


# -- JSON Schema 2020-12 ------------------------------------------------------

_JSON_SCHEMA_2020_12 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


@tool("json_schema_2020_12_tool", "Tool with JSON Schema 2020-12 features", _JSON_SCHEMA_2020_12)
async def json_schema_2020_12_tool(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return tool_text(f"Received: {json.dumps(params.arguments or {}, sort_keys=True)}")


# -- custom request headers (SEP-2243, 2026-07-28) -------------------------------

_HEADER_PARAM_SCHEMA = {
    "type": "object",
    "properties": {
        # On the 2026-07-28 HTTP wire the client mirrors this argument into an
        # `Mcp-Param-Region` header; the SDK checks header and body agree
        # (Base64 `=?base64?...?=` values decoded) and rejects a mismatch with
        # HTTP 400 / -32020 before this handler runs.
        "region": {"type": "string", "description": "Region to operate in", "x-mcp-header": "Region"},
    },
    "required": ["region"],
}


@tool(
    "test_header_param",
    "Echoes its 'region' argument, which is mirrored into the Mcp-Param-Region header.",
    _HEADER_PARAM_SCHEMA,
)
async def test_header_param(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return tool_text(f"region={arg(params, 'region')}")


# -- list mutation hooks --------------------------------------------------------


async def _dynamic_tool(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return tool_text("This tool is toggled by test_trigger_tool_change.")


DYNAMIC_TOOL = FixtureTool(
    types.Tool(name="test_dynamic_tool", description="Present only while toggled on.", input_schema=NO_ARGS),
    _dynamic_tool,
)


@tool("test_trigger_tool_change", "Toggles test_dynamic_tool and announces that the tool list changed.")
async def test_trigger_tool_change(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    STATE.dynamic_tool_enabled = not STATE.dynamic_tool_enabled
    await STATE.bus.publish(ToolsListChanged())  # subscriptions/listen streams (2026-07-28)
    if not is_modern(ctx):
        await ctx.session.send_tool_list_changed()  # the session's standalone stream (2025-11-25)
    state = "added" if STATE.dynamic_tool_enabled else "removed"
    return tool_text(f"test_dynamic_tool {state}; tools list changed")


@tool("test_trigger_prompt_change", "Toggles test_dynamic_prompt and announces that the prompt list changed.")
async def test_trigger_prompt_change(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    STATE.dynamic_prompt_enabled = not STATE.dynamic_prompt_enabled
    await STATE.bus.publish(PromptsListChanged())
    if not is_modern(ctx):
        await ctx.session.send_prompt_list_changed()
    state = "added" if STATE.dynamic_prompt_enabled else "removed"
    return tool_text(f"test_dynamic_prompt {state}; prompts list changed")


@tool("test_trigger_resource_update", "Announces that test://watched-resource was updated.")
async def test_trigger_resource_update(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    uri = "test://watched-resource"
    await STATE.bus.publish(ResourceUpdated(uri=uri))
    subscribed = uri in STATE.subscriptions.get(connection_key(ctx), set())
    if not is_modern(ctx) and subscribed:
        await ctx.session.send_resource_updated(uri)
    return tool_text(f"{uri} updated (subscribed on this connection: {subscribed})")


# -- Tasks extension (io.modelcontextprotocol/tasks, SEP-2663, 2026-07-28) -------
#
# The SDK has no tasks implementation, so the fixture carries a small one: an
# in-memory task store, the tasks/get, tasks/update and tasks/cancel methods
# (registered in build_server) and a few task-supporting tools. A tool call
# becomes a task only on the 2026-07-28 wire and only when the request's
# `_meta` client capabilities declare the extension; otherwise optional-task
# tools run synchronously and task-required ones fail with -32021.

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
TASK_TTL_MS = 10 * 60 * 1000
TASK_POLL_INTERVAL_MS = 200


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tasks_negotiated(ctx: Ctx) -> bool:
    caps = ctx.session.client_capabilities
    return is_modern(ctx) and caps is not None and TASKS_EXTENSION in (caps.extensions or {})


def tasks_required_error() -> MCPError:
    return MCPError(
        code=types.MISSING_REQUIRED_CLIENT_CAPABILITY,
        message=f"This request requires the client extension '{TASKS_EXTENSION}'",
        data={"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}},
    )


class TaskCancelled(Exception):
    """Raised inside a task's work when tasks/cancel arrives while it waits for input."""


@dataclass
class TaskRecord:
    task_id: str
    created_at: str
    last_updated_at: str
    status: str = "working"  # working | input_required | completed | failed | cancelled
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    pending: dict[str, types.InputRequest] = field(default_factory=dict)
    answers: dict[str, Any] = field(default_factory=dict)
    changed: anyio.Event = field(default_factory=anyio.Event)
    created_monotonic: float = field(default_factory=time.monotonic)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)

    @property
    def terminal(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")

    def set_status(self, status: str) -> None:
        if not self.terminal:
            self.status = status
            self.last_updated_at = utc_now()

    def envelope(self) -> dict[str, Any]:
        """The Task fields shared by CreateTaskResult and tasks/get."""
        return {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": self.created_at,
            "lastUpdatedAt": self.last_updated_at,
            "ttlMs": TASK_TTL_MS,
            "pollIntervalMs": TASK_POLL_INTERVAL_MS,
        }

    def detailed(self) -> dict[str, Any]:
        """DetailedTask (tasks/get): the outcome is inlined, there is no tasks/result."""
        body = self.envelope()
        if self.status == "completed" and self.result is not None:
            body["result"] = self.result
        elif self.status == "failed" and self.error is not None:
            body["error"] = self.error
        elif self.status == "input_required":
            body["inputRequests"] = {
                key: request.model_dump(mode="json", by_alias=True, exclude_none=True)
                for key, request in self.pending.items()
            }
        return body

    async def ask(self, requests: dict[str, types.InputRequest]) -> dict[str, Any]:
        """Park the task in input_required until tasks/update answered every request."""
        self.pending.update(requests)
        self.set_status("input_required")
        while any(key not in self.answers for key in requests):
            await self.changed.wait()
            self.changed = anyio.Event()
            if self.status == "cancelled":
                raise TaskCancelled
        self.set_status("working")
        return {key: self.answers[key] for key in requests}

    def answer(self, responses: dict[str, Any]) -> None:
        """Apply tasks/update input responses; unknown keys are ignored."""
        for key, raw in responses.items():
            request = self.pending.get(key)
            if request is None:
                continue
            answer = None
            for answer_type in _ANSWER_TYPES[request.method]:
                try:
                    answer = answer_type.model_validate(raw, by_name=False)
                    break
                except ValueError:
                    continue
            if answer is None:
                raise MCPError(code=types.INVALID_PARAMS, message=f"inputResponses[{key!r}] has the wrong shape")
            del self.pending[key]
            self.answers[key] = answer
        self.last_updated_at = utc_now()
        self.changed.set()


TaskWork = Callable[[TaskRecord], Awaitable[types.CallToolResult]]


class TaskStore:
    """In-memory task table; task work runs in the server lifespan's task group."""

    def __init__(self) -> None:
        self.tasks: dict[str, TaskRecord] = {}
        self.task_group: anyio.abc.TaskGroup | None = None

    def start(self, work: TaskWork) -> TaskRecord:
        if self.task_group is None:
            raise MCPError(code=types.INTERNAL_ERROR, message="Task runner is not available")
        now = utc_now()
        record = TaskRecord(task_id=f"task-{uuid.uuid4().hex}", created_at=now, last_updated_at=now)
        # Stored before the CreateTaskResult is returned, so an immediate
        # tasks/get resolves (durable create).
        self.tasks[record.task_id] = record
        self.task_group.start_soon(self._run, record, work)
        return record

    async def _run(self, record: TaskRecord, work: TaskWork) -> None:
        with record.scope:
            try:
                result = await work(record)
            except TaskCancelled:
                return
            except MCPError as exc:
                record.error = {"code": exc.error.code, "message": exc.error.message}
                record.set_status("failed")
            except Exception as exc:  # a crash is a protocol-level failure, not a tool error
                log.exception("task %s crashed", record.task_id)
                record.error = {"code": types.INTERNAL_ERROR, "message": f"Task failed: {exc}"}
                record.set_status("failed")
            else:
                # A tool error (isError) still *completed*; "failed" is for protocol errors.
                record.result = result.model_dump(mode="json", by_alias=True, exclude_none=True)
                record.set_status("completed")
            record.changed.set()

    def get(self, task_id: str) -> TaskRecord:
        self._expire()
        record = self.tasks.get(task_id)
        if record is None:
            raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown task: {task_id}", data={"taskId": task_id})
        return record

    def cancel(self, record: TaskRecord) -> None:
        if not record.terminal:
            record.set_status("cancelled")
            record.scope.cancel()
            record.changed.set()

    def _expire(self) -> None:
        """Forget finished tasks older than their ttlMs (counted from creation)."""
        cutoff = time.monotonic() - TASK_TTL_MS / 1000
        for task_id, record in list(self.tasks.items()):
            if record.terminal and record.created_monotonic < cutoff:
                del self.tasks[task_id]


TASKS = TaskStore()


async def run_as_task_or_sync(
    ctx: Ctx, work: TaskWork, sync: Callable[[], Awaitable[types.CallToolResult | types.InputRequiredResult]] | None
) -> types.CallToolResult | types.InputRequiredResult | dict[str, Any]:
    """Create a task (CreateTaskResult) when the client negotiated the extension.

    Otherwise run `sync` (optional task support) or, when the tool requires a
    task (`sync` is None), fail with -32021 naming the extension.
    """
    if tasks_negotiated(ctx):
        record = TASKS.start(work)
        return {"resultType": "task", **record.envelope()}
    if sync is None:
        raise tasks_required_error()
    return await sync()


def _number_arg(params: types.CallToolRequestParams, name: str, default: float) -> float:
    value = (params.arguments or {}).get(name, default)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default


@tool(
    "greet",
    "Says hello (synchronous only; never becomes a task).",
    {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
)
async def greet(ctx: Ctx, params: types.CallToolRequestParams) -> types.CallToolResult:
    return tool_text(f"Hello, {arg(params, 'name', 'World')}!")


_SLOW_COMPUTE_SCHEMA = {
    "type": "object",
    "properties": {
        "seconds": {"type": "number", "minimum": 0, "description": "How long to compute"},
        "label": {"type": "string", "description": "Free-form label echoed in the result"},
    },
    "required": ["seconds"],
}


@tool(
    "slow_compute",
    "Sleeps `seconds` then answers. Runs as a task when the tasks extension is negotiated.",
    _SLOW_COMPUTE_SCHEMA,
)
async def slow_compute(ctx: Ctx, params: types.CallToolRequestParams) -> Any:
    seconds = min(_number_arg(params, "seconds", 1.0), 600.0)
    label = arg(params, "label", "compute")

    async def work(record: TaskRecord | None = None) -> types.CallToolResult:
        await anyio.sleep(seconds)
        return tool_text(f"{label}: computed after {seconds:g}s")

    return await run_as_task_or_sync(ctx, work, work)


@tool("failing_job", "Task-only (task support required): reports a tool execution error after ~0.5s.")
async def failing_job(ctx: Ctx, params: types.CallToolRequestParams) -> Any:
    async def work(record: TaskRecord) -> types.CallToolResult:
        await anyio.sleep(0.5)
        return tool_text("failing_job: the job failed (tool execution error)", is_error=True)

    return await run_as_task_or_sync(ctx, work, None)


@tool("protocol_error_job", "Fails with a protocol-level error; as a task it ends in status 'failed'.")
async def protocol_error_job(ctx: Ctx, params: types.CallToolRequestParams) -> Any:
    async def work(record: TaskRecord | None = None) -> types.CallToolResult:
        await anyio.sleep(0.1)
        raise MCPError(code=types.INTERNAL_ERROR, message="protocol_error_job: simulated internal failure")

    return await run_as_task_or_sync(ctx, work, work)


_DELETE_CONFIRM_SCHEMA = {
    "type": "object",
    "properties": {"confirm": {"type": "boolean", "description": "Really delete?"}},
    "required": ["confirm"],
}


@tool(
    "confirm_delete",
    "Asks for confirmation (elicitation) before 'deleting' a file; as a task it parks in input_required.",
    string_args("filename"),
)
async def confirm_delete(ctx: Ctx, params: types.CallToolRequestParams) -> Any:
    filename = arg(params, "filename", "file.txt")
    request = elicit_request(f"Delete {filename}?", _DELETE_CONFIRM_SCHEMA)

    def outcome(answer: Any) -> types.CallToolResult:
        confirmed = elicited(answer, "confirm", "false").lower() == "true"
        return tool_text(f"{'Deleted' if confirmed else 'Kept'} {filename}")

    async def work(record: TaskRecord) -> types.CallToolResult:
        return outcome((await record.ask({"confirm": request}))["confirm"])

    async def sync() -> types.CallToolResult | types.InputRequiredResult:
        got = await ask(ctx, params, {"confirm": request})
        return got if isinstance(got, types.InputRequiredResult) else outcome(got["confirm"])

    return await run_as_task_or_sync(ctx, work, sync)


@tool("multi_input", "Asks two questions at once; as a task both stay pending until each is answered.")
async def multi_input(ctx: Ctx, params: types.CallToolRequestParams) -> Any:
    requests: dict[str, types.InputRequest] = {
        "first": elicit_request("First question: your name?", _NAME_SCHEMA),
        "second": elicit_request("Second question: your name again?", _NAME_SCHEMA),
    }

    def outcome(answers: dict[str, Any]) -> types.CallToolResult:
        return tool_text(", ".join(f"{key}={elicited(answers[key], 'name')}" for key in requests))

    async def work(record: TaskRecord) -> types.CallToolResult:
        return outcome(await record.ask(requests))

    async def sync() -> types.CallToolResult | types.InputRequiredResult:
        got = await ask(ctx, params, requests)
        return got if isinstance(got, types.InputRequiredResult) else outcome(got)

    return await run_as_task_or_sync(ctx, work, sync)


@tool("test_tool_with_task", "Asks for a name (InputRequiredResult), then finishes as a task (task support required).")
async def test_tool_with_task(ctx: Ctx, params: types.CallToolRequestParams) -> Any:
    if not tasks_negotiated(ctx):
        raise tasks_required_error()
    got = await ask(ctx, params, {"user_name": elicit_request("What is your name?", _NAME_SCHEMA)})
    if isinstance(got, types.InputRequiredResult):
        return got  # the multi-round-trip phase: no task yet
    name = elicited(got["user_name"], "name", "stranger")

    async def work(record: TaskRecord) -> types.CallToolResult:
        await anyio.sleep(0.2)
        return tool_text(f"Task finished for {name}")

    return await run_as_task_or_sync(ctx, work, None)


class TaskRequestParams(types.RequestParams):
    task_id: str


class TaskUpdateParams(TaskRequestParams):
    input_responses: dict[str, Any] = Field(default_factory=dict)


def check_task_request(ctx: Ctx, params: TaskRequestParams) -> TaskRecord:
    """Common gate for tasks/*: era, routing header, negotiation, known id."""
    if not is_modern(ctx):
        raise MCPError(code=types.METHOD_NOT_FOUND, message="Method not found", data=ctx.method)
    headers = getattr(ctx.request, "headers", None)
    if headers is not None and decode_header_value(headers.get("mcp-name")) != params.task_id:
        # SEP-2663 extends SEP-2243's Mcp-Name routing header to tasks/*: it must
        # carry the taskId. The SDK only checks the spec methods, so check here.
        raise MCPError(code=types.HEADER_MISMATCH, message="Mcp-Name header does not match params.taskId")
    caps = ctx.session.client_capabilities
    if caps is None or TASKS_EXTENSION not in (caps.extensions or {}):
        raise tasks_required_error()
    return TASKS.get(params.task_id)


async def tasks_get(ctx: Ctx, params: TaskRequestParams) -> dict[str, Any]:
    return check_task_request(ctx, params).detailed()


async def tasks_update(ctx: Ctx, params: TaskUpdateParams) -> types.EmptyResult:
    record = check_task_request(ctx, params)
    if not record.terminal:
        record.answer(params.input_responses)
    return types.EmptyResult()  # a bare ack; the new state is seen on the next tasks/get


async def tasks_cancel(ctx: Ctx, params: TaskRequestParams) -> types.EmptyResult:
    TASKS.cancel(check_task_request(ctx, params))  # idempotent on terminal tasks
    return types.EmptyResult()


@asynccontextmanager
async def fixture_lifespan(server: Server[Any]) -> AsyncIterator[dict[str, Any]]:
    """Server lifespan: owns the task group that runs task work."""
    async with anyio.create_task_group() as task_group:
        TASKS.task_group = task_group
        try:
            yield {}
        finally:
            TASKS.task_group = None
            task_group.cancel_scope.cancel()


def current_tools() -> list[FixtureTool]:
    tools = list(TOOLS.values())
    if STATE.dynamic_tool_enabled:
        tools.append(DYNAMIC_TOOL)
    return tools


async def list_tools(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[t.definition for t in current_tools()])


async def call_tool(
    ctx: Ctx, params: types.CallToolRequestParams
) -> types.CallToolResult | types.InputRequiredResult | dict[str, Any]:
    """Dispatch a tools/call; a dict result is a CreateTaskResult (tasks extension)."""
    for candidate in current_tools():
        if candidate.definition.name == params.name:
            return await candidate.handler(ctx, params)
    raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown tool: {params.name}")


def tool_input_schema(name: str) -> dict[str, Any] | None:
    found = TOOLS.get(name) or (DYNAMIC_TOOL if name == DYNAMIC_TOOL.definition.name else None)
    return found.definition.input_schema if found else None


# ---------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------

RESOURCES = [
    types.Resource(
        uri="test://static-text",
        name="static-text",
        description="A static text resource",
        mime_type="text/plain",
    ),
    types.Resource(
        uri="test://static-binary",
        name="static-binary",
        description="A static binary resource (1x1 red PNG)",
        mime_type="image/png",
    ),
    types.Resource(
        uri="test://watched-resource",
        name="watched-resource",
        description="A resource to subscribe to (updated by test_trigger_resource_update)",
        mime_type="text/plain",
    ),
]

TEMPLATES = [
    types.ResourceTemplate(
        uri_template=TEMPLATE_URI,
        name="template-data",
        description="JSON data for any id",
        mime_type="application/json",
    )
]


async def list_resources(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
    return types.ListResourcesResult(resources=RESOURCES)


async def list_resource_templates(
    ctx: Ctx, params: types.PaginatedRequestParams | None
) -> types.ListResourceTemplatesResult:
    return types.ListResourceTemplatesResult(resource_templates=TEMPLATES)


def template_id(uri: str) -> str | None:
    """The `{id}` of a URI matching test://template/{id}/data, else None."""
    if not (uri.startswith(TEMPLATE_PREFIX) and uri.endswith(TEMPLATE_SUFFIX)):
        return None
    item_id = uri[len(TEMPLATE_PREFIX) : -len(TEMPLATE_SUFFIX)]
    return item_id if item_id and "/" not in item_id else None


async def read_resource(ctx: Ctx, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
    uri = str(params.uri)
    contents: types.TextResourceContents | types.BlobResourceContents
    if uri == "test://static-text":
        contents = types.TextResourceContents(uri=uri, mime_type="text/plain", text=STATIC_TEXT)
    elif uri == "test://static-binary":
        contents = types.BlobResourceContents(uri=uri, mime_type="image/png", blob=PNG_B64)
    elif uri == "test://watched-resource":
        contents = types.TextResourceContents(uri=uri, mime_type="text/plain", text=WATCHED_TEXT)
    elif (item_id := template_id(uri)) is not None:
        data = {"id": item_id, "templateTest": True, "data": f"Data for ID: {item_id}"}
        contents = types.TextResourceContents(uri=uri, mime_type="application/json", text=json.dumps(data))
    else:
        # SEP-2164: unknown resource -> -32602 with the URI in error.data.
        raise MCPError(code=types.INVALID_PARAMS, message="Resource not found", data={"uri": uri})
    return types.ReadResourceResult(contents=[contents])


async def subscribe_resource(ctx: Ctx, params: types.SubscribeRequestParams) -> types.EmptyResult:
    STATE.subscriptions.setdefault(connection_key(ctx), set()).add(str(params.uri))
    return types.EmptyResult()


async def unsubscribe_resource(ctx: Ctx, params: types.UnsubscribeRequestParams) -> types.EmptyResult:
    STATE.subscriptions.get(connection_key(ctx), set()).discard(str(params.uri))
    return types.EmptyResult()


# ---------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------

PromptHandler = Callable[
    [Ctx, types.GetPromptRequestParams], Awaitable[types.GetPromptResult | types.InputRequiredResult]
]


@dataclass
class FixturePrompt:
    definition: types.Prompt
    handler: PromptHandler


PROMPTS: dict[str, FixturePrompt] = {}


def prompt(
    name: str, description: str, arguments: list[tuple[str, str]] | None = None
) -> Callable[[PromptHandler], PromptHandler]:
    """Register a prompt; `arguments` are (name, description) pairs, all required."""

    def register(handler: PromptHandler) -> PromptHandler:
        definition = types.Prompt(
            name=name,
            description=description,
            arguments=[types.PromptArgument(name=n, description=d, required=True) for n, d in arguments or []],
        )
        PROMPTS[name] = FixturePrompt(definition, handler)
        return handler

    return register


def user(content: types.ContentBlock) -> types.PromptMessage:
    return types.PromptMessage(role="user", content=content)


def prompt_arg(params: types.GetPromptRequestParams, name: str) -> str:
    value = (params.arguments or {}).get(name)
    if value is None:
        raise MCPError(code=types.INVALID_PARAMS, message=f"Missing required argument: {name}")
    return value


@prompt("test_simple_prompt", "A simple prompt without arguments")
async def test_simple_prompt(ctx: Ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    return types.GetPromptResult(messages=[user(text("This is a simple prompt for testing."))])


@prompt(
    "test_prompt_with_arguments",
    "A prompt with required arguments",
    [("arg1", "First test argument"), ("arg2", "Second test argument")],
)
async def test_prompt_with_arguments(ctx: Ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    arg1, arg2 = prompt_arg(params, "arg1"), prompt_arg(params, "arg2")
    return types.GetPromptResult(messages=[user(text(f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"))])


@prompt(
    "test_prompt_with_embedded_resource",
    "A prompt that embeds a resource",
    [("resourceUri", "URI of the resource to embed")],
)
async def test_prompt_with_embedded_resource(ctx: Ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    resource = types.TextResourceContents(
        uri=prompt_arg(params, "resourceUri"), mime_type="text/plain", text="Embedded resource content for testing."
    )
    return types.GetPromptResult(
        messages=[
            user(types.EmbeddedResource(type="resource", resource=resource)),
            user(text("Please process the embedded resource above.")),
        ]
    )


@prompt("test_prompt_with_image", "A prompt that includes an image")
async def test_prompt_with_image(ctx: Ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    return types.GetPromptResult(
        messages=[
            user(types.ImageContent(type="image", data=PNG_B64, mime_type="image/png")),
            user(text("Please analyze the image above.")),
        ]
    )


_CONTEXT_SCHEMA = {"type": "object", "properties": {"context": {"type": "string"}}, "required": ["context"]}


@prompt("test_input_required_result_prompt", "A prompt that first asks the user (elicitation) for its context")
async def test_irr_prompt(
    ctx: Ctx, params: types.GetPromptRequestParams
) -> types.GetPromptResult | types.InputRequiredResult:
    request = elicit_request("What context should the prompt use?", _CONTEXT_SCHEMA)
    got = await ask(ctx, params, {"user_context": request})
    if isinstance(got, types.InputRequiredResult):
        return got
    context = elicited(got["user_context"], "context", "(none given)")
    return types.GetPromptResult(messages=[user(text(f"Answer using this context: {context}"))])


async def _dynamic_prompt(ctx: Ctx, params: types.GetPromptRequestParams) -> types.GetPromptResult:
    return types.GetPromptResult(messages=[user(text("This prompt is toggled by test_trigger_prompt_change."))])


DYNAMIC_PROMPT = FixturePrompt(
    types.Prompt(name="test_dynamic_prompt", description="Present only while toggled on.", arguments=[]),
    _dynamic_prompt,
)


def current_prompts() -> list[FixturePrompt]:
    prompts = list(PROMPTS.values())
    if STATE.dynamic_prompt_enabled:
        prompts.append(DYNAMIC_PROMPT)
    return prompts


async def list_prompts(ctx: Ctx, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
    return types.ListPromptsResult(prompts=[p.definition for p in current_prompts()])


async def get_prompt(
    ctx: Ctx, params: types.GetPromptRequestParams
) -> types.GetPromptResult | types.InputRequiredResult:
    for candidate in current_prompts():
        if candidate.definition.name == params.name:
            return await candidate.handler(ctx, params)
    raise MCPError(code=types.INVALID_PARAMS, message=f"Unknown prompt: {params.name}")


# ---------------------------------------------------------------------------
# Completion and logging
# ---------------------------------------------------------------------------

_COMPLETIONS: dict[tuple[str, str, str], list[str]] = {
    ("ref/prompt", "test_prompt_with_arguments", "arg1"): ["paris", "park", "party", "test", "testValue1"],
    ("ref/prompt", "test_prompt_with_arguments", "arg2"): ["world", "wonder", "testValue2"],
    ("ref/resource", TEMPLATE_URI, "id"): ["1", "2", "3", "123"],
}


async def complete(ctx: Ctx, params: types.CompleteRequestParams) -> types.CompleteResult:
    ref = params.ref
    target = ref.name if isinstance(ref, types.PromptReference) else ref.uri
    candidates = _COMPLETIONS.get((ref.type, target, params.argument.name), [])
    values = [v for v in candidates if v.startswith(params.argument.value)]
    return types.CompleteResult(completion=types.Completion(values=values, total=len(values), has_more=False))


async def set_logging_level(ctx: Ctx, params: types.SetLevelRequestParams) -> types.EmptyResult:
    STATE.log_levels[connection_key(ctx)] = params.level
    return types.EmptyResult()


# ---------------------------------------------------------------------------
# Server assembly
# ---------------------------------------------------------------------------


class FixtureServer(Server[Any]):
    """Advertises listChanged on the handshake era too (the fixture can change its lists)."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options
            or NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True),
            experimental_capabilities,
            extensions,
        )


def build_server() -> FixtureServer:
    # Caching hints (SEP-2549, 2026-07-28): the lists can change at any time
    # (test_trigger_*), so they are immediately stale; resource contents are fixed.
    lists_hint = CacheHint(ttl_ms=0, scope="private")
    server = FixtureServer(
        SERVER_NAME,
        version=SERVER_VERSION,
        lifespan=fixture_lifespan,
        instructions="MCPGuard conformance fixture: implements the conformance suite's server fixtures.",
        cache_hints={
            "tools/list": lists_hint,
            "prompts/list": lists_hint,
            "resources/list": lists_hint,
            "resources/templates/list": lists_hint,
            "resources/read": CacheHint(ttl_ms=60_000, scope="public"),
        },
        get_tool_input_schema=tool_input_schema,
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        on_list_resources=list_resources,
        on_list_resource_templates=list_resource_templates,
        on_read_resource=read_resource,
        on_subscribe_resource=subscribe_resource,
        on_unsubscribe_resource=unsubscribe_resource,
        on_subscriptions_listen=ListenHandler(STATE.bus),
        on_list_prompts=list_prompts,
        on_get_prompt=get_prompt,
        on_completion=complete,
        on_set_logging_level=set_logging_level,
    )
    # The tasks extension: advertised under capabilities.extensions, methods
    # served on the 2026-07-28 wire only (check_task_request).
    server.extensions[TASKS_EXTENSION] = {}
    server.add_request_handler("tasks/get", TaskRequestParams, tasks_get)
    server.add_request_handler("tasks/update", TaskUpdateParams, tasks_update)
    server.add_request_handler("tasks/cancel", TaskRequestParams, tasks_cancel)
    # Seal every outgoing requestState and verify every echo (AES-GCM with a
    # per-process key), so handlers only see state they minted and tampering
    # is rejected with -32602.
    server.middleware.append(RequestStateBoundary(RequestStateSecurity.ephemeral(), default_audience=SERVER_NAME))
    return server


class InMemoryEventStore(EventStore):
    """Unbounded in-memory event store: makes handshake-era SSE streams resumable
    (priming events, `retry`, replay after `Last-Event-ID`). Fine for a test fixture."""

    def __init__(self) -> None:
        self._events: list[tuple[StreamId, EventId, types.JSONRPCMessage | None]] = []
        self._index: dict[EventId, int] = {}

    async def store_event(self, stream_id: StreamId, message: types.JSONRPCMessage | None) -> EventId:
        event_id = str(len(self._events) + 1)
        self._index[event_id] = len(self._events)
        self._events.append((stream_id, event_id, message))
        return event_id

    async def replay_events_after(self, last_event_id: EventId, send_callback: EventCallback) -> StreamId | None:
        position = self._index.get(last_event_id)
        if position is None:
            return None
        stream_id = self._events[position][0]
        for other_stream, event_id, message in self._events[position + 1 :]:
            if other_stream == stream_id and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream_id


async def run_stdio(server: FixtureServer) -> None:
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


def run_http(server: FixtureServer, host: str, port: int, log_level: str) -> None:
    import uvicorn

    # host=127.0.0.1/localhost/::1 turns on the SDK's DNS-rebinding protection
    # (Host/Origin must be localhost), which the dns-rebinding scenario checks.
    app = server.streamable_http_app(
        streamable_http_path="/mcp",
        event_store=InMemoryEventStore(),
        retry_interval=1000,
        host=host,
    )
    # A bounded graceful shutdown: open SSE streams must not keep a test's
    # SIGTERM waiting.
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transport", choices=["stdio", "streamable-http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3001)
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)

    # Logs go to stderr: on stdio, stdout is the protocol channel.
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper())
    server = build_server()
    if args.transport == "stdio":
        anyio.run(run_stdio, server)
    else:
        run_http(server, args.host, args.port, args.log_level)


if __name__ == "__main__":
    main()
