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
    if "content" in result:
        texts = [c.get("text", f"<{c.get('type')}>") for c in result["content"]]
        flag = " [isError: the upstream refused]" if result.get("isError") else ""
        return short(" | ".join(texts)) + flag
    if "contents" in result:
        return short(result["contents"][0].get("text", "<blob>"))
    return short(result)


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
