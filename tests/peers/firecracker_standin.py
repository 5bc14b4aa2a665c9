#!/usr/bin/env python3
"""A STAND-IN for the Firecracker VMM, for tests on machines that cannot run Firecracker.

No registry ships a Firecracker binary and this machine's KVM is software (PVM), so the
real VMM cannot run here. This program serves the part of Firecracker's REST API that
MCPGuard uses (PUT /machine-config, /boot-source, /drives/{id}, /vsock, /actions; GET /)
on the `--api-sock` Unix socket, validating bodies the way the API's OpenAPI description
(firecracker.yaml) specifies: required fields, types, unknown fields refused, pre-boot
only resources, 204 on success and {"fault_message": ...} with 400 on failure.

On InstanceStart it does NOT boot a kernel. The "kernel image" it is given must be a text
file whose first line is `#!standin-kernel` and whose second line names the host path of
`mcpguard-vm-agent`; it starts that agent as a host process listening on a Unix socket,
and serves Firecracker's hybrid-vsock handshake on `uds_path` (`CONNECT <port>\\n` →
`OK <n>\\n`, or the connection closed while no guest program listens on that port),
splicing the connection to the agent. Everything MCPGuard says to it is therefore the
real conversation; what answers is not a microVM.
"""

import json
import os
import re
import socket
import socketserver
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler

STATE = {
    "machine": None,
    "boot": None,
    "drives": {},
    "vsock": None,
    "started": False,
    "guest_dir": None,
}
LOCK = threading.Lock()

# field: (type, required) per firecracker.yaml definitions (only what matters here).
SCHEMAS = {
    "machine-config": {
        "vcpu_count": (int, True),
        "mem_size_mib": (int, True),
        "smt": (bool, False),
        "track_dirty_pages": (bool, False),
        "cpu_template": (str, False),
        "huge_pages": (str, False),
    },
    "boot-source": {
        "kernel_image_path": (str, True),
        "boot_args": (str, False),
        "initrd_path": (str, False),
    },
    "drives": {
        "drive_id": (str, True),
        "is_root_device": (bool, True),
        "path_on_host": (str, False),
        "is_read_only": (bool, False),
        "partuuid": (str, False),
        "cache_type": (str, False),
        "io_engine": (str, False),
        "rate_limiter": (dict, False),
        "socket": (str, False),
    },
    "vsock": {
        "guest_cid": (int, True),
        "uds_path": (str, True),
        "vsock_id": (str, False),
    },
    "actions": {"action_type": (str, True)},
}


class Refused(Exception):
    pass


def check(kind, body):
    if not isinstance(body, dict):
        raise Refused(f"An error occurred when deserializing the json body of a request: expected an object")
    schema = SCHEMAS[kind]
    for key in body:
        if key not in schema:
            raise Refused(
                f"An error occurred when deserializing the json body of a request: unknown field `{key}`"
            )
    for key, (kind_type, required) in schema.items():
        if key not in body:
            if required:
                raise Refused(
                    f"An error occurred when deserializing the json body of a request: missing field `{key}`"
                )
            continue
        value = body[key]
        if kind_type is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise Refused(f"invalid type for `{key}`: expected an integer")
        if kind_type is not int and not isinstance(value, kind_type):
            raise Refused(f"invalid type for `{key}`: expected {kind_type.__name__}")


def guest_socket(port):
    return os.path.join(STATE["guest_dir"], f"guest-{port}.sock")


def start_guest(agent):
    # The agent listens on vsock port 5252 in a real guest.
    subprocess.Popen(
        [agent, "--listen", f"unix:{guest_socket(5252)}", "--run-as", "65534:65534"],
        stdin=subprocess.DEVNULL,
    )


def serve_vsock(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)

    def handle(host):
        line = b""
        while not line.endswith(b"\n") and len(line) < 64:
            chunk = host.recv(1)
            if not chunk:
                host.close()
                return
            line += chunk
        match = re.fullmatch(rb"CONNECT (\d+)\n", line)
        if match is None:
            host.close()
            return
        guest = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            guest.connect(guest_socket(int(match.group(1))))
        except OSError:
            # No guest program listens on that port (yet): Firecracker closes.
            host.close()
            return
        host.sendall(b"OK 1073741824\n")

        def pump(src, dst):
            try:
                while True:
                    data = src.recv(65536)
                    if not data:
                        break
                    dst.sendall(data)
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        threading.Thread(target=pump, args=(guest, host), daemon=True).start()
        pump(host, guest)

    while True:
        connection, _ = listener.accept()
        threading.Thread(target=handle, args=(connection,), daemon=True).start()


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, status, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/":
            state = "Running" if STATE["started"] else "Not started"
            self.reply(200, {"id": VM_ID, "state": state, "vmm_version": "standin", "app_name": "Firecracker"})
        else:
            self.reply(400, {"fault_message": f"Invalid request method and/or path: GET {self.path}."})

    def do_PUT(self):
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError as e:
            return self.reply(400, {"fault_message": f"An error occurred when deserializing the json body of a request: {e}"})
        try:
            with LOCK:
                self.put(body)
        except Refused as e:
            return self.reply(400, {"fault_message": str(e)})
        self.reply(204)

    def put(self, body):
        path = self.path
        kind = path.strip("/").split("/")[0]
        if kind not in SCHEMAS:
            raise Refused(f"Invalid request method and/or path: PUT {path}.")
        check(kind, body)
        if STATE["started"] and kind != "actions":
            raise Refused("The requested operation is not supported after starting the microVM.")
        if kind == "machine-config":
            if not 1 <= body["vcpu_count"] <= 32:
                raise Refused("The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled.")
            if body["mem_size_mib"] < 1:
                raise Refused("The memory size (MiB) is invalid.")
            STATE["machine"] = body
        elif kind == "boot-source":
            if not os.path.isfile(body["kernel_image_path"]):
                raise Refused(f"The kernel file cannot be opened: No such file or directory (os error 2)")
            STATE["boot"] = body
        elif kind == "drives":
            drive_id = path.strip("/").split("/", 1)[1] if "/" in path.strip("/") else ""
            if drive_id != body["drive_id"]:
                raise Refused("The id from the path does not match the id from the body!")
            if "path_on_host" in body and not os.path.isfile(body["path_on_host"]):
                raise Refused("Unable to create the block device: BackingFile(Os { code: 2, kind: NotFound })")
            STATE["drives"][drive_id] = body
        elif kind == "vsock":
            if body["guest_cid"] < 3:
                raise Refused("Invalid guest CID: must be at least 3")
            STATE["vsock"] = body
        elif kind == "actions":
            if body["action_type"] not in ("InstanceStart", "SendCtrlAltDel", "FlushMetrics"):
                raise Refused(f"unknown variant `{body['action_type']}`")
            if body["action_type"] == "InstanceStart":
                if STATE["started"]:
                    raise Refused("The requested operation is not supported after starting the microVM.")
                agent = validate_boot()
                STATE["started"] = True
                threading.Thread(target=serve_vsock, args=(STATE["vsock"]["uds_path"],), daemon=True).start()
                start_guest(agent)


def validate_boot():
    boot_source, drives, vsock = STATE["boot"], STATE["drives"], STATE["vsock"]
    if boot_source is None:
        raise Refused("Cannot start microvm without kernel configuration.")
    if not any(d["is_root_device"] for d in drives.values()):
        raise Refused("standin: no root device (MCPGuard always gives one)")
    if vsock is None:
        raise Refused("standin: no vsock device (MCPGuard always gives one)")
    with open(boot_source["kernel_image_path"]) as f:
        lines = f.read().splitlines()
    if len(lines) < 2 or lines[0] != "#!standin-kernel":
        raise Refused("standin: the kernel image is not a stand-in kernel file")
    if re.search(r"(?:^| )init=(\S+)", boot_source.get("boot_args", "")) is None:
        raise Refused("standin: boot_args name no init")
    STATE["guest_dir"] = os.path.dirname(os.path.abspath(vsock["uds_path"]))
    return lines[1]


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):
        request, _ = super().get_request()
        return request, ("standin", 0)


def main():
    args = sys.argv[1:]
    global VM_ID
    VM_ID = "standin"
    api_sock = None
    i = 0
    while i < len(args):
        if args[i] == "--api-sock":
            api_sock = args[i + 1]
            i += 2
        elif args[i] == "--id":
            VM_ID = args[i + 1]
            i += 2
        else:
            sys.exit(f"standin: unknown argument {args[i]!r}")
    if api_sock is None:
        sys.exit("standin: --api-sock is required")
    Server(api_sock, Api).serve_forever()


if __name__ == "__main__":
    main()
