//! The guest agent of MCPGuard's microVM sandboxes: install it in the guest's root
//! filesystem and boot the kernel with `init=` pointing at it (see
//! `mcpguard_sandbox::vm::guest`).

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(mcpguard_sandbox::vm::guest::agent_main(&args));
}
