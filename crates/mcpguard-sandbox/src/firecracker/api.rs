//! A client of Firecracker's REST API, HTTP/1.1 over the VMM's Unix socket. The bodies
//! follow the API's OpenAPI description (`src/firecracker/swagger/firecracker.yaml` in
//! the Firecracker repository): success is `204 No Content`, failure a 4xx/5xx with
//! `{"fault_message": "..."}`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

/// `PUT /boot-source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootSource {
    /// The guest kernel (uncompressed ELF `vmlinux` on x86_64).
    pub kernel_image_path: String,
    /// The kernel command line.
    pub boot_args: String,
}

/// `PUT /drives/{drive_id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drive {
    /// Its id (the path parameter too).
    pub drive_id: String,
    /// The backing file on the host.
    pub path_on_host: String,
    /// It is the guest's root device.
    pub is_root_device: bool,
    /// The guest cannot write it.
    pub is_read_only: bool,
}

/// `PUT /machine-config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineConfig {
    /// vCPUs (1..=32; 1 or even).
    pub vcpu_count: u8,
    /// Guest memory in MiB.
    pub mem_size_mib: u64,
}

/// `PUT /vsock`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vsock {
    /// The guest's context id (3 or more).
    pub guest_cid: u32,
    /// The host Unix socket that carries the guest's vsock ports.
    pub uds_path: String,
}

/// `PUT /actions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceAction {
    /// `InstanceStart`, `SendCtrlAltDel` or `FlushMetrics`.
    pub action_type: String,
}

/// `GET /`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InstanceInfo {
    /// The instance id.
    pub id: String,
    /// `Not started`, `Running` or `Paused`.
    pub state: String,
    /// The VMM's version.
    pub vmm_version: String,
    /// The application name.
    #[serde(default)]
    pub app_name: String,
}

/// Why an API call failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The socket could not be reached or the exchange broke.
    #[error("{method} {path} on {socket}: {reason}")]
    Transport {
        /// The method.
        method: &'static str,
        /// The path.
        path: String,
        /// The API socket.
        socket: String,
        /// What failed.
        reason: String,
    },
    /// Firecracker refused the request.
    #[error("firecracker refused {method} {path} ({status}): {fault}")]
    Refused {
        /// The method.
        method: &'static str,
        /// The path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// Its `fault_message` (or the body when it had none).
        fault: String,
    },
}

/// The API of one Firecracker process.
#[derive(Debug, Clone)]
pub struct ApiClient {
    socket: PathBuf,
    timeout: Duration,
}

impl ApiClient {
    /// A client of the API served on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> ApiClient {
        ApiClient {
            socket: socket.into(),
            timeout: Duration::from_secs(10),
        }
    }

    /// The API socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// `PUT path` with `body` as JSON; `Ok` on 2xx.
    pub async fn put(&self, path: &str, body: &impl Serialize) -> Result<(), ApiError> {
        let body = serde_json::to_vec(body).map_err(|e| self.transport("PUT", path, e))?;
        self.request("PUT", path, Some(body)).await.map(|_| ())
    }

    /// `GET /`: what the instance is.
    pub async fn describe(&self) -> Result<InstanceInfo, ApiError> {
        let body = self.request("GET", "/", None).await?;
        serde_json::from_slice(&body).map_err(|e| self.transport("GET", "/", e))
    }

    /// Configures the machine and starts it: machine config, boot source, root drive,
    /// vsock, then `InstanceStart` (the order Firecracker's own guides use).
    pub async fn boot(
        &self,
        machine: &MachineConfig,
        boot: &BootSource,
        root: &Drive,
        vsock: &Vsock,
    ) -> Result<(), ApiError> {
        self.put("/machine-config", machine).await?;
        self.put("/boot-source", boot).await?;
        self.put(&format!("/drives/{}", root.drive_id), root)
            .await?;
        self.put("/vsock", vsock).await?;
        self.put(
            "/actions",
            &InstanceAction {
                action_type: "InstanceStart".into(),
            },
        )
        .await
    }

    fn transport(&self, method: &'static str, path: &str, e: impl std::fmt::Display) -> ApiError {
        ApiError::Transport {
            method,
            path: path.to_string(),
            socket: self.socket.display().to_string(),
            reason: e.to_string(),
        }
    }

    async fn request(
        &self,
        method: &'static str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, ApiError> {
        let exchange = async {
            let stream = tokio::net::UnixStream::connect(&self.socket)
                .await
                .map_err(|e| self.transport(method, path, e))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| self.transport(method, path, e))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let mut request = http::Request::builder()
                .method(method)
                .uri(path)
                .header(http::header::HOST, "localhost")
                .header(http::header::ACCEPT, "application/json");
            if body.is_some() {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
            }
            let request = request
                .body(Full::new(Bytes::from(body.unwrap_or_default())))
                .map_err(|e| self.transport(method, path, e))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| self.transport(method, path, e))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| self.transport(method, path, e))?
                .to_bytes();
            if status.is_success() {
                return Ok(bytes);
            }
            #[derive(Deserialize)]
            struct Fault {
                fault_message: String,
            }
            let fault = serde_json::from_slice::<Fault>(&bytes).map_or_else(
                |_| String::from_utf8_lossy(&bytes).trim().to_string(),
                |f| f.fault_message,
            );
            Err(ApiError::Refused {
                method,
                path: path.to_string(),
                status: status.as_u16(),
                fault,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| self.transport(method, path, "no answer within 10 s"))?
    }
}
