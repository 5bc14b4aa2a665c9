//! The guest-agent protocol: how the gateway hands a job to the agent inside a microVM
//! and gets its outcome back, over one vsock stream.
//!
//! Each message is one frame: a 4-byte big-endian length, then that many bytes of JSON.
//! The host sends a [`Request`]; the agent answers with one [`Response`] and the stream
//! ends. Byte strings (stdin, output) travel as base64. A frame larger than
//! [`MAX_FRAME`] is refused by either side, so neither can be made to allocate without
//! bound.

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{Captured, Exit, Outcome, Spec, Stop, Usage};

/// The vsock port the guest agent listens on.
pub const AGENT_PORT: u32 = 5252;

/// The largest frame either side accepts: two output streams of 32 MiB, base64-encoded,
/// plus room for the rest.
pub const MAX_FRAME: usize = 96 << 20;

/// What the host asks of the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Are you there? (answered with [`Response::Pong`]).
    Ping,
    /// Run this job and report how it ended.
    Run(Job),
}

/// One program to run inside the guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// The program (a path, or a name looked up on the guest's `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// Its whole environment.
    pub env: Vec<(String, String)>,
    /// Its working directory inside the guest.
    pub workdir: String,
    /// Its standard input.
    #[serde(with = "base64_bytes")]
    pub stdin: Vec<u8>,
    /// Wall-clock limit, in milliseconds.
    pub wall_time_ms: u64,
    /// CPU-time limit, in seconds (`RLIMIT_CPU`).
    pub cpu_seconds: u64,
    /// Most bytes kept per output stream.
    pub output_bytes: u64,
    /// Most processes of the job's user (`RLIMIT_NPROC`).
    pub processes: u64,
    /// Largest file it may write (`RLIMIT_FSIZE`).
    pub file_size_bytes: u64,
    /// Bring the guest's loopback interface up first.
    pub loopback: bool,
}

impl Job {
    /// The job for `spec` with `stdin`.
    pub fn from_spec(spec: &Spec, stdin: &[u8]) -> Job {
        let limits = &spec.limits;
        Job {
            program: spec.program.clone(),
            args: spec.args.clone(),
            env: spec
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            workdir: spec
                .workdir
                .as_ref()
                .map_or(crate::WORKDIR.to_string(), |w| w.display().to_string()),
            stdin: stdin.to_vec(),
            wall_time_ms: u64::try_from(limits.wall_time.as_millis()).unwrap_or(u64::MAX),
            cpu_seconds: limits.cpu_time.as_secs().max(1),
            output_bytes: limits.output_bytes,
            processes: u64::from(limits.processes),
            file_size_bytes: limits.file_size_bytes,
            loopback: spec.network == crate::Network::Loopback,
        }
    }

    /// The wall-clock limit.
    pub fn wall_time(&self) -> Duration {
        Duration::from_millis(self.wall_time_ms)
    }
}

/// What the agent answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Response {
    /// The answer to [`Request::Ping`].
    Pong {
        /// The agent's version.
        version: String,
    },
    /// The job ran (whatever its exit status).
    Finished(WireOutcome),
    /// The job could not run.
    Failed {
        /// `exec` (the program could not be started) or `setup` (the guest could not
        /// prepare for it).
        kind: FailureKind,
        /// What went wrong.
        message: String,
    },
}

/// Why a job could not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The program could not be started (not found, not executable).
    Exec,
    /// The guest could not prepare for it.
    Setup,
    /// The request was malformed.
    Protocol,
}

/// An [`Outcome`] on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireOutcome {
    /// How the program ended.
    pub exit: Exit,
    /// Why it stopped.
    pub stopped: Stop,
    /// Its standard output.
    pub stdout: WireCaptured,
    /// Its standard error.
    pub stderr: WireCaptured,
    /// Wall-clock time inside the guest, in microseconds.
    pub wall_micros: u64,
    /// CPU time of the job, in microseconds, when known.
    pub cpu_micros: Option<u64>,
}

/// A [`Captured`] stream on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireCaptured {
    /// The bytes kept.
    #[serde(with = "base64_bytes")]
    pub bytes: Vec<u8>,
    /// How many bytes were written in all.
    pub total_bytes: u64,
    /// Bytes were dropped.
    pub truncated: bool,
}

impl From<Captured> for WireCaptured {
    fn from(captured: Captured) -> Self {
        WireCaptured {
            bytes: captured.bytes,
            total_bytes: captured.total_bytes,
            truncated: captured.truncated,
        }
    }
}

impl From<WireCaptured> for Captured {
    fn from(wire: WireCaptured) -> Self {
        Captured {
            bytes: wire.bytes,
            total_bytes: wire.total_bytes,
            truncated: wire.truncated,
        }
    }
}

impl WireOutcome {
    /// The [`Outcome`], with `wall` measured by the host (boot included).
    pub fn into_outcome(self, wall: Duration) -> Outcome {
        Outcome {
            exit: self.exit,
            stopped: self.stopped,
            stdout: self.stdout.into(),
            stderr: self.stderr.into(),
            usage: Usage {
                wall,
                cpu: self.cpu_micros.map(Duration::from_micros),
                ..Usage::default()
            },
        }
    }
}

/// What went wrong with a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream failed or ended early.
    #[error("the agent stream: {0}")]
    Io(#[from] std::io::Error),
    /// The frame is larger than [`MAX_FRAME`].
    #[error("a frame of {0} bytes is larger than the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    /// The frame is not the JSON expected.
    #[error("a malformed frame: {0}")]
    Json(#[from] serde_json::Error),
}

/// Writes one frame holding `message`.
pub async fn write_frame<T: Serialize>(
    stream: &mut (impl AsyncWrite + Unpin),
    message: &T,
) -> Result<(), FrameError> {
    let body = serde_json::to_vec(message)?;
    if body.len() > MAX_FRAME {
        return Err(FrameError::TooLarge(body.len()));
    }
    let length = u32::try_from(body.len()).map_err(|_| FrameError::TooLarge(body.len()))?;
    stream.write_all(&length.to_be_bytes()).await?;
    stream.write_all(&body).await?;
    stream.flush().await?;
    Ok(())
}

/// Reads one frame and decodes it.
pub async fn read_frame<T: for<'de> Deserialize<'de>>(
    stream: &mut (impl AsyncRead + Unpin),
) -> Result<T, FrameError> {
    let mut length = [0u8; 4];
    stream.read_exact(&mut length).await?;
    let length = u32::from_be_bytes(length) as usize;
    if length > MAX_FRAME {
        return Err(FrameError::TooLarge(length));
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    Ok(serde_json::from_slice(&body)?)
}

mod base64_bytes {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// The base64 text of `bytes` (for tests and logs of small values).
pub fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bound_their_size() {
        let job = Job::from_spec(
            &Spec {
                program: "sh".into(),
                args: vec!["-c".into(), "cat".into()],
                ..Spec::default()
            },
            b"\x00binary\xff",
        );
        let (mut a, mut b) = tokio::io::duplex(1 << 20);
        write_frame(&mut a, &Request::Run(job.clone()))
            .await
            .unwrap();
        let read: Request = read_frame(&mut b).await.unwrap();
        assert_eq!(read, Request::Run(job));

        // A length past the limit is refused before anything is allocated.
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&(MAX_FRAME as u32 + 1).to_be_bytes())
            .await
            .unwrap();
        assert!(matches!(
            read_frame::<Request>(&mut b).await,
            Err(FrameError::TooLarge(_))
        ));

        // A truncated frame is an error, not a hang or a partial message.
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&10u32.to_be_bytes()).await.unwrap();
        a.write_all(b"{\"ty").await.unwrap();
        drop(a);
        assert!(matches!(
            read_frame::<Request>(&mut b).await,
            Err(FrameError::Io(_))
        ));
    }

    #[test]
    fn the_wire_format_is_stable() {
        let text = serde_json::to_string(&Response::Failed {
            kind: FailureKind::Exec,
            message: "no such program".into(),
        })
        .unwrap();
        assert_eq!(
            text,
            r#"{"type":"failed","kind":"exec","message":"no such program"}"#
        );
        let finished: Response = serde_json::from_str(&format!(
            r#"{{"type":"finished","exit":{{"code":3}},"stopped":"exited",
               "stdout":{{"bytes":"{}","total_bytes":2,"truncated":false}},
               "stderr":{{"bytes":"","total_bytes":0,"truncated":false}},
               "wall_micros":10,"cpu_micros":null}}"#,
            encode(b"hi")
        ))
        .unwrap();
        let Response::Finished(outcome) = finished else {
            panic!("not finished")
        };
        let outcome = outcome.into_outcome(Duration::from_secs(1));
        assert_eq!(outcome.exit, Exit::Code(3));
        assert_eq!(outcome.stdout.bytes, b"hi");
        // Unknown fields are refused: a confused peer is caught, not half-understood.
        assert!(
            serde_json::from_str::<WireCaptured>(
                r#"{"bytes":"","total_bytes":0,"truncated":false,"extra":1}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<Request>(r#"{"type":"launch"}"#).is_err());
    }
}
