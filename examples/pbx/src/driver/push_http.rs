//! Delivery of push notifications: a minimal HTTP/1.1 client POSTs each
//! [`PushNotification`]'s JSON (`Content-Type: application/json`) to the configured
//! `http://IP:PORT/path` endpoint, one after the other, in order, and reports the answer as
//! [`PbxEvent::PushDelivered`].

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, watch};

use crate::PbxEvent;
use crate::push::PushNotification;

/// How long connecting, writing and reading the answer may take together.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest HTTP answer head read.
const MAX_ANSWER: usize = 16 * 1024;

/// A parsed `http://host:port/path` URL; the host must be an IP literal or `localhost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpEndpoint {
    pub(crate) addr: SocketAddr,
    pub(crate) host: String,
    pub(crate) path: String,
}

impl HttpEndpoint {
    pub(crate) fn parse(url: &str) -> Result<HttpEndpoint, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| "only http:// URLs are supported".to_string())?;
        let (hostport, path) = match rest.split_once('/') {
            Some((hostport, path)) => (hostport, format!("/{path}")),
            None => (rest, "/".to_string()),
        };
        let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
            let (h, after) = inner
                .split_once(']')
                .ok_or_else(|| "unterminated IPv6 address".to_string())?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse::<u16>().map_err(|_| "invalid port".to_string())?,
                None => 80,
            };
            (h, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, p.parse::<u16>().map_err(|_| "invalid port".to_string())?),
                None => (hostport, 80),
            }
        };
        let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse()
                .map_err(|_| "the host must be an IP address or localhost".to_string())?
        };
        if path.chars().any(|c| c.is_control() || c == ' ') {
            return Err("invalid characters in the path".into());
        }
        Ok(HttpEndpoint {
            addr: SocketAddr::new(ip, port),
            host: hostport.to_string(),
            path,
        })
    }
}

/// Milliseconds since the Unix epoch: the payload's `sent_at`.
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Delivers notifications in order until the queue closes or the PBX shuts down.
pub(crate) async fn worker(
    endpoint: HttpEndpoint,
    mut jobs: mpsc::UnboundedReceiver<PushNotification>,
    events: broadcast::Sender<PbxEvent>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        let job = tokio::select! {
            job = jobs.recv() => match job { Some(job) => job, None => return },
            _ = shutdown.changed() => return,
        };
        let body = job.to_json(unix_ms());
        let result = tokio::time::timeout(HTTP_TIMEOUT, post(&endpoint, &body)).await;
        let (status, error) = match result {
            Ok(Ok(status)) => (Some(status), None),
            Ok(Err(e)) => (None, Some(e.to_string())),
            Err(_) => (None, Some("timed out".to_string())),
        };
        if let Some(error) = &error {
            tracing::info!(%error, "push notification not delivered");
        }
        let _ = events.send(PbxEvent::PushDelivered {
            kind: job.kind(),
            call_id: job.call_id,
            user: job.user,
            status,
            error,
        });
    }
}

/// POSTs `body` and returns the HTTP status code.
async fn post(endpoint: &HttpEndpoint, body: &str) -> std::io::Result<u16> {
    let mut stream = TcpStream::connect(endpoint.addr).await?;
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: handset-pbx\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        endpoint.path,
        endpoint.host,
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    let mut buf = [0u8; 2048];
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(buf.get(..n).unwrap_or_default());
        if answer.windows(2).any(|w| w == b"\r\n") || answer.len() > MAX_ANSWER {
            break;
        }
    }
    let line = String::from_utf8_lossy(&answer);
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|_| line.starts_with("HTTP/"))
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))?;
    let _ = stream.shutdown().await;
    Ok(status)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        let e = HttpEndpoint::parse("http://127.0.0.1:8088/push/v1").unwrap();
        assert_eq!(e.addr, "127.0.0.1:8088".parse().unwrap());
        assert_eq!(e.path, "/push/v1");
        assert_eq!(e.host, "127.0.0.1:8088");
        let e = HttpEndpoint::parse("http://localhost:9").unwrap();
        assert_eq!(e.addr, "127.0.0.1:9".parse().unwrap());
        assert_eq!(e.path, "/");
        let e = HttpEndpoint::parse("http://[::1]:81/x").unwrap();
        assert_eq!(e.addr, "[::1]:81".parse().unwrap());
        assert!(HttpEndpoint::parse("https://127.0.0.1/").is_err());
        assert!(HttpEndpoint::parse("http://push.example.com/").is_err());
        assert!(HttpEndpoint::parse("http://127.0.0.1:x/").is_err());
    }
}
