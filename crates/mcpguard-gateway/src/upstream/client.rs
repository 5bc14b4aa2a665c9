//! The HTTP client for upstreams.
//!
//! Plain `http://` upstreams (the common case: a tool server next to the gateway) go
//! through a bare pooled hyper client: the gateway pays for every call, and reqwest's
//! conveniences (URL re-parsing, redirect and retry layers) cost about a quarter of a
//! call's instructions. `https://` upstreams use reqwest with rustls. Redirects are never
//! followed: they would carry the call, and any configured credentials, to a place the
//! configuration did not name.

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// A response body as a stream of chunks.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// An upstream's answer: status, headers and the body stream.
pub struct UpstreamResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body, as it arrives.
    pub body: BodyStream,
}

/// How one endpoint is reached.
#[allow(
    clippy::large_enum_variant,
    reason = "one per upstream, created once and never moved on the hot path"
)]
pub enum UpstreamClient {
    /// `http://`: hyper directly.
    Plain {
        /// The pooled client.
        client: Client<HttpConnector, Full<Bytes>>,
        /// The endpoint, parsed once.
        uri: http::Uri,
    },
    /// `https://`: reqwest with rustls.
    Tls {
        /// The client.
        client: reqwest::Client,
        /// The endpoint.
        url: reqwest::Url,
    },
}

impl UpstreamClient {
    /// A client for `url`, trusting the extra authorities in `ca_file` (PEM) for `https://`.
    pub fn new(
        url: &reqwest::Url,
        ca_file: Option<&std::path::Path>,
    ) -> Result<UpstreamClient, String> {
        if url.scheme() == "http" {
            let uri: http::Uri = url
                .as_str()
                .parse()
                .map_err(|e| format!("`{url}` is not a usable http url: {e}"))?;
            let mut connector = HttpConnector::new();
            connector.set_nodelay(true);
            connector.set_connect_timeout(Some(Duration::from_secs(10)));
            let client = Client::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(90))
                .build(connector);
            return Ok(UpstreamClient::Plain { client, uri });
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder();
        if let Some(path) = ca_file {
            let pem = std::fs::read(path)
                .map_err(|e| format!("cannot read the ca_file `{}`: {e}", path.display()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                format!(
                    "the ca_file `{}` holds no usable PEM certificate: {e}",
                    path.display()
                )
            })?;
            if certificates.is_empty() {
                return Err(format!(
                    "the ca_file `{}` holds no PEM certificate",
                    path.display()
                ));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .redirect(reqwest::redirect::Policy::none())
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("could not build the http client: {e}"))?;
        Ok(UpstreamClient::Tls {
            client,
            url: url.clone(),
        })
    }

    /// Sends one request to the endpoint. The error is a one-line description.
    pub async fn send(
        &self,
        method: Method,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<UpstreamResponse, String> {
        match self {
            UpstreamClient::Plain { client, uri } => {
                let mut request = http::Request::new(Full::new(body));
                *request.method_mut() = method;
                *request.uri_mut() = uri.clone();
                *request.headers_mut() = headers;
                let response = client.request(request).await.map_err(|e| describe(&e))?;
                let (parts, incoming) = response.into_parts();
                let body = incoming.into_data_stream().map(|chunk| {
                    chunk.map_err(|e| format!("the connection broke while reading the answer: {e}"))
                });
                Ok(UpstreamResponse {
                    status: parts.status,
                    headers: parts.headers,
                    body: Box::pin(body),
                })
            }
            UpstreamClient::Tls { client, url } => {
                let response = client
                    .request(method, url.clone())
                    .headers(headers)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| describe(&e))?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response
                    .bytes_stream()
                    .map(|chunk| chunk.map_err(|e| describe(&e)));
                Ok(UpstreamResponse {
                    status,
                    headers,
                    body: Box::pin(body),
                })
            }
        }
    }
}

/// A transport error in one line: what failed and its innermost cause.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let text = error.to_string();
    let mut kind = if text.contains("connect") || text.contains("Connect") {
        "connection failed".to_string()
    } else if text.contains("timed out") {
        "the connection timed out".to_string()
    } else {
        "the request failed".to_string()
    };
    let mut source = error.source();
    let mut last = String::new();
    while let Some(inner) = source {
        last = inner.to_string();
        source = inner.source();
    }
    if last.is_empty() {
        last = text;
    }
    kind.push_str(": ");
    kind.push_str(&last);
    kind
}
