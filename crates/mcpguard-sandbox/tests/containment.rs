//! The containment suite: every backend that can run here must pass it. Each test makes
//! one escape attempt from inside a sandbox and shows it failing: reading host secrets,
//! writing outside the work directory, reaching a host port, exhausting processes,
//! memory, CPU or output, leaving processes behind, and undoing the sandbox itself.

use std::collections::BTreeMap;
use std::time::Duration;

use mcpguard_sandbox::docker::{DockerOptions, DockerSandbox};
use mcpguard_sandbox::native::{HelperCommand, NativeOptions, NativeSandbox};
use mcpguard_sandbox::{Availability, Exit, Limits, Mount, Network, Outcome, Sandbox, Spec, Stop};

fn native() -> NativeSandbox {
    NativeSandbox::new(NativeOptions::new(HelperCommand {
        program: env!("CARGO_BIN_EXE_mcpguard-sandbox-helper").into(),
        args: Vec::new(),
    }))
}

/// The Docker engine the tests use: `MCPGUARD_TEST_DOCKER_SOCKET`, or the private one that
/// `scripts/docker_sandbox.sh start` runs (`scripts/test.sh` starts it).
async fn docker() -> DockerSandbox {
    let socket = std::env::var("MCPGUARD_TEST_DOCKER_SOCKET").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../.dockerd/docker.sock").to_string()
    });
    DockerSandbox::connect(DockerOptions {
        socket: socket.into(),
        ..DockerOptions::new()
    })
    .await
}

/// What a backend's sandbox has beyond POSIX sh and the usual tools, for the tests that
/// need it.
struct Kit {
    /// Tries a TCP connection to 127.0.0.1:PORT (and localhost); prints `CONNECTED host`
    /// or `refused host ...`.
    connect: fn(u16) -> Spec,
    /// Sends `ping` over the sandbox's own loopback and prints what arrived.
    loopback: fn() -> Spec,
    /// Allocates 1 GiB and prints `allocated`.
    memory_bomb: fn() -> Spec,
    /// Shell lines that try to undo the sandbox, each printing one line of error.
    undo: &'static str,
    /// The backend measures CPU time.
    measures_cpu: bool,
}

fn python(code: String) -> Spec {
    Spec {
        program: "python3".into(),
        args: vec!["-c".into(), code],
        ..Spec::default()
    }
}

/// The native sandbox shows the host's /usr: Python is there.
const NATIVE_KIT: Kit = Kit {
    connect: |port| {
        python(format!(
            "import socket\n\
             for host in ('127.0.0.1', 'localhost'):\n\
             \x20   try:\n\
             \x20       socket.create_connection((host, {port}), timeout=2)\n\
             \x20       print('CONNECTED', host)\n\
             \x20   except OSError as e:\n\
             \x20       print('refused', host, e)\n"
        ))
    },
    loopback: || {
        python(
            "import socket\n\
             s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n\
             c = socket.create_connection(s.getsockname()); a, _ = s.accept()\n\
             c.sendall(b'ping'); print(a.recv(4).decode())\n"
                .into(),
        )
    },
    memory_bomb: || python("b = bytearray(1 << 30); print('allocated')".into()),
    undo: "mount -t tmpfs none /work 2>&1 | head -1; \
           unshare -r true 2>&1 | head -1; \
           umount /usr 2>&1 | head -1",
    measures_cpu: true,
};

/// The Docker image holds busybox only.
const BUSYBOX_KIT: Kit = Kit {
    connect: |port| {
        shell(&format!(
            "for host in 127.0.0.1 localhost; do \
               if nc -w 2 $host {port} </dev/null; then echo CONNECTED $host; \
               else echo refused $host; fi; done"
        ))
    },
    loopback: || {
        shell(
            "nc -l -p 4567 > /tmp/got & for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do \
             echo ping | nc -w 1 127.0.0.1 4567 2>/dev/null && break; sleep 0.1; done; wait; cat /tmp/got",
        )
    },
    memory_bomb: || shell("x=$(head -c 1073741824 /dev/zero | tr '\\0' a); echo allocated"),
    undo: "mount -t tmpfs none /work 2>&1 | head -1; \
           nsenter -t 1 -U true 2>&1 | head -1; \
           umount /tmp 2>&1 | head -1",
    measures_cpu: false,
};

fn shell(script: &str) -> Spec {
    Spec {
        program: "sh".into(),
        args: vec!["-c".into(), script.into()],
        env: BTreeMap::from([("PATH".into(), "/usr/bin:/bin".into())]),
        ..Spec::default()
    }
}

fn limited(mut spec: Spec, limits: impl FnOnce(&mut Limits)) -> Spec {
    limits(&mut spec.limits);
    spec
}

async fn run(sandbox: &dyn Sandbox, spec: &Spec) -> Result<Outcome, String> {
    sandbox
        .run(spec, b"")
        .await
        .map_err(|e| format!("the sandbox failed to run {spec:?}: {e}"))
}

fn text(outcome: &Outcome) -> (String, String) {
    (outcome.stdout.text(), outcome.stderr.text())
}

/// Pids of host processes whose command line contains `marker`.
fn host_processes_with(marker: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            cmdline.contains(marker).then_some(pid)
        })
        .collect()
}

macro_rules! containment_suite {
    ($backend:ident, $make:expr, $kit:expr) => {
        mod $backend {
            use super::*;

            const KIT: Kit = $kit;

            async fn sandbox() -> Box<dyn Sandbox> {
                let sandbox = $make;
                if let Availability::Unavailable { reason } = sandbox.availability() {
                    panic!("the {} backend cannot run here: {reason}", sandbox.name());
                }
                Box::new(sandbox)
            }

            #[tokio::test]
            async fn runs_a_program_and_reports_its_end() {
                let sandbox = sandbox().await;
                let outcome = run(&*sandbox, &shell("echo out; echo err >&2; exit 3"))
                    .await
                    .unwrap();
                assert_eq!(outcome.exit, Exit::Code(3));
                assert_eq!(outcome.stopped, Stop::Exited);
                assert_eq!(text(&outcome), ("out\n".into(), "err\n".into()));
                assert_eq!(outcome.usage.cpu.is_some(), KIT.measures_cpu);
            }

            #[tokio::test]
            async fn stdin_reaches_the_program() {
                let sandbox = sandbox().await;
                let outcome = sandbox
                    .run(&shell("tr a-z A-Z"), b"hello sandbox")
                    .await
                    .unwrap();
                assert_eq!(outcome.stdout.text(), "HELLO SANDBOX");
            }

            #[tokio::test]
            async fn sees_only_its_own_environment() {
                let sandbox = sandbox().await;
                let mut spec = shell("env | sort");
                spec.env.insert("GIVEN".into(), "yes".into());
                let outcome = run(&*sandbox, &spec).await.unwrap();
                let (out, _) = text(&outcome);
                let names: Vec<&str> = out.lines().filter_map(|l| l.split('=').next()).collect();
                assert!(names.contains(&"GIVEN"), "{out}");
                for name in &names {
                    assert!(
                        [
                            "GIVEN", "PATH", "PWD", "SHLVL", "_", "OLDPWD", "HOSTNAME", "HOME"
                        ]
                        .contains(name),
                        "the host's `{name}` leaked in: {out}"
                    );
                }
            }

            #[tokio::test]
            async fn cannot_read_host_secrets() {
                let sandbox = sandbox().await;
                let secret_dir = tempfile::tempdir().unwrap();
                let secret = secret_dir.path().join("secret.txt");
                std::fs::write(&secret, "top-secret-value").unwrap();
                let script = format!(
                    "cat /etc/shadow; cat {}; ls /root; ls /home; cat /proc/1/environ; echo done",
                    secret.display()
                );
                let outcome = run(&*sandbox, &shell(&script)).await.unwrap();
                let (out, err) = text(&outcome);
                assert!(
                    !out.contains("top-secret-value") && !out.contains("root:"),
                    "{out}"
                );
                assert!(out.ends_with("done\n"), "{out}");
                let missing = |path: &str| {
                    err.lines()
                        .any(|l| l.contains(path) && l.contains("No such file"))
                };
                assert!(missing("/etc/shadow") && missing("secret.txt"), "{err}");
            }

            #[tokio::test]
            async fn cannot_write_outside_its_work_directory() {
                let sandbox = sandbox().await;
                let work = tempfile::tempdir().unwrap();
                let (uid, gid) = sandbox_owner();
                std::os::unix::fs::chown(work.path(), Some(uid), Some(gid)).unwrap();
                let outside = tempfile::tempdir().unwrap();
                let mut spec = shell(
                    "for f in /usr/evil /etc/evil /evil /bin/evil /proc/evil; do \
                       (echo x > $f) 2>/dev/null && echo WROTE $f; done; \
                     echo kept > /work/kept && echo x > /tmp/scratch && echo ok",
                );
                spec.workdir = Some(work.path().to_path_buf());
                spec.mounts.push(Mount::read_only(outside.path()));
                let escape = format!("{}/evil", outside.path().display());
                spec.args[1].push_str(&format!(
                    "; (echo x > {escape}) 2>/dev/null && echo WROTE {escape}"
                ));
                let outcome = run(&*sandbox, &spec).await.unwrap();
                let (out, err) = text(&outcome);
                assert!(!out.contains("WROTE"), "{out} {err}");
                assert!(out.contains("ok"), "{out} {err}");
                assert_eq!(
                    std::fs::read_to_string(work.path().join("kept")).unwrap(),
                    "kept\n"
                );
                assert!(!outside.path().join("evil").exists());
                assert!(!std::path::Path::new("/evil").exists());
            }

            #[tokio::test]
            async fn cannot_reach_a_host_port() {
                let sandbox = sandbox().await;
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                listener.set_nonblocking(true).unwrap();
                let port = listener.local_addr().unwrap().port();
                for network in [Network::None, Network::Loopback] {
                    let spec = Spec {
                        network,
                        ..(KIT.connect)(port)
                    };
                    let outcome = run(&*sandbox, &spec).await.unwrap();
                    let (out, err) = text(&outcome);
                    assert!(!out.contains("CONNECTED"), "{network:?}: {out} {err}");
                    assert!(
                        out.contains("refused 127.0.0.1"),
                        "{network:?}: {out} {err}"
                    );
                    assert!(
                        listener.accept().is_err(),
                        "{network:?}: the host port saw a connection"
                    );
                }
            }

            #[tokio::test]
            async fn loopback_network_is_private_but_works() {
                let sandbox = sandbox().await;
                let spec = Spec {
                    network: Network::Loopback,
                    ..(KIT.loopback)()
                };
                let outcome = run(&*sandbox, &spec).await.unwrap();
                assert_eq!(text(&outcome).0, "ping\n", "{:?}", text(&outcome));
            }

            #[tokio::test]
            async fn a_fork_bomb_hits_the_process_limit() {
                let sandbox = sandbox().await;
                let spec = limited(
                    shell("bomb() { bomb | bomb & }; bomb; sleep 2; echo survived"),
                    |l| {
                        l.processes = 16;
                        l.wall_time = Duration::from_secs(5);
                    },
                );
                let outcome = run(&*sandbox, &spec).await.unwrap();
                assert!(
                    outcome.usage.process_limit_hit || outcome.stderr.text().contains("fork"),
                    "{outcome:?}"
                );
                // The sandbox is still usable afterwards.
                let after = run(&*sandbox, &shell("echo fine")).await.unwrap();
                assert_eq!(after.stdout.text(), "fine\n");
            }

            #[tokio::test]
            async fn a_memory_bomb_is_stopped() {
                let sandbox = sandbox().await;
                let spec = limited((KIT.memory_bomb)(), |l| l.memory_bytes = 64 << 20);
                let outcome = run(&*sandbox, &spec).await.unwrap();
                assert!(!outcome.stdout.text().contains("allocated"), "{outcome:?}");
                assert_ne!(outcome.exit, Exit::Code(0), "{outcome:?}");
                assert!(
                    outcome.stopped == Stop::Memory
                        || outcome.stderr.text().contains("MemoryError"),
                    "{outcome:?}"
                );
            }

            #[tokio::test]
            async fn an_infinite_loop_hits_the_wall_clock() {
                let sandbox = sandbox().await;
                let spec = limited(shell("while :; do :; done"), |l| {
                    l.wall_time = Duration::from_millis(700);
                });
                let started = std::time::Instant::now();
                let outcome = run(&*sandbox, &spec).await.unwrap();
                assert_eq!(outcome.stopped, Stop::WallTime, "{outcome:?}");
                assert!(started.elapsed() < Duration::from_secs(5));
            }

            #[tokio::test]
            async fn a_busy_loop_hits_the_cpu_limit() {
                let sandbox = sandbox().await;
                let spec = limited(shell("while :; do :; done"), |l| {
                    l.cpu_time = Duration::from_secs(1);
                    l.wall_time = Duration::from_secs(20);
                });
                let outcome = run(&*sandbox, &spec).await.unwrap();
                assert_eq!(outcome.stopped, Stop::CpuTime, "{outcome:?}");
            }

            #[tokio::test]
            async fn gigabytes_of_output_are_cut_off() {
                let sandbox = sandbox().await;
                let spec = limited(shell("cat /dev/zero"), |l| {
                    l.output_bytes = 1 << 20;
                });
                let started = std::time::Instant::now();
                let outcome = run(&*sandbox, &spec).await.unwrap();
                assert_eq!(outcome.stopped, Stop::Output, "{outcome:?}");
                assert!(outcome.stdout.truncated);
                assert_eq!(outcome.stdout.bytes.len(), 1 << 20);
                assert!(started.elapsed() < Duration::from_secs(10));
            }

            #[tokio::test]
            async fn no_child_outlives_the_program() {
                let sandbox = sandbox().await;
                let marker = format!("{}", 100_000 + std::process::id() % 50_000);
                let script = format!("sleep {marker} & (setsid sleep {marker} &); echo started");
                let outcome = run(&*sandbox, &shell(&script)).await.unwrap();
                assert_eq!(outcome.stdout.text(), "started\n", "{outcome:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                assert_eq!(
                    host_processes_with(&format!("sleep {marker}")),
                    Vec::<u32>::new()
                );
            }

            #[tokio::test]
            async fn cannot_undo_the_sandbox() {
                let sandbox = sandbox().await;
                let script = format!(
                    "{}; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status",
                    KIT.undo
                );
                let outcome = run(&*sandbox, &shell(&script)).await.unwrap();
                let (out, _) = text(&outcome);
                assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
                assert!(out.contains("CapBnd:\t0000000000000000"), "{out}");
                assert!(out.contains("NoNewPrivs:\t1"), "{out}");
                assert!(out.contains("Seccomp:\t2"), "{out}");
                let lines: Vec<&str> = out.lines().take(3).collect();
                assert!(
                    lines.iter().all(|l| l.contains("denied")
                        || l.contains("not permitted")
                        || l.contains("superuser")),
                    "{out}"
                );
            }

            #[tokio::test]
            async fn a_missing_program_is_a_clear_error() {
                let sandbox = sandbox().await;
                let spec = Spec {
                    program: "no-such-program-xyz".into(),
                    ..Spec::default()
                };
                let error = sandbox.run(&spec, b"").await.unwrap_err().to_string();
                assert!(
                    error.contains("`no-such-program-xyz` was not found"),
                    "{error}"
                );
            }
        }
    };
}

/// The host user the native sandbox's root maps to.
fn sandbox_owner() -> (u32, u32) {
    native().host_ids()
}

containment_suite!(native_backend, native(), NATIVE_KIT);
containment_suite!(docker_backend, docker().await, BUSYBOX_KIT);

/// A file system mounted on the host beneath a directory that a profile mounts
/// read-only must be read-only inside too (a bind remount alone changes only the top).
/// Landlock would refuse the write anyway; this checks the mount layer by itself.
#[tokio::test]
async fn native_read_only_mounts_are_read_only_all_the_way_down() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test mounts a tmpfs on the host: run it as root"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &sub,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m,mode=1777"),
    )
    .unwrap();
    let _unmount = Unmount(sub.clone());
    let spec = Spec {
        mounts: vec![Mount {
            source: dir.path().to_path_buf(),
            target: Some("/data".into()),
            writable: false,
        }],
        ..shell(
            "awk '$5 == \"/data\" || $5 == \"/data/sub\" { split($6, o, \",\"); print $5, o[1] }' /proc/self/mountinfo",
        )
    };
    let outcome = run(&native(), &spec).await.unwrap();
    assert_eq!(text(&outcome).0, "/data ro\n/data/sub ro\n", "{outcome:?}");
}
