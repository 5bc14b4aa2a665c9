//! The sandbox's end of egress: a process beside the program, inside the sandbox's
//! network namespace, that accepts on `127.0.0.1:3128` and relays each connection to
//! the gateway's egress proxy through the Unix socket mounted at [`SOCKET_INSIDE`]. It
//! relays bytes and decides nothing: the proxy checks every tunnel.
//!
//! It is forked by the init before the program, while the init is still
//! single-threaded, drops every capability and sets no-new-privileges; the program
//! cannot signal or trace it (Landlock's signal scope and the seccomp filter), and dies
//! with the init.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;

use nix::sys::signal::Signal;
use nix::unistd::ForkResult;

/// Where the proxy's socket appears inside the sandbox.
pub(crate) const SOCKET_INSIDE: &str = "/run/mcpguard/egress.sock";

/// Binds the forwarder's port and starts it in its own process.
pub(crate) fn start() -> Result<(), String> {
    let listener = TcpListener::bind(crate::egress::PROXY_INSIDE)
        .map_err(|e| format!("binding the egress forwarder: {e}"))?;
    // SAFETY: the init is single-threaded (a clone of the single-threaded helper, and it
    // has started no thread), so the child's copy of memory holds no lock or allocator
    // state of another thread.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => {
            let status = match harden() {
                Ok(()) => serve(&listener),
                Err(_) => 1,
            };
            // SAFETY: _exit(2) ends the process at once; nothing is shared to unwind.
            unsafe { libc::_exit(status) }
        }
        // The listener stays open in the forwarder only (it is close-on-exec anyway).
        Ok(ForkResult::Parent { .. }) => Ok(()),
        Err(e) => Err(format!("starting the egress forwarder: {e}")),
    }
}

fn harden() -> Result<(), String> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| e.to_string())?;
    for set in [
        caps::CapSet::Ambient,
        caps::CapSet::Bounding,
        caps::CapSet::Inheritable,
        caps::CapSet::Effective,
        caps::CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| e.to_string())?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(|e| e.to_string())
}

fn serve(listener: &TcpListener) -> i32 {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let _ = std::thread::Builder::new().spawn(move || relay(client));
    }
    0
}

fn relay(client: TcpStream) {
    let Ok(proxy) = UnixStream::connect(SOCKET_INSIDE) else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(client_read), Ok(proxy_write)) = (client.try_clone(), proxy.try_clone()) else {
        return;
    };
    let upward = std::thread::Builder::new().spawn(move || {
        copy(client_read, proxy_write, |s| s.shutdown(Shutdown::Write));
    });
    copy(proxy, client, |s| s.shutdown(Shutdown::Write));
    if let Ok(upward) = upward {
        let _ = upward.join();
    }
}

/// Copies until the source ends, then half-closes the destination.
fn copy<R: Read, W: Write>(mut from: R, mut to: W, close: impl FnOnce(&W) -> std::io::Result<()>) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = close(&to);
}
