//! The microVM backends, tested with what runs on a machine without hardware KVM:
//!
//! - the guest agent (`mcpguard-vm-agent`), for real, on a Unix socket instead of vsock;
//! - the Firecracker backend's whole path — REST API conversation, hybrid-vsock
//!   handshake, job and outcome — against `tests/peers/firecracker_standin.py`, a
//!   STAND-IN that validates the API's requests as Firecracker's OpenAPI description
//!   says and runs the agent as a host process instead of booting a kernel;
//! - the microsandbox backend against the real `msb` CLI from PyPI: `msb doctor`, and
//!   `msb create` with the arguments the backend builds (on this machine the VM itself
//!   fails to start; where `msb doctor` passes, the test runs a real program instead).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test harness helpers: a failure is the test's failure"
)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use mcpguard_sandbox::firecracker::api::{ApiClient, BootSource, InstanceAction};
use mcpguard_sandbox::firecracker::{FirecrackerOptions, FirecrackerSandbox};
use mcpguard_sandbox::microsandbox::{MicrosandboxOptions, MicrosandboxSandbox};
use mcpguard_sandbox::vm::protocol::{
    FailureKind, Job, Request, Response, read_frame, write_frame,
};
use mcpguard_sandbox::{Availability, Exit, Limits, Mount, Sandbox, SandboxError, Spec, Stop};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

const AGENT: &str = env!("CARGO_BIN_EXE_mcpguard-vm-agent");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shell(script: &str) -> Spec {
    Spec {
        program: "/bin/sh".into(),
        args: vec!["-c".into(), script.into()],
        env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
        workdir: Some(std::env::temp_dir()),
        limits: Limits {
            wall_time: Duration::from_secs(10),
            ..Limits::default()
        },
        ..Spec::default()
    }
}

/// The agent as a host process on a Unix socket; killed when dropped.
struct Agent {
    child: std::process::Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("agent.sock");
        let child = std::process::Command::new(AGENT)
            .arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .arg("--run-as")
            .arg("65534:65534")
            .spawn()
            .unwrap();
        // The socket file appears at bind(), a moment before listen(): wait until a
        // connection is accepted, not merely until the file exists.
        for _ in 0..500 {
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Agent {
            child,
            socket,
            _dir: dir,
        }
    }

    async fn ask(&self, request: &Request) -> Response {
        let mut stream = UnixStream::connect(&self.socket).await.unwrap();
        write_frame(&mut stream, request).await.unwrap();
        read_frame(&mut stream).await.unwrap()
    }

    async fn run(&self, spec: &Spec, stdin: &[u8]) -> Response {
        self.ask(&Request::Run(Job::from_spec(spec, stdin))).await
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn finished(response: Response) -> mcpguard_sandbox::Outcome {
    match response {
        Response::Finished(outcome) => outcome.into_outcome(Duration::ZERO),
        other => panic!("expected an outcome, got {other:?}"),
    }
}

#[tokio::test]
async fn the_agent_runs_jobs_as_another_user_within_their_limits() {
    let agent = Agent::start();
    assert!(matches!(
        agent.ask(&Request::Ping).await,
        Response::Pong { .. }
    ));

    // stdin in, stdout and the exit status out; only the job's environment.
    let mut spec = shell("cat; echo; env; exit 7");
    spec.env.insert("ONLY".into(), "this".into());
    let outcome = finished(agent.run(&spec, b"from stdin").await);
    let stdout = String::from_utf8_lossy(&outcome.stdout.bytes).into_owned();
    assert_eq!(outcome.exit, Exit::Code(7));
    assert!(stdout.starts_with("from stdin\n"), "{stdout}");
    assert!(stdout.contains("ONLY=this"), "{stdout}");
    assert!(
        !stdout.contains("HOME="),
        "the agent's environment leaked: {stdout}"
    );

    // Another user (when the agent is root, as it is as a guest's init).
    if nix::unistd::geteuid().is_root() {
        let outcome = finished(agent.run(&shell("id -u; id -G"), b"").await);
        assert_eq!(
            String::from_utf8_lossy(&outcome.stdout.bytes),
            "65534\n65534\n"
        );
    }

    // The wall clock: killed, with everything it started.
    let mut spec = shell("sleep 60 & sleep 60");
    spec.limits.wall_time = Duration::from_millis(300);
    let outcome = finished(agent.run(&spec, b"").await);
    assert_eq!(outcome.stopped, Stop::WallTime);

    // CPU time by RLIMIT_CPU.
    let mut spec = shell("while :; do :; done");
    spec.limits.cpu_time = Duration::from_secs(1);
    let outcome = finished(agent.run(&spec, b"").await);
    assert_eq!(outcome.stopped, Stop::CpuTime, "{outcome:?}");

    // Output beyond the cap stops the job.
    let mut spec = shell("yes");
    spec.limits.output_bytes = 10_000;
    let outcome = finished(agent.run(&spec, b"").await);
    assert_eq!(outcome.stopped, Stop::Output);
    assert_eq!(outcome.stdout.bytes.len(), 10_000);
    assert!(outcome.stdout.truncated);

    // A program that does not exist is an exec failure, not an outcome.
    let mut spec = shell("");
    spec.program = "/no/such/program".into();
    assert!(matches!(
        agent.run(&spec, b"").await,
        Response::Failed {
            kind: FailureKind::Exec,
            ..
        }
    ));

    // A malformed frame gets a protocol failure, and the agent keeps serving.
    let mut stream = UnixStream::connect(&agent.socket).await.unwrap();
    stream.write_all(&5u32.to_be_bytes()).await.unwrap();
    stream.write_all(b"nope!").await.unwrap();
    let answer: Response = read_frame(&mut stream).await.unwrap();
    assert!(matches!(
        answer,
        Response::Failed {
            kind: FailureKind::Protocol,
            ..
        }
    ));
    assert!(matches!(
        agent.ask(&Request::Ping).await,
        Response::Pong { .. }
    ));
}

/// A Firecracker backend on the stand-in VMM: a "kernel" file that names the agent, an
/// empty "rootfs", and a fake /dev/kvm (KVM itself is not used by the stand-in).
struct StandIn {
    dir: tempfile::TempDir,
}

impl StandIn {
    fn new() -> StandIn {
        let dir = tempfile::tempdir().unwrap();
        let python = mcpguard_sandbox::probe::on_path("python3").expect("python3 on PATH");
        let script = repo().join("tests/peers/firecracker_standin.py");
        let vmm = dir.path().join("firecracker");
        std::fs::write(
            &vmm,
            format!(
                "#!/bin/sh\nexec {} {} \"$@\"\n",
                python.display(),
                script.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&vmm, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        std::fs::write(
            dir.path().join("vmlinux"),
            format!("#!standin-kernel\n{AGENT}\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("rootfs.ext4"), "").unwrap();
        std::fs::write(dir.path().join("kvm"), "").unwrap();
        StandIn { dir }
    }

    fn options(&self) -> FirecrackerOptions {
        let path = self.dir.path();
        FirecrackerOptions {
            firecracker: path.join("firecracker"),
            jailer: None,
            kernel: path.join("vmlinux"),
            rootfs: path.join("rootfs.ext4"),
            state_dir: path.join("state"),
            kvm_device: path.join("kvm"),
            allow_software_kvm: true,
            ..FirecrackerOptions::default()
        }
    }
}

#[tokio::test]
async fn firecracker_runs_a_job_through_the_api_and_vsock_of_a_stand_in_vmm() {
    let standin = StandIn::new();
    let sandbox = FirecrackerSandbox::new(standin.options());
    assert!(
        matches!(sandbox.availability(), Availability::Ready { notes } if notes.iter().any(|n| n.contains("without the jailer"))),
        "{:?}",
        sandbox.availability()
    );

    let outcome = sandbox
        .run(&shell("cat; echo \" and $0\"; exit 3"), b"into the guest")
        .await
        .unwrap();
    assert_eq!(outcome.exit, Exit::Code(3), "{outcome:?}");
    assert_eq!(
        String::from_utf8_lossy(&outcome.stdout.bytes),
        "into the guest and /bin/sh\n"
    );
    assert!(outcome.usage.cpu.is_some());

    let mut spec = shell("sleep 30");
    spec.limits.wall_time = Duration::from_millis(500);
    let outcome = sandbox.run(&spec, b"").await.unwrap();
    assert_eq!(outcome.stopped, Stop::WallTime);

    let mut spec = shell("");
    spec.program = "/no/such/program".into();
    assert!(matches!(
        sandbox.run(&spec, b"").await,
        Err(SandboxError::Exec(_))
    ));

    let mut spec = shell("true");
    spec.mounts.push(Mount::read_only("/etc"));
    let error = sandbox.run(&spec, b"").await.unwrap_err().to_string();
    assert!(error.contains("no shared filesystem"), "{error}");

    // Every VM's directory is gone afterwards (and with it the VMM, killed).
    let left: Vec<_> = std::fs::read_dir(standin.dir.path().join("state"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[tokio::test]
async fn firecracker_api_refusals_reach_the_caller_with_their_fault_message() {
    let standin = StandIn::new();
    let socket = standin.dir.path().join("api.sock");
    let mut vmm = tokio::process::Command::new(standin.dir.path().join("firecracker"))
        .arg("--api-sock")
        .arg(&socket)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let api = ApiClient::new(&socket);
    for _ in 0..500 {
        if api.describe().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(api.describe().await.unwrap().state, "Not started");
    let error = api
        .put(
            "/actions",
            &InstanceAction {
                action_type: "InstanceStart".into(),
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("PUT /actions (400): Cannot start microvm without kernel configuration"),
        "{error}"
    );
    let error = api
        .put(
            "/boot-source",
            &BootSource {
                kernel_image_path: "/no/such/vmlinux".into(),
                boot_args: String::new(),
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("kernel file cannot be opened"), "{error}");
    vmm.kill().await.unwrap();
    // A dead VMM is a transport error naming the socket.
    let error = api.describe().await.unwrap_err().to_string();
    assert!(error.contains(&socket.display().to_string()), "{error}");
}

#[test]
fn firecracker_says_why_it_cannot_run() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = FirecrackerSandbox::new(FirecrackerOptions {
        firecracker: "no-such-firecracker".into(),
        jailer: Some("no-such-jailer".into()),
        kernel: dir.path().join("vmlinux"),
        rootfs: dir.path().join("rootfs.ext4"),
        kvm_device: dir.path().join("kvm"),
        ..FirecrackerOptions::default()
    });
    let Availability::Unavailable { reason } = sandbox.availability() else {
        panic!("available without anything installed");
    };
    for part in [
        "no `no-such-firecracker` binary",
        "no `no-such-jailer` binary",
        "no guest kernel",
        "no guest rootfs",
        "no /dev/kvm",
    ] {
        assert!(reason.contains(part), "{part:?} missing from {reason}");
    }
}

fn msb() -> PathBuf {
    let msb = repo().join(".venv/bin/msb");
    assert!(
        msb.exists(),
        "{} is missing: run scripts/setup.sh (it installs PyPI microsandbox)",
        msb.display()
    );
    msb
}

#[tokio::test]
async fn microsandbox_asks_the_real_msb_and_reports_what_it_says() {
    let home = tempfile::tempdir().unwrap();
    let rootfs = tempfile::tempdir().unwrap();
    for dir in ["bin", "usr/bin"] {
        std::fs::create_dir_all(rootfs.path().join(dir)).unwrap();
    }
    let options = MicrosandboxOptions {
        msb: msb(),
        image: rootfs.path().display().to_string(),
        home: Some(home.path().to_path_buf()),
        create_timeout: Duration::from_secs(120),
        ..MicrosandboxOptions::default()
    };
    let checked = MicrosandboxSandbox::new(options.clone());
    let mut spec = shell("echo hello from a microVM");
    spec.mounts.push(Mount::read_only(rootfs.path()));
    match checked.availability() {
        Availability::Ready { .. } => {
            // A machine with hardware virtualisation: run for real, with busybox (from
            // Debian's busybox-static, which scripts/docker_sandbox.sh installs) as sh.
            std::fs::copy("/bin/busybox", rootfs.path().join("bin/sh"))
                .expect("/bin/busybox (apt-get install busybox-static)");
            let outcome = checked.run(&spec, b"").await.unwrap();
            assert_eq!(
                String::from_utf8_lossy(&outcome.stdout.bytes),
                "hello from a microVM\n"
            );
        }
        Availability::Unavailable { reason } => {
            assert!(
                reason.starts_with("`msb doctor` failed: error:"),
                "{reason}"
            );
            // What msb refuses, it says why; the backend passes that on.
            let forced = MicrosandboxSandbox::new(MicrosandboxOptions {
                skip_doctor: true,
                ..options
            });
            let error = forced.run(&spec, b"").await.unwrap_err();
            let SandboxError::Setup { reason, .. } = &error else {
                panic!("expected a setup error, got {error:?}");
            };
            // msb accepted every argument the backend built (a bad one fails in its
            // argument parser instead) and got as far as starting the VM.
            assert!(reason.contains("`msb create` failed"), "{reason}");
            assert!(reason.contains("failed to start"), "{reason}");
            assert!(!reason.contains("unexpected argument"), "{reason}");
            assert!(!reason.contains("must be a flag"), "{reason}");
            // ...and nothing is left behind.
            let list = std::process::Command::new(msb())
                .arg("list")
                .env("MSB_HOME", home.path())
                .output()
                .unwrap();
            let list = String::from_utf8_lossy(&list.stdout);
            assert!(!list.contains("mcpguard-"), "left behind: {list}");
        }
    }
}
