//! What the microVM backends share: the guest agent ([`guest`]), its protocol
//! ([`protocol`]) and the host's end of a Firecracker-style hybrid vsock ([`vsock`]).

#[allow(
    unsafe_code,
    reason = "adopting an accepted vsock descriptor and rlimits before exec; every block states why it is sound"
)]
pub mod guest;
pub mod protocol;
pub mod vsock;
