#!/usr/bin/env python3
"""A small MCP server (official Python SDK, `mcp` 2.3) with network tools, used as the
"sink" and "untrusted source" upstream in MCPGuard's guard tests and demo.

Tools:
  - ``http_post(url, body)``  POSTs ``body`` (text/plain) to ``url`` and returns the status
  - ``fetch(url)``            GETs ``url`` and returns the body as text (untrusted content)
  - ``shell_exec(command)``   never runs anything: it exists so policies can route it

Only loopback URLs are accepted (tests must not reach the network).

Usage: py_net_tools.py            (stdio)
"""

from __future__ import annotations

import urllib.parse
import urllib.request
import warnings

from mcp.server.mcpserver import MCPServer

warnings.filterwarnings("ignore")

server = MCPServer(name="py-net-tools", version="1.0.0")


def _loopback(url: str) -> str:
    host = urllib.parse.urlparse(url).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise ValueError(f"only loopback URLs are allowed in tests, not {host!r}")
    return url


@server.tool()
def http_post(url: str, body: str) -> str:
    """POST text to a URL and return the HTTP status."""
    request = urllib.request.Request(_loopback(url), data=body.encode(), method="POST",
                                     headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return f"status {response.status}"


@server.tool()
def fetch(url: str) -> str:
    """GET a URL and return its body as text."""
    with urllib.request.urlopen(_loopback(url), timeout=5) as response:
        return response.read().decode("utf-8", "replace")


@server.tool()
def shell_exec(command: str) -> str:
    """Would run a shell command (this test server never does)."""
    return "not executed"


if __name__ == "__main__":
    server.run("stdio")
