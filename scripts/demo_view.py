"""Prints a client driver's JSON lines (tests/peers/*_client.*) as a readable transcript."""

import json
import sys


def short(value: object, limit: int = 110) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def result_text(result: dict) -> str:
    if "tools" in result:
        names = [t["name"] for t in result["tools"]]
        return f"{len(names)} tools: " + ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
    run = result.get("structuredContent")
    if isinstance(run, dict) and "stopped" in run:  # mcpguard.run_code
        status = f"exit {run['exit_code']}" if run["exit_code"] is not None else f"signal {run['signal']}"
        return short(f"[{run['backend']} sandbox: {status}, stopped: {run['stopped']}, {run['wall_ms']:.0f} ms] "
                     f"stdout: {run['stdout']!r} stderr: {run['stderr']!r}", 150)
    if "content" in result:
        texts = [c.get("text", f"<{c.get('type')}>") for c in result["content"]]
        flag = " [isError: the upstream refused]" if result.get("isError") else ""
        return short(" | ".join(texts)) + flag
    if "contents" in result:
        return short(result["contents"][0].get("text", "<blob>"))
    return short(result)


if sys.argv[1:] == ["--sandbox-events"]:  # audit-query --format json, sandboxed runs
    for line in sys.stdin:
        event = json.loads(line)["event"]
        run = event.get("sandbox", {})
        ended = f"exit {run['exit_code']}" if "exit_code" in run else f"signal {run.get('signal')}"
        print(f"  {event['tool']:<18} {run.get('backend')}/{run.get('profile')} {run.get('language')}: "
              f"stopped {run.get('stopped')}, {ended}, {run.get('wall_us', 0) / 1000:.0f} ms, "
              f"peak {run.get('memory_peak_bytes', 0) >> 20} MiB")
    sys.exit(0)

for line in sys.stdin:
    try:
        item = json.loads(line)
    except ValueError:
        continue
    if "connected" in item:
        info = item["connected"]
        print(f"  connected, protocol {info['protocolVersion']}, server {short(info.get('serverInfo'))}")
    elif "op" in item:
        if item["ok"]:
            print(f"  {item['op']:<14} -> {result_text(item['result'])}")
        else:
            print(f"  {item['op']:<14} -> error {item['error'].get('code')}: {short(item['error']['message'])}")
    elif "notification" in item:
        note = item["notification"]
        print(f"    (notification {note['method']}: {short(note.get('params', {}), 70)})")
    elif "server_request" in item:
        req = item["server_request"]
        print(f"    (the server asked the agent: {req['method']}, relayed by the gateway and answered)")
