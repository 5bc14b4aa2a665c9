//! MCPGuard's deterministic execution envelopes.
//!
//! For every executed `tools/call` the gateway canonicalises the request and the result
//! (RFC 8785, [`canonical`]), puts their SHA-256 digests as subjects of an in-toto
//! Statement v1 ([`statement`]) whose predicate records tool, upstream, policy decision,
//! sandbox, timings and gateway version, signs it as a DSSE envelope ([`dsse`]) with an
//! Ed25519 or ECDSA P-256 key ([`sign`]), and packages it as a Sigstore bundle v0.3
//! ([`bundle`]) that standard Sigstore verifiers accept with the public key. Payloads
//! kept for replay can be sealed ([`seal`]); replays report drift as a structural diff
//! ([`diff`]). Pure apart from randomness: no files, sockets or clocks.

pub mod bundle;
pub mod canonical;
pub mod diff;
pub mod dsse;
pub mod seal;
pub mod sign;
pub mod statement;

pub use bundle::Bundle;
pub use sign::{Algorithm, PublicKey, SigningKey};
pub use statement::{ExecutionPredicate, Statement};

/// Why an envelope could not be made or checked.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Input that is not (canonicalisable) JSON.
    #[error("{0}")]
    Json(String),
    /// A key that cannot be read or used.
    #[error("{0}")]
    Key(String),
    /// An envelope or bundle that does not verify.
    #[error("{0}")]
    Invalid(String),
}
