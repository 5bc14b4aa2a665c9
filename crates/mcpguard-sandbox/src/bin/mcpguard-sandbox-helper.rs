//! The native sandbox's helper as its own binary, for this crate's tests and for
//! embedders; the `mcpguard` binary has the same helper behind `__sandbox-helper`.

fn main() {
    mcpguard_sandbox::native::helper_main()
}
