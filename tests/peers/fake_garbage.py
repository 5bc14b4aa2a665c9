"""A deliberately broken MCP server, for the "upstream answers garbage" fault tests only.

It completes the `initialize` handshake properly, then answers every `tools/call` with
bytes that are not JSON-RPC. Real SDK servers cannot be made to do that (the Python SDK
even diverts stray writes away from its stdout), so this fake stands in. Standard
library only.

Usage: fake_garbage.py --port PORT          (Streamable HTTP: the garbage is the answer)
       fake_garbage.py --stdio              (stdio: a garbage line, and no answer)
"""

import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output quiet
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        message = json.loads(self.rfile.read(length) or b"{}")
        method = message.get("method")
        if "id" not in message:
            self._send(202)
        elif method == "initialize":
            result = {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "garbage", "version": "1"},
            }
            body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}).encode()
            self._send(200, body, {"Content-Type": "application/json", "Mcp-Session-Id": "fake-session"})
        elif method == "tools/list":
            tools = [{"name": "broken", "inputSchema": {"type": "object"}}]
            body = json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": {"tools": tools}}).encode()
            self._send(200, body, {"Content-Type": "application/json"})
        elif method == "tools/call":
            self._send(200, b'{"this is": not json', {"Content-Type": "application/json"})
        else:
            body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": "no"}}).encode()
            self._send(400, body, {"Content-Type": "application/json"})

    def do_GET(self) -> None:
        self._send(405)

    def do_DELETE(self) -> None:
        self._send(200)


def serve_stdio() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        method = message.get("method")
        if "id" not in message:
            continue
        if method == "initialize":
            result = {
                "protocolVersion": "2025-11-25",
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "garbage", "version": "1"},
            }
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": result}
        elif method == "tools/list":
            tools = [{"name": "broken", "inputSchema": {"type": "object"}}]
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": {"tools": tools}}
        elif method == "tools/call":
            sys.stdout.write("this line is not json-rpc\n")
            sys.stdout.flush()
            continue
        else:
            reply = {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "no"}}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int)
    parser.add_argument("--stdio", action="store_true")
    args = parser.parse_args()
    if args.stdio:
        serve_stdio()
    else:
        ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
