#!/usr/bin/env python3
"""Scripted MCP client driver built on the official Python SDK (`mcp` 2.3, `mcp.Client`).

MCPGuard's integration tests use it to drive a real client implementation
through the gateway. It connects to one server, runs a JSON script of steps
and prints one JSON object per line on stdout.

Usage:
    py_client.py --url URL [options] SCRIPT
    py_client.py --stdio [options] SCRIPT -- COMMAND [ARGS...]

SCRIPT is a JSON list of steps, given inline or as ``@path/to/file.json``:

    [{"op": "list_tools"},
     {"op": "call_tool", "name": "echo", "arguments": {"message": "hi"}},
     {"op": "list_resources"}, {"op": "list_resource_templates"},
     {"op": "read_resource", "uri": "echo://static"},
     {"op": "list_prompts"}, {"op": "get_prompt", "name": "greet", "arguments": {"name": "bob"}},
     {"op": "complete", "ref": {"type": "ref/prompt", "name": "greet"},
                        "argument": {"name": "name", "value": "al"}},
     {"op": "ping"}, {"op": "set_logging_level", "level": "debug"},
     {"op": "sleep", "seconds": 0.5}]

Step options: ``list_*`` take an optional ``cursor``; ``call_tool`` takes
``progress`` (default true: send a progress token) and ``timeout`` (seconds);
``complete`` takes ``ref`` (or the shorthands ``prompt`` / ``template``),
``argument`` ({"name", "value"}) and optional ``context`` (argument map).

Output lines (stdout, one JSON object each):
    {"connected": {"protocolVersion": ..., "serverInfo": ..., "capabilities": ...}}
    {"op": ..., "ok": true, "result": {...}}
    {"op": ..., "ok": false, "error": {"type": ..., "message": ..., "code": ..., "data": ...}}
    {"notification": {"method": ..., "params": {...}}}          progress, logging, list changes...
    {"server_request": {"method": ..., "id": ..., "params": {...}}}   sampling / elicitation / roots asked
                       (id: the JSON-RPC request id for a handshake-era server-to-client request,
                        the inputRequests key for a 2026-07-28 InputRequiredResult round)
Results are the SDK's typed models dumped with
``model_dump(mode="json", by_alias=True, exclude_none=True)``.

Callbacks (each client capability is advertised only when its flag is given):
    --elicit-json JSON     answer elicitation with action "accept" and this content
    --elicit-action ACT    answer elicitation with accept|decline|cancel (content only on accept)
    --sample-text TEXT     answer sampling/createMessage with this assistant text
    --roots URI            add a root (repeatable); advertises the roots capability

Exit status: 0 when the script ran (even if steps failed), 2 on a usage error,
1 when the connection could not be established (reason on stderr).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from contextlib import AsyncExitStack
from typing import Any

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError
from pydantic import BaseModel

# ping / set_logging_level are deprecated at 2026-07-28 but are exactly what we want to exercise.
warnings.filterwarnings("ignore")


def emit(obj: dict[str, Any]) -> None:
    """Print one JSON line on stdout and flush, so a test reading the pipe sees it at once."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def dump(value: Any) -> Any:
    """Render an SDK model (or anything JSON-able) as plain JSON data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    return value


def leaf_exception(exc: BaseException) -> BaseException:
    """Unwrap single-member exception groups (anyio task groups wrap failures)."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def describe_error(exc: BaseException) -> dict[str, Any]:
    exc = leaf_exception(exc)
    err: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, MCPError):
        err["code"] = exc.code
        err["message"] = exc.message
        if exc.data is not None:
            err["data"] = exc.data
    return err


# ---------------------------------------------------------------------------
# Callbacks answering server-initiated requests
# ---------------------------------------------------------------------------


def make_elicitation_callback(action: str, content: dict[str, Any] | None):
    async def on_elicit(ctx: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        emit({"server_request": {"method": "elicitation/create", "id": ctx.request_id, "params": dump(params)}})
        return types.ElicitResult(action=action, content=content if action == "accept" else None)  # type: ignore[arg-type]

    return on_elicit


def make_sampling_callback(text: str):
    async def on_sample(ctx: ClientRequestContext, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        emit({"server_request": {"method": "sampling/createMessage", "id": ctx.request_id, "params": dump(params)}})
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=text),
            model="py-client-fixed",
            stop_reason="endTurn",
        )

    return on_sample


def make_roots_callback(uris: list[str]):
    async def on_roots(ctx: ClientRequestContext) -> types.ListRootsResult:
        emit({"server_request": {"method": "roots/list", "id": ctx.request_id}})
        return types.ListRootsResult(roots=[types.Root(uri=uri) for uri in uris])  # type: ignore[arg-type]

    return on_roots


async def on_message(message: Any) -> None:
    """Every server notification (progress, logging, list_changed, ...) is printed as-is."""
    if isinstance(message, Exception):
        print(f"py_client: transport error: {message!r}", file=sys.stderr)
        return
    emit({"notification": dump(message)})


async def ignore_progress(progress: float, total: float | None, message: str | None) -> None:
    """Passing a progress callback makes the SDK attach a progress token; the
    notification itself is printed by `on_message`, which sees it too."""


# ---------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------


def completion_ref(step: dict[str, Any]) -> types.PromptReference | types.ResourceTemplateReference:
    if "prompt" in step:
        return types.PromptReference(type="ref/prompt", name=step["prompt"])
    if "template" in step:
        return types.ResourceTemplateReference(type="ref/resource", uri=step["template"])
    ref = step["ref"]
    if ref.get("type") == "ref/prompt":
        return types.PromptReference.model_validate(ref)
    return types.ResourceTemplateReference.model_validate(ref)


async def run_step(client: Client, step: dict[str, Any]) -> Any:
    op = step.get("op")
    cursor = step.get("cursor")
    match op:
        case "list_tools":
            return await client.list_tools(cursor=cursor)
        case "list_resources":
            return await client.list_resources(cursor=cursor)
        case "list_resource_templates":
            return await client.list_resource_templates(cursor=cursor)
        case "list_prompts":
            return await client.list_prompts(cursor=cursor)
        case "call_tool":
            return await client.call_tool(
                step["name"],
                step.get("arguments") or {},
                read_timeout_seconds=step.get("timeout"),
                progress_callback=ignore_progress if step.get("progress", True) else None,
            )
        case "read_resource":
            return await client.read_resource(step["uri"])
        case "get_prompt":
            return await client.get_prompt(step["name"], step.get("arguments") or {})
        case "complete":
            return await client.complete(completion_ref(step), step["argument"], step.get("context"))
        case "ping":
            return await client.send_ping()
        case "set_logging_level":
            return await client.set_logging_level(step["level"])
        case "sleep":
            await anyio.sleep(float(step.get("seconds", 0.1)))
            return {}
        case _:
            raise ValueError(f"unknown op {op!r}")


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    # Everything after the first "--" is the stdio server command line.
    command: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, command = argv[:cut], argv[cut + 1 :]

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--url", help="Streamable HTTP endpoint, e.g. http://127.0.0.1:8080/mcp")
    target.add_argument("--stdio", action="store_true", help="launch the command after -- and talk over stdio")
    parser.add_argument(
        "--mode",
        default="auto",
        help="auto (server/discover, falling back to initialize), legacy (initialize only), "
        "or a modern version to adopt directly, e.g. 2026-07-28",
    )
    parser.add_argument("--header", action="append", default=[], help="extra HTTP header 'Name: value' (repeatable)")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request read timeout in seconds")
    parser.add_argument("--elicit-json", help="accept elicitations with this JSON object as content")
    parser.add_argument("--elicit-action", choices=["accept", "decline", "cancel"], help="elicitation answer")
    parser.add_argument("--sample-text", help="answer sampling requests with this text")
    parser.add_argument("--roots", action="append", help="a root URI to report (repeatable)")
    parser.add_argument("--log-level", help="2026-07-28 only: opt every request in to log messages at this level")
    parser.add_argument("script", help="JSON list of steps, or @file")
    args = parser.parse_args(argv)
    if args.stdio and not command:
        parser.error("--stdio needs the server command after --")
    if args.url and command:
        parser.error("a command after -- only goes with --stdio")
    return args, command


def load_script(text: str) -> list[dict[str, Any]]:
    if text.startswith("@"):
        with open(text[1:], encoding="utf-8") as f:
            text = f.read()
    script = json.loads(text)
    if not isinstance(script, list) or not all(isinstance(s, dict) and "op" in s for s in script):
        raise ValueError("SCRIPT must be a JSON list of objects with an 'op' key")
    return script


async def main_async(args: argparse.Namespace, command: list[str], script: list[dict[str, Any]]) -> int:
    async with AsyncExitStack() as stack:
        server: Any
        if args.stdio:
            # Pass our whole environment through so tests can configure the server via env.
            server = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
        else:
            headers = {}
            for h in args.header:
                name, _, value = h.partition(":")
                headers[name.strip()] = value.strip()
            http = await stack.enter_async_context(create_mcp_http_client(headers=headers or None))
            server = streamable_http_client(args.url, http_client=http)

        elicit_action = args.elicit_action or ("accept" if args.elicit_json is not None else None)
        elicit_content = json.loads(args.elicit_json) if args.elicit_json is not None else None

        client = Client(
            server,
            mode=args.mode,
            read_timeout_seconds=args.timeout,
            # The driver must observe every request on the wire: no client-side response cache.
            cache=None,
            message_handler=on_message,
            log_level=args.log_level,
            elicitation_callback=make_elicitation_callback(elicit_action, elicit_content) if elicit_action else None,
            sampling_callback=make_sampling_callback(args.sample_text) if args.sample_text is not None else None,
            list_roots_callback=make_roots_callback(args.roots) if args.roots else None,
            client_info=types.Implementation(name="mcpguard-py-client", version="1.0.0"),
        )

        try:
            await stack.enter_async_context(client)
        except Exception as exc:  # connection or handshake failure
            err = describe_error(exc)
            print(f"py_client: connection failed: {err['type']}: {err['message']}", file=sys.stderr)
            return 1

        emit(
            {
                "connected": {
                    "protocolVersion": client.protocol_version,
                    "serverInfo": dump(client.server_info),
                    "capabilities": dump(client.server_capabilities),
                }
            }
        )

        for step in script:
            op = step.get("op")
            try:
                result = await run_step(client, step)
                emit({"op": op, "ok": True, "result": dump(result)})
            except Exception as exc:
                emit({"op": op, "ok": False, "error": describe_error(exc)})
        _state["script_done"] = True
    return 0


# Set once every step has run, so a failure while closing the connection is not a connection failure.
_state = {"script_done": False}


def main() -> int:
    args, command = parse_args(sys.argv[1:])
    try:
        script = load_script(args.script)
    except (OSError, ValueError) as exc:
        print(f"py_client: bad script: {exc}", file=sys.stderr)
        return 2
    try:
        return anyio.run(main_async, args, command, script)
    except Exception as exc:  # e.g. the transport died mid-script or while closing
        err = describe_error(exc)
        print(f"py_client: {err['type']}: {err['message']}", file=sys.stderr)
        return 0 if _state["script_done"] else 1


if __name__ == "__main__":
    sys.exit(main())
