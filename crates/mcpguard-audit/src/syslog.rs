//! A live syslog sink: every committed record goes out as an RFC 5424 message carrying
//! CEF or the record's JSON, over UDP (one datagram each) or TCP (RFC 6587 octet
//! counting, reconnecting with backoff). The queue is bounded: when the collector falls
//! behind, newer records are dropped and counted (logged loudly, with the first dropped
//! sequence number so `audit-export` can backfill); the audit store is never held up and
//! keeps every event.

use std::io::Write as _;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::AuditError;
use crate::event::Outcome;
use crate::export;
use crate::record::Record;
use crate::writer::Sink;

/// How messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One datagram per message (may be lost on the way; no back-pressure).
    Udp,
    /// A stream with octet-counted framing (RFC 6587 §3.4.1).
    Tcp,
}

/// What the message body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// An ArcSight CEF line.
    Cef,
    /// The stored record's JSON, byte for byte.
    Json,
}

/// One syslog destination.
#[derive(Debug, Clone)]
pub struct SyslogConfig {
    /// `host:port` of the collector.
    pub address: String,
    /// UDP or TCP.
    pub transport: Transport,
    /// CEF or JSON.
    pub payload: Payload,
    /// The syslog facility number (16 = local0).
    pub facility: u8,
    /// APP-NAME in the header.
    pub app_name: String,
    /// HOSTNAME in the header.
    pub hostname: String,
    /// Records queued before new ones are dropped.
    pub queue: usize,
}

/// RFC 5424 severity for an outcome: warning for refusals, notice for failures,
/// informational otherwise.
fn severity(record: &Record) -> u8 {
    match record.event.outcome {
        Outcome::Denied | Outcome::Unauthenticated | Outcome::RateLimited => 4,
        Outcome::UpstreamFailure | Outcome::ApprovalRequested | Outcome::Error => 5,
        _ => 6,
    }
}

/// Replaces what RFC 5424 does not allow in a header field (printable US-ASCII, no
/// spaces) and caps its length.
fn header_field(s: &str, max: usize) -> String {
    let clean: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if clean.is_empty() { "-".into() } else { clean }
}

/// One RFC 5424 message for `record` (whose stored bytes are `data`).
pub fn format_message(config: &SyslogConfig, record: &Record, data: &str, version: &str) -> String {
    let pri = u16::from(config.facility) * 8 + u16::from(severity(record));
    let time = if record.event.time.is_empty() {
        "-"
    } else {
        &record.event.time
    };
    let body = match config.payload {
        Payload::Cef => export::cef(record, version),
        Payload::Json => data.to_string(),
    };
    format!(
        "<{pri}>1 {time} {} {} {} {} [mcpguard@32473 seq=\"{}\"] {body}",
        header_field(&config.hostname, 255),
        header_field(&config.app_name, 48),
        std::process::id(),
        header_field(record.event.outcome.as_str(), 32),
        record.seq,
    )
}

/// The sink: a bounded queue and a sender thread.
pub struct SyslogSink {
    tx: Option<SyncSender<(u64, String)>>,
    closing: Arc<std::sync::atomic::AtomicBool>,
    dropped: Arc<AtomicU64>,
    first_dropped: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    address: String,
}

impl SyslogSink {
    /// Starts sending to `config.address`; `version` goes into CEF headers.
    pub fn start(config: SyslogConfig, version: &str) -> Result<SyslogSink, AuditError> {
        let location = format!("syslog {}", config.address);
        let fail = |detail: String| AuditError::Store {
            location: location.clone(),
            detail,
        };
        let target = config
            .address
            .to_socket_addrs()
            .map_err(|e| fail(format!("cannot resolve the address: {e}")))?
            .next()
            .ok_or_else(|| fail("the address resolves to nothing".into()))?;
        let (tx, rx) = mpsc::sync_channel(config.queue.max(1));
        let address = config.address.clone();
        let version = version.to_string();
        let closing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop = closing.clone();
        let thread = std::thread::Builder::new()
            .name("mcpguard-syslog".into())
            .spawn(move || send_loop(&config, target, &version, rx, &stop))
            .map_err(|e| fail(format!("cannot start the sender thread: {e}")))?;
        Ok(SyslogSink {
            tx: Some(tx),
            closing,
            dropped: Arc::new(AtomicU64::new(0)),
            first_dropped: Arc::new(AtomicU64::new(0)),
            thread: Some(thread),
            address,
        })
    }

    /// Records dropped because the collector fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Sink for SyslogSink {
    fn offer(&mut self, seq: u64, data: &str) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send((seq, data.to_string())) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    self.first_dropped.store(seq, Ordering::Relaxed);
                    tracing::error!(
                        target: "mcpguard::audit",
                        syslog = %self.address,
                        first_dropped_seq = seq,
                        "the syslog collector is falling behind: records are dropped from the live feed (the audit log keeps them; backfill with `mcpguard audit-export`)"
                    );
                }
            }
        }
    }

    fn close(&mut self) {
        self.tx = None;
        // Queued records still go out, but a collector that stays down no longer holds
        // the gateway's shutdown: each gets a last short try.
        self.closing.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let dropped = self.dropped();
        if dropped > 0 {
            tracing::error!(
                target: "mcpguard::audit",
                syslog = %self.address,
                dropped,
                first_dropped_seq = self.first_dropped.load(Ordering::Relaxed),
                "records never reached the syslog collector"
            );
        }
    }
}

enum Connection {
    Udp(UdpSocket),
    Tcp(TcpStream),
}

fn connect(config: &SyslogConfig, target: std::net::SocketAddr) -> std::io::Result<Connection> {
    match config.transport {
        Transport::Udp => {
            let bind = if target.is_ipv6() {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let socket = UdpSocket::bind(bind)?;
            socket.connect(target)?;
            Ok(Connection::Udp(socket))
        }
        Transport::Tcp => {
            let stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))?;
            stream.set_write_timeout(Some(Duration::from_secs(10)))?;
            stream.set_nodelay(true)?;
            Ok(Connection::Tcp(stream))
        }
    }
}

fn send(conn: &mut Connection, message: &str) -> std::io::Result<()> {
    match conn {
        Connection::Udp(socket) => socket.send(message.as_bytes()).map(|_| ()),
        Connection::Tcp(stream) => {
            stream.write_all(format!("{} {message}", message.len()).as_bytes())
        }
    }
}

/// How long one record is retried while the gateway runs, before it is dropped (and
/// counted) so that the feed moves on.
const RETRY_FOR: Duration = Duration::from_secs(30);

fn send_loop(
    config: &SyslogConfig,
    target: std::net::SocketAddr,
    version: &str,
    rx: Receiver<(u64, String)>,
    closing: &std::sync::atomic::AtomicBool,
) {
    let mut conn: Option<Connection> = None;
    let mut backoff = Duration::from_millis(100);
    let mut abandoned = false;
    for (seq, data) in rx {
        if abandoned {
            // Shutting down with the collector unreachable: the rest stay in the audit log.
            continue;
        }
        let message = match serde_json::from_str::<Record>(&data) {
            Ok(record) => format_message(config, &record, &data, version),
            Err(e) => {
                tracing::error!(target: "mcpguard::audit", seq, error = %e, "a record could not be read for syslog");
                continue;
            }
        };
        // Retry one message until it goes out, for a while; at shutdown only briefly.
        let started = std::time::Instant::now();
        loop {
            let limit = if closing.load(Ordering::Acquire) {
                Duration::from_millis(500)
            } else {
                RETRY_FOR
            };
            if started.elapsed() > limit {
                tracing::error!(target: "mcpguard::audit", syslog = %config.address, seq, "giving up on a record: the syslog collector is unreachable (the audit log keeps it)");
                abandoned = closing.load(Ordering::Acquire);
                break;
            }
            if conn.is_none() {
                match connect(config, target) {
                    Ok(c) => {
                        conn = Some(c);
                        backoff = Duration::from_millis(100);
                    }
                    Err(e) => {
                        tracing::warn!(target: "mcpguard::audit", syslog = %config.address, error = %e, "cannot reach the syslog collector; retrying");
                        let pause = if closing.load(Ordering::Acquire) {
                            Duration::from_millis(100)
                        } else {
                            backoff
                        };
                        std::thread::sleep(pause);
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                        continue;
                    }
                }
            }
            let Some(c) = conn.as_mut() else { continue };
            match send(c, &message) {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(target: "mcpguard::audit", syslog = %config.address, seq, error = %e, "syslog send failed; reconnecting");
                    conn = None;
                    if config.transport == Transport::Udp {
                        // A datagram that cannot be sent now is not retried forever.
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::AuditEvent;

    #[test]
    fn a_dead_collector_does_not_hold_up_shutdown() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut sink = SyslogSink::start(
            SyslogConfig {
                address: format!("127.0.0.1:{port}"),
                transport: Transport::Tcp,
                payload: Payload::Json,
                facility: 16,
                app_name: "mcpguard".into(),
                hostname: "h".into(),
                queue: 1000,
            },
            "0",
        )
        .unwrap();
        let (record, _) = crate::record::encode(1, &[0; 32], &AuditEvent::default()).unwrap();
        assert!(serde_json::from_str::<Record>(&record).is_ok());
        for seq in 0..500 {
            sink.offer(seq, &record);
        }
        let started = std::time::Instant::now();
        sink.close();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "close took {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn the_message_is_rfc5424_with_the_sequence_number_in_structured_data() {
        let config = SyslogConfig {
            address: "127.0.0.1:514".into(),
            transport: Transport::Udp,
            payload: Payload::Json,
            facility: 16,
            app_name: "mcp guard".into(),
            hostname: "host-1".into(),
            queue: 10,
        };
        let record = Record {
            schema: 1,
            seq: 42,
            prev: String::new(),
            event: AuditEvent {
                time: "2026-11-24T10:00:00.000001Z".into(),
                outcome: Outcome::Denied,
                ..AuditEvent::default()
            },
        };
        let m = format_message(&config, &record, "{\"x\":1}", "0.1.0");
        let expected = format!(
            "<132>1 2026-11-24T10:00:00.000001Z host-1 mcpguard {} denied [mcpguard@32473 seq=\"42\"] {{\"x\":1}}",
            std::process::id()
        );
        assert_eq!(m, expected);
    }
}
