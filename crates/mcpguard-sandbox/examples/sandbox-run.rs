//! Runs a command in the native sandbox and prints the outcome: for trying things out.
//! `cargo run -p mcpguard-sandbox --example sandbox-run -- sh -c 'id; ls /'` (set
//! `MOUNTS=/a:/b` to show host paths read-only)

use mcpguard_sandbox::native::{HelperCommand, NativeOptions, NativeSandbox};
use mcpguard_sandbox::{Sandbox, Spec};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let program = args.next().unwrap_or_else(|| "true".into());
    let exe = std::env::current_exe().unwrap_or_default();
    let helper = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("mcpguard-sandbox-helper"))
        .unwrap_or_default();
    let sandbox = NativeSandbox::new(NativeOptions::new(HelperCommand {
        program: helper,
        args: Vec::new(),
    }));
    eprintln!("{:?}", sandbox.availability());
    // MOUNTS=/a:/b shows those host paths read-only.
    let mounts = std::env::var("MOUNTS")
        .unwrap_or_default()
        .split(':')
        .filter(|m| !m.is_empty())
        .map(mcpguard_sandbox::Mount::read_only)
        .collect();
    let spec = Spec {
        program,
        args: args.collect(),
        mounts,
        ..Spec::default()
    };
    match sandbox.run(&spec, b"").await {
        Ok(outcome) => {
            print!("{}", outcome.stdout.text());
            eprint!("{}", outcome.stderr.text());
            eprintln!(
                "{:?} {:?} {:?}",
                outcome.exit, outcome.stopped, outcome.usage
            );
        }
        Err(e) => eprintln!("error: {e}"),
    }
}
