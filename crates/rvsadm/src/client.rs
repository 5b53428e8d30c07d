//! A small HTTP/1.1 + JSON client of rvsd's control API over its unix socket (hyper on a
//! current-thread tokio runtime; one connection per request).

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use rvs_api::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long one request may take (rvsd answers in milliseconds; this only guards against a hung
/// daemon).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket is missing or refuses connections.
    #[error("cannot reach rvsd at {path}: {source} (is rvsd running? use --socket or RVS_SOCKET)")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("talking to rvsd: {0}")]
    Http(String),
    /// rvsd refused the request.
    #[error("{message}")]
    Api {
        status: u16,
        kind: String,
        message: String,
    },
    /// The response body is not what the API documents.
    #[error("unexpected answer from rvsd: {0}")]
    Decode(String),
}

/// A client bound to one socket path.
pub struct Client {
    path: PathBuf,
    rt: tokio::runtime::Runtime,
}

impl Client {
    /// A client for the socket at `path` (nothing is connected yet).
    pub fn new(path: &Path) -> Result<Client, ClientError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| ClientError::Http(format!("cannot start runtime: {e}")))?;
        Ok(Client {
            path: path.to_path_buf(),
            rt,
        })
    }

    /// Send a request; returns status and body bytes, or the API's error for a 4xx/5xx.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, ClientError> {
        self.rt.block_on(async {
            match tokio::time::timeout(TIMEOUT, self.exchange(method, path, body)).await {
                Ok(r) => r,
                Err(_) => Err(ClientError::Http(format!(
                    "rvsd did not answer within {} s",
                    TIMEOUT.as_secs()
                ))),
            }
        })
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Vec<u8>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.path)
            .await
            .map_err(|source| ClientError::Connect {
                path: self.path.clone(),
                source,
            })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "rvsd");
        if body.is_some() {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?
            .to_bytes()
            .to_vec();
        if status.is_success() {
            return Ok(bytes);
        }
        Err(api_error(status, &bytes))
    }

    /// GET and decode JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let bytes = self.request(Method::GET, path, None)?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(format!("GET {path}: {e}")))
    }

    /// Send a JSON body; the response body is ignored.
    pub fn send<B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<(), ClientError> {
        let json = serde_json::to_vec(body).map_err(|e| ClientError::Decode(e.to_string()))?;
        self.request(method, path, Some(json)).map(|_| ())
    }
}

fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(e) => ClientError::Api {
            status: status.as_u16(),
            kind: e.kind,
            message: e.error,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            kind: String::new(),
            message: format!(
                "rvsd answered {status}: {}",
                String::from_utf8_lossy(bytes).trim()
            ),
        },
    }
}
