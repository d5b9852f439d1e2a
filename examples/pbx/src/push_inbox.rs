//! A loopback HTTP endpoint standing in for the push service (APNs / FCM): it accepts the
//! PBX's push POSTs and hands each body over, as a phone's OS would hand the push payload to
//! the app.

use std::net::Ipv4Addr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// Largest request accepted (head and body), bytes.
const MAX_REQUEST: usize = 64 * 1024;

/// The push service stand-in: give [`PushInbox::url`] to
/// [`crate::PbxConfig::with_push_endpoint`], take the payloads from [`PushInbox::next`].
pub struct PushInbox {
    url: String,
    payloads: mpsc::UnboundedReceiver<Vec<u8>>,
}

impl PushInbox {
    /// Listens on 127.0.0.1 (a free port) and answers every POST with 200.
    pub async fn start() -> std::io::Result<PushInbox> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let url = format!("http://{}/push", listener.local_addr()?);
        let (tx, payloads) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let body = read_body(&mut stream).await;
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                    if let Some(body) = body {
                        let _ = tx.send(body);
                    }
                });
            }
        });
        Ok(PushInbox { url, payloads })
    }

    /// The URL to POST pushes to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next push payload received (`None` once the listener stopped).
    pub async fn next(&mut self) -> Option<Vec<u8>> {
        self.payloads.recv().await
    }
}

/// Reads one HTTP request and returns its body (by `Content-Length`), `None` if the request
/// is cut short or too large.
async fn read_body(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(buf.get(..n)?);
        if data.len() > MAX_REQUEST {
            return None;
        }
        let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(data.get(..end)?).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let body_start = end + 4;
        // A huge Content-Length must not overflow: such a body never fits MAX_REQUEST anyway.
        let body_end = body_start.checked_add(length)?;
        if let Some(body) = data.get(body_start..body_end) {
            return Some(body.to_vec());
        }
    }
}
