#!/usr/bin/env node
// Scripted MCP client driver built on the official TypeScript SDK
// (@modelcontextprotocol/sdk 1.x, `Client`), the counterpart of py_client.py.
//
// MCPGuard's integration tests use it to drive a real client implementation
// through the gateway. It connects to one server, runs a JSON script of steps
// and prints one JSON object per line on stdout.
//
// Usage:
//   node ts_client.mjs --url URL [options] SCRIPT
//   node ts_client.mjs --stdio [options] SCRIPT -- COMMAND [ARGS...]
//
// SCRIPT is a JSON list of steps, inline or as @path/to/file.json; the ops and
// their options are those of py_client.py: list_tools, list_resources,
// list_resource_templates, list_prompts (optional "cursor"), call_tool ("name",
// "arguments", "progress" default true, "timeout" seconds), read_resource
// ("uri"), get_prompt ("name", "arguments"), complete ("ref" or the shorthands
// "prompt" / "template", "argument", optional "context"), ping,
// set_logging_level ("level"), sleep ("seconds").
//
// Output lines (stdout):
//   {"connected": {"protocolVersion": ..., "serverInfo": ..., "capabilities": ...}}
//   {"op": ..., "ok": true, "result": {...}}
//   {"op": ..., "ok": false, "error": {"type": ..., "message": ..., "code": ..., "data": ...}}
//   {"notification": {"method": ..., "params": {...}}}     every server notification, as received
//   {"server_request": {"method": ..., "id": ..., "params": {...}}}   sampling / elicitation / roots
// Results are the SDK's parsed results, printed as JSON. Error messages have
// the SDK's "MCP error <code>: " prefix removed so they match py_client.py.
//
// Callbacks (each client capability is advertised only when its flag is given):
//   --elicit-json JSON    answer elicitation with action "accept" and this content
//   --elicit-action ACT   answer elicitation with accept|decline|cancel
//   --sample-text TEXT    answer sampling/createMessage with this assistant text
//   --roots URI           add a root (repeatable); advertises the roots capability
//
// --mode auto|legacy is accepted for symmetry with py_client.py; this SDK only
// speaks the initialize handshake (protocol <= 2025-11-25), so both behave alike.
//
// Exit status: 0 when the script ran (even if steps failed), 2 on a usage
// error, 1 when the connection could not be established (reason on stderr).

import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  McpError,
} from "@modelcontextprotocol/sdk/types.js";

/** Print one JSON line on stdout. */
function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

function usage(message) {
  process.stderr.write(`ts_client: ${message}\n`);
  process.exit(2);
}

function describeError(err) {
  if (err instanceof McpError) {
    const out = {
      type: "McpError",
      // McpError prefixes its message with "MCP error <code>: "; keep the server's text only.
      message: err.message.replace(/^MCP error -?\d+: /, ""),
      code: err.code,
    };
    if (err.data !== undefined) out.data = err.data;
    return out;
  }
  const out = { type: err?.name ?? typeof err, message: String(err?.message ?? err) };
  if (typeof err?.code === "number") out.code = err.code;
  return out;
}

// ---------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------

function parseCommandLine(argv) {
  // Everything after the first "--" is the stdio server command line.
  let command = [];
  const cut = argv.indexOf("--");
  if (cut >= 0) {
    command = argv.slice(cut + 1);
    argv = argv.slice(0, cut);
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: "string" },
        stdio: { type: "boolean", default: false },
        mode: { type: "string", default: "auto" },
        header: { type: "string", multiple: true, default: [] },
        timeout: { type: "string", default: "30" },
        "elicit-json": { type: "string" },
        "elicit-action": { type: "string" },
        "sample-text": { type: "string" },
        roots: { type: "string", multiple: true, default: [] },
      },
    });
  } catch (err) {
    usage(err.message);
  }
  const { values, positionals } = parsed;
  if (Boolean(values.url) === values.stdio) usage("give exactly one of --url URL or --stdio");
  if (values.stdio && command.length === 0) usage("--stdio needs the server command after --");
  if (values.url && command.length > 0) usage("a command after -- only goes with --stdio");
  if (positionals.length !== 1) usage("expected exactly one SCRIPT argument");
  if (!["auto", "legacy"].includes(values.mode)) {
    usage(`--mode ${values.mode}: this SDK only supports the initialize handshake (auto|legacy)`);
  }
  const elicitAction = values["elicit-action"] ?? (values["elicit-json"] !== undefined ? "accept" : undefined);
  if (elicitAction && !["accept", "decline", "cancel"].includes(elicitAction)) {
    usage("--elicit-action must be accept, decline or cancel");
  }
  return { values, command, script: positionals[0], elicitAction };
}

function loadScript(text) {
  if (text.startsWith("@")) text = readFileSync(text.slice(1), "utf8");
  const script = JSON.parse(text);
  if (!Array.isArray(script) || !script.every((s) => s && typeof s === "object" && "op" in s)) {
    throw new Error("SCRIPT must be a JSON list of objects with an 'op' key");
  }
  return script;
}

// ---------------------------------------------------------------------------
// Steps
// ---------------------------------------------------------------------------

function completionRef(step) {
  if (step.prompt !== undefined) return { type: "ref/prompt", name: step.prompt };
  if (step.template !== undefined) return { type: "ref/resource", uri: step.template };
  return step.ref;
}

async function runStep(client, step, timeoutMs) {
  const cursorParams = step.cursor !== undefined ? { cursor: step.cursor } : undefined;
  const opts = { timeout: timeoutMs };
  switch (step.op) {
    case "list_tools":
      return client.listTools(cursorParams, opts);
    case "list_resources":
      return client.listResources(cursorParams, opts);
    case "list_resource_templates":
      return client.listResourceTemplates(cursorParams, opts);
    case "list_prompts":
      return client.listPrompts(cursorParams, opts);
    case "call_tool": {
      const callOpts = { timeout: step.timeout !== undefined ? step.timeout * 1000 : timeoutMs };
      if (step.progress !== false) {
        // A progress callback makes the SDK attach a progress token; the
        // notifications themselves are printed by the transport tap.
        callOpts.onprogress = () => {};
        callOpts.resetTimeoutOnProgress = true;
      }
      return client.callTool({ name: step.name, arguments: step.arguments ?? {} }, undefined, callOpts);
    }
    case "read_resource":
      return client.readResource({ uri: step.uri }, opts);
    case "get_prompt":
      return client.getPrompt({ name: step.name, arguments: step.arguments ?? {} }, opts);
    case "complete": {
      const params = { ref: completionRef(step), argument: step.argument };
      if (step.context !== undefined) params.context = { arguments: step.context };
      return client.complete(params, opts);
    }
    case "ping":
      return client.ping(opts);
    case "set_logging_level":
      return client.setLoggingLevel(step.level, opts);
    case "sleep":
      await sleep(Number(step.seconds ?? 0.1) * 1000);
      return {};
    default:
      throw new Error(`unknown op ${JSON.stringify(step.op)}`);
  }
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

async function main() {
  const { values, command, script: scriptArg, elicitAction } = parseCommandLine(process.argv.slice(2));
  let script;
  try {
    script = loadScript(scriptArg);
  } catch (err) {
    process.stderr.write(`ts_client: bad script: ${err.message}\n`);
    return 2;
  }
  const timeoutMs = Number(values.timeout) * 1000;

  // Advertise only the capabilities we can answer.
  const capabilities = {};
  if (elicitAction) capabilities.elicitation = { form: {} };
  if (values["sample-text"] !== undefined) capabilities.sampling = {};
  if (values.roots.length > 0) capabilities.roots = { listChanged: true };

  const client = new Client({ name: "mcpguard-ts-client", version: "1.0.0" }, { capabilities });

  if (elicitAction) {
    const content = values["elicit-json"] !== undefined ? JSON.parse(values["elicit-json"]) : undefined;
    client.setRequestHandler(ElicitRequestSchema, async (request, extra) => {
      emit({ server_request: { method: request.method, id: extra.requestId, params: request.params } });
      return elicitAction === "accept" ? { action: "accept", content: content ?? {} } : { action: elicitAction };
    });
  }
  if (values["sample-text"] !== undefined) {
    client.setRequestHandler(CreateMessageRequestSchema, async (request, extra) => {
      emit({ server_request: { method: request.method, id: extra.requestId, params: request.params } });
      return {
        role: "assistant",
        content: { type: "text", text: values["sample-text"] },
        model: "ts-client-fixed",
        stopReason: "endTurn",
      };
    });
  }
  if (values.roots.length > 0) {
    client.setRequestHandler(ListRootsRequestSchema, async (request, extra) => {
      emit({ server_request: { method: request.method, id: extra.requestId } });
      return { roots: values.roots.map((uri) => ({ uri })) };
    });
  }
  client.onerror = (err) => process.stderr.write(`ts_client: transport error: ${err?.message ?? err}\n`);

  let transport;
  if (values.stdio) {
    // Pass our whole environment through so tests can configure the server via env.
    transport = new StdioClientTransport({
      command: command[0],
      args: command.slice(1),
      env: { ...process.env },
      stderr: "inherit",
    });
  } else {
    const headers = {};
    for (const h of values.header) {
      const i = h.indexOf(":");
      if (i > 0) headers[h.slice(0, i).trim()] = h.slice(i + 1).trim();
    }
    transport = new StreamableHTTPClientTransport(new URL(values.url), { requestInit: { headers } });
  }

  // Tap every inbound message before the SDK sees it (Protocol.connect chains an
  // existing onmessage): notifications are printed exactly as received, which
  // keeps progress tokens that the SDK's onprogress callback would strip.
  transport.onmessage = (message) => {
    if (message && typeof message.method === "string" && message.id === undefined) {
      emit({ notification: { method: message.method, ...(message.params !== undefined && { params: message.params }) } });
    }
  };
  // The client reports the negotiated version to HTTP transports through
  // setProtocolVersion; stdio has none, so give every transport one to observe it.
  let protocolVersion = null;
  const setVersion = transport.setProtocolVersion?.bind(transport);
  transport.setProtocolVersion = (version) => {
    protocolVersion = version;
    setVersion?.(version);
  };

  try {
    await client.connect(transport, { timeout: timeoutMs });
  } catch (err) {
    const e = describeError(err);
    process.stderr.write(`ts_client: connection failed: ${e.type}: ${e.message}\n`);
    await client.close().catch(() => {});
    return 1;
  }

  emit({
    connected: {
      protocolVersion,
      serverInfo: client.getServerVersion() ?? null,
      capabilities: client.getServerCapabilities() ?? null,
    },
  });

  for (const step of script) {
    try {
      const result = await runStep(client, step, timeoutMs);
      emit({ op: step.op, ok: true, result });
    } catch (err) {
      emit({ op: step.op, ok: false, error: describeError(err) });
    }
  }

  try {
    // Ends the HTTP session (DELETE) or the stdio child process.
    if (transport instanceof StreamableHTTPClientTransport) await transport.terminateSession();
  } catch (err) {
    process.stderr.write(`ts_client: closing the session failed: ${err?.message ?? err}\n`);
  }
  await client.close().catch(() => {});
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`ts_client: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
