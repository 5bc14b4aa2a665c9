#!/usr/bin/env python3
"""An MCP server on the official Python SDK (`mcp` 2.3) with one tool that tells which
HTTP request headers it received, so tests can see what the gateway sends upstream
(W3C trace context, and that the agent's credentials are not among them).

  - ``request_header(name)`` returns the value of request header ``name``, or ``""``.

Usage:
    py_header_server.py --transport streamable-http --host 127.0.0.1 --port PORT
"""

from __future__ import annotations

import argparse

from mcp.server.mcpserver import Context, MCPServer

server = MCPServer(name="py-header-server")


@server.tool()
def request_header(name: str, ctx: Context) -> str:
    """The value of HTTP request header `name` ("" when absent)."""
    headers = ctx.headers or {}
    wanted = name.lower()
    return next((v for k, v in headers.items() if k.lower() == wanted), "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--transport", default="streamable-http", choices=["streamable-http"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    server.run("streamable-http", host=args.host, port=args.port, streamable_http_path="/mcp")


if __name__ == "__main__":
    main()
