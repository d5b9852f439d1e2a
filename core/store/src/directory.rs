//! Company directory (PBX phonebook) sync over HTTPS.
//!
//! # Endpoint
//!
//! `GET {base_url}/contacts?page=1` with `Accept: application/json`,
//! `Authorization: Bearer <token>` (when configured) and, from the second sync on,
//! `If-None-Match: <ETag of the last successful sync>`. The answer:
//!
//! * `304 Not Modified` (first page only): nothing changed, nothing is written.
//! * `401`/`403`: [`SyncError::Unauthorized`]. Any other non-2xx (redirects included:
//!   they are not followed, so the token never leaves the configured origin):
//!   [`SyncError::HttpStatus`].
//! * `200` with a JSON body:
//!
//! ```json
//! {
//!   "contacts": [
//!     {
//!       "id": "u-1001",                      // string or integer, unique in the directory
//!       "name": "Alice Example",             // required unless "deleted" is true
//!       "numbers": [{"type": "work", "number": "+49 30 1234 1001"},
//!                   {"type": "extension", "number": "1001"}],
//!       "department": "Sales",               // optional
//!       "emails": ["alice@example.com"],     // optional
//!       "deleted": false                     // optional; true = remove this id
//!     }
//!   ],
//!   "next": "/api/contacts?page=2",          // absolute or relative URL of the next page, or null
//!   "full": false                            // optional, first page only: true = this listing
//!                                            // is complete, ids not listed are removed
//! }
//! ```
//!
//! The `ETag` of the first page identifies the version of the whole collection. `next`
//! must stay on the origin (scheme, host, port) of `base_url`, otherwise the sync fails
//! (the bearer token is only ever sent to that origin). Unknown fields are ignored.
//!
//! # Atomicity
//!
//! All pages are fetched and validated first; then everything (contacts and the new
//! ETag) is applied in ONE transaction. A failure on any page (network, HTTP status,
//! malformed JSON, too large, too many pages) leaves the stored directory untouched.
//!
//! # TLS
//!
//! rustls with the *ring* provider. Trusted roots: the Mozilla roots (webpki-roots) plus
//! [`DirectoryConfig::custom_ca`] (PEM or DER), for PBXs with a private CA or a
//! self-signed certificate. Plain `http://` is refused unless
//! [`DirectoryConfig::allow_insecure_http`] is set (tests, lab setups).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{ACCEPT, ETAG, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};
use rusqlite::{Connection, OptionalExtension, params};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

use crate::contacts::{Change, CompanyContact, delete_company, retain_company, upsert_company};
use crate::{Store, StoreError};

/// A bearer token. Its `Debug` output is redacted and it is never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> BearerToken {
        BearerToken(token.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

/// How to reach the company directory.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// Base URL of the PBX API, e.g. `https://pbx.example.com/api/v1`; the collection is
    /// `{base_url}/contacts`. It is also the key of this directory in the store.
    pub base_url: String,
    /// Sent as `Authorization: Bearer …`.
    pub token: Option<BearerToken>,
    /// Extra trusted CA certificate(s), PEM (one or more) or a single DER certificate.
    pub custom_ca: Option<Vec<u8>>,
    /// Whole-request timeout (connect + response + body), per page.
    pub timeout: Duration,
    /// TCP + TLS connect timeout.
    pub connect_timeout: Duration,
    /// Allow `http://` (the token would travel in clear text).
    pub allow_insecure_http: bool,
    /// Stop with an error after this many pages.
    pub max_pages: u32,
    /// Stop with an error when one page body is larger.
    pub max_page_bytes: usize,
}

impl DirectoryConfig {
    /// Defaults: no token, no custom CA, 30 s per request, 10 s to connect, HTTPS only,
    /// at most 1000 pages of at most 8 MiB.
    pub fn new(base_url: impl Into<String>) -> DirectoryConfig {
        DirectoryConfig {
            base_url: base_url.into(),
            token: None,
            custom_ca: None,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            allow_insecure_http: false,
            max_pages: 1000,
            max_page_bytes: 8 * 1024 * 1024,
        }
    }
}

/// What a sync changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncReport {
    /// New entries.
    pub added: usize,
    /// Entries whose content changed.
    pub updated: usize,
    /// Entries removed (`"deleted": true`, or not listed in a `"full"` listing).
    pub deleted: usize,
    /// The server answered 304 Not Modified: nothing was fetched or written.
    pub unchanged: bool,
    /// Pages fetched.
    pub pages: u32,
}

/// Errors of a directory sync. The stored directory is unchanged after every one.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The configuration cannot work (bad URL, `http://` not allowed, bad CA certificate).
    #[error("invalid directory configuration: {0}")]
    InvalidConfig(String),
    /// The server could not be reached (connection refused, DNS, TLS handshake failed).
    #[error("the directory server is unreachable: {0}")]
    Unreachable(String),
    /// A request did not complete within the timeout.
    #[error("the directory server did not answer in time")]
    Timeout,
    /// The server refused the credentials (401 or 403).
    #[error("the directory server refused the credentials (HTTP {status})")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// Any other unexpected HTTP status.
    #[error("the directory server answered HTTP {status}")]
    HttpStatus {
        /// The status code.
        status: u16,
    },
    /// A page is not in the documented format.
    #[error("directory page {page} is malformed: {reason}")]
    Malformed {
        /// 1-based page number.
        page: u32,
        /// What is wrong.
        reason: String,
    },
    /// Another transport error (connection reset while reading, …).
    #[error("directory transfer failed: {0}")]
    Transport(String),
    /// Writing the result failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Deserialize)]
struct PageJson {
    contacts: Vec<ItemJson>,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    full: bool,
}

#[derive(Deserialize)]
struct ItemJson {
    id: IdJson,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    numbers: Vec<NumberJson>,
    #[serde(default)]
    department: Option<String>,
    #[serde(default)]
    emails: Vec<String>,
    #[serde(default)]
    deleted: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum IdJson {
    Text(String),
    Int(i64),
}

#[derive(Deserialize)]
struct NumberJson {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    number: String,
}

enum Item {
    Upsert(CompanyContact),
    Delete(String),
}

/// A company directory endpoint with its HTTP client (connections are reused between
/// syncs). Create once per account, call [`CompanyDirectory::sync`] when the app comes
/// to the foreground or on a timer.
#[derive(Debug)]
pub struct CompanyDirectory {
    config: DirectoryConfig,
    key: String,
    first_page: Url,
    client: reqwest::Client,
}

impl CompanyDirectory {
    /// Validates the configuration and builds the HTTP client.
    pub fn new(config: DirectoryConfig) -> Result<CompanyDirectory, SyncError> {
        let key = config.base_url.trim().trim_end_matches('/').to_string();
        let first_page = Url::parse(&format!("{key}/contacts?page=1"))
            .map_err(|e| SyncError::InvalidConfig(format!("base URL: {e}")))?;
        match first_page.scheme() {
            "https" => {}
            "http" if config.allow_insecure_http => {}
            "http" => {
                return Err(SyncError::InvalidConfig(
                    "http:// would send the token in clear text; use https:// \
                     (or set allow_insecure_http)"
                        .into(),
                ));
            }
            other => {
                return Err(SyncError::InvalidConfig(format!(
                    "unsupported scheme {other}"
                )));
            }
        }
        let tls = tls_config(config.custom_ca.as_deref())?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!config.allow_insecure_http)
            .user_agent(concat!("handset/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| SyncError::InvalidConfig(error_chain(&e)))?;
        Ok(CompanyDirectory {
            config,
            key,
            first_page,
            client,
        })
    }

    /// The key of this directory in the store (the base URL without trailing `/`), for
    /// [`crate::contacts::company_contacts`] and [`crate::contacts::clear_company`].
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Fetches every page, then applies them in one transaction (see the module docs).
    /// Needs a tokio runtime (reqwest).
    pub async fn sync(&self, store: &Store) -> Result<SyncReport, SyncError> {
        let etag = store.read(|c| etag(c, &self.key))?;
        let mut url = self.first_page.clone();
        let mut visited = HashSet::new();
        let mut items = Vec::new();
        let mut new_etag = None;
        let mut full = false;
        let mut page_no = 0u32;
        loop {
            page_no += 1;
            if page_no > self.config.max_pages {
                return Err(malformed(
                    page_no,
                    format!("more than {} pages", self.config.max_pages),
                ));
            }
            if !visited.insert(url.clone()) {
                return Err(malformed(
                    page_no,
                    "\"next\" points to a page already fetched",
                ));
            }
            let mut request = self
                .client
                .get(url.clone())
                .header(ACCEPT, "application/json");
            if let Some(token) = &self.config.token {
                request = request.bearer_auth(token.expose());
            }
            if page_no == 1
                && let Some(tag) = &etag
            {
                request = request.header(IF_NONE_MATCH, tag);
            }
            let mut response = request.send().await.map_err(transport)?;
            let status = response.status();
            if status == StatusCode::NOT_MODIFIED && page_no == 1 && etag.is_some() {
                tracing::debug!("company directory unchanged (304)");
                return Ok(SyncReport {
                    unchanged: true,
                    pages: 1,
                    ..SyncReport::default()
                });
            }
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                return Err(SyncError::Unauthorized {
                    status: status.as_u16(),
                });
            }
            if !status.is_success() {
                return Err(SyncError::HttpStatus {
                    status: status.as_u16(),
                });
            }
            if page_no == 1 {
                new_etag = response
                    .headers()
                    .get(ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
            }
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(transport)? {
                if body.len() + chunk.len() > self.config.max_page_bytes {
                    return Err(malformed(
                        page_no,
                        format!("larger than {} bytes", self.config.max_page_bytes),
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            let page: PageJson =
                serde_json::from_slice(&body).map_err(|e| malformed(page_no, e.to_string()))?;
            if page_no == 1 {
                full = page.full;
            }
            for (index, item) in page.contacts.into_iter().enumerate() {
                items.push(validate(item).map_err(|reason| {
                    malformed(page_no, format!("contact #{}: {reason}", index + 1))
                })?);
            }
            tracing::debug!(
                page = page_no,
                entries = items.len(),
                "company directory page fetched"
            );
            match page.next {
                None => break,
                Some(next) => url = self.next_url(&url, &next, page_no)?,
            }
        }

        let key = self.key.as_str();
        let mut report = store.write(|tx| {
            let mut report = SyncReport {
                pages: page_no,
                ..SyncReport::default()
            };
            let mut listed = HashSet::new();
            for item in &items {
                match item {
                    Item::Upsert(contact) => {
                        listed.insert(contact.id.clone());
                        match upsert_company(tx, key, contact)? {
                            Change::Added => report.added += 1,
                            Change::Updated => report.updated += 1,
                            Change::Unchanged => {}
                        }
                    }
                    Item::Delete(id) => {
                        listed.remove(id);
                        if delete_company(tx, key, id)? {
                            report.deleted += 1;
                        }
                    }
                }
            }
            if full {
                report.deleted += retain_company(tx, key, &listed)?;
            }
            tx.execute(
                "INSERT INTO directory_state (directory, etag) VALUES (?1, ?2) \
                 ON CONFLICT (directory) DO UPDATE SET etag = excluded.etag",
                params![key, new_etag],
            )?;
            Ok(report)
        })?;
        report.unchanged = false;
        tracing::debug!(
            added = report.added,
            updated = report.updated,
            deleted = report.deleted,
            pages = report.pages,
            "company directory synced"
        );
        Ok(report)
    }

    fn next_url(&self, current: &Url, next: &str, page_no: u32) -> Result<Url, SyncError> {
        let url = current
            .join(next)
            .map_err(|e| malformed(page_no, format!("\"next\" is not a URL: {e}")))?;
        if url.origin() != self.first_page.origin() {
            return Err(malformed(
                page_no,
                "\"next\" leaves the directory's origin (the token is not sent elsewhere)",
            ));
        }
        Ok(url)
    }
}

/// The stored ETag of a directory.
pub fn etag(conn: &Connection, directory: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT etag FROM directory_state WHERE directory = ?1",
            [directory],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()?
        .flatten())
}

fn validate(item: ItemJson) -> Result<Item, String> {
    let id = match item.id {
        IdJson::Text(s) => s,
        IdJson::Int(n) => n.to_string(),
    };
    if id.trim().is_empty() {
        return Err("empty id".into());
    }
    if item.deleted {
        return Ok(Item::Delete(id));
    }
    let display_name = item.name.ok_or("missing \"name\"")?;
    let numbers = item
        .numbers
        .into_iter()
        .map(|n| (n.kind.unwrap_or_default(), n.number))
        .collect();
    Ok(Item::Upsert(CompanyContact {
        id,
        display_name,
        numbers,
        department: item.department,
        emails: item.emails,
    }))
}

fn malformed(page: u32, reason: impl Into<String>) -> SyncError {
    SyncError::Malformed {
        page,
        reason: reason.into(),
    }
}

fn transport(e: reqwest::Error) -> SyncError {
    if e.is_timeout() {
        SyncError::Timeout
    } else if e.is_connect() {
        SyncError::Unreachable(error_chain(&e))
    } else {
        SyncError::Transport(error_chain(&e))
    }
}

/// "outer: cause: root cause", so TLS reasons (unknown issuer, …) are visible.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn tls_config(custom_ca: Option<&[u8]>) -> Result<rustls::ClientConfig, SyncError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(bytes) = custom_ca {
        let mut certs = CertificateDer::pem_slice_iter(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SyncError::InvalidConfig(format!("custom CA PEM: {e}")))?;
        if certs.is_empty() && bytes.first() == Some(&0x30) {
            certs.push(CertificateDer::from(bytes.to_vec()));
        }
        if certs.is_empty() {
            return Err(SyncError::InvalidConfig(
                "custom CA: no certificate found".into(),
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| SyncError::InvalidConfig(format!("custom CA: {e}")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SyncError::InvalidConfig(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted_in_debug() {
        let mut config = DirectoryConfig::new("https://pbx.example.com/api");
        config.token = Some(BearerToken::new("s3cr3t-token"));
        let text = format!("{config:?}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("redacted"));
    }

    #[test]
    fn insecure_and_bad_configs_are_refused() {
        let e = CompanyDirectory::new(DirectoryConfig::new("http://127.0.0.1:9/api"));
        assert!(matches!(e, Err(SyncError::InvalidConfig(_))));
        let e = CompanyDirectory::new(DirectoryConfig::new("not a url"));
        assert!(matches!(e, Err(SyncError::InvalidConfig(_))));
        let e = CompanyDirectory::new(DirectoryConfig::new("ftp://127.0.0.1/api"));
        assert!(matches!(e, Err(SyncError::InvalidConfig(_))));
        let mut config = DirectoryConfig::new("https://127.0.0.1:9/api");
        config.custom_ca = Some(b"not a certificate".to_vec());
        assert!(matches!(
            CompanyDirectory::new(config),
            Err(SyncError::InvalidConfig(_))
        ));
    }
}
