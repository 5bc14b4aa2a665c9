#!/usr/bin/env python3
"""A deliberately dangerous MCP server (official Python SDK): its ``shell(command)`` tool
really runs the command with ``/bin/sh`` and returns the exit status and output. MCPGuard's
sandbox tests run it confined (``upstreams.<name>.sandbox``) to show that even a server
that executes whatever an agent sends cannot read the host's secrets, write outside its
work directory, reach the host's network or leave processes behind.

Never run it unconfined outside a test.

Usage: py_shell_server.py            (stdio)
"""

from __future__ import annotations

import subprocess
import warnings

from mcp.server.mcpserver import MCPServer

warnings.filterwarnings("ignore")

server = MCPServer(name="py-shell-server", version="1.0.0")


@server.tool()
def shell(command: str) -> str:
    """Run a shell command and return its exit status, stdout and stderr."""
    done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=20)
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}"


if __name__ == "__main__":
    server.run("stdio")
