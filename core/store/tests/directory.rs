//! Company directory sync against real HTTP(S) servers on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{HttpServer, Reply, Request, TempDb};
use handset_store::contacts::{self, ContactKind};
use handset_store::directory;
use handset_store::{BearerToken, CompanyDirectory, DirectoryConfig, Store, SyncError, SyncReport};

const TOKEN: &str = "tok-3f9a-SECRET-do-not-log";

fn config(server: &HttpServer) -> DirectoryConfig {
    let mut config = DirectoryConfig::new(server.url("/api/"));
    config.token = Some(BearerToken::new(TOKEN));
    config.allow_insecure_http = true;
    config.timeout = Duration::from_secs(5);
    config.connect_timeout = Duration::from_secs(2);
    config
}

fn page(contacts: &str, next: Option<&str>) -> String {
    let next = next.map_or("null".to_string(), |n| format!("\"{n}\""));
    format!(r#"{{"contacts":[{contacts}],"next":{next}}}"#)
}

fn entry(id: &str, name: &str, number: &str) -> String {
    format!(
        r#"{{"id":"{id}","name":"{name}","numbers":[{{"type":"work","number":"{number}"}}],"department":"Sales","deleted":false}}"#
    )
}

/// Three pages, 5 entries, one `next` relative and one absolute. ETag "v1".
fn version_1(base: String) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |req: &Request| match req.target.as_str() {
        "/api/contacts?page=1" => {
            if req.header("if-none-match") == Some("\"v1\"") {
                return Reply::status(304);
            }
            Reply::json_with_etag(
                &page(
                    &[
                        entry("u1", "Alice Alpha", "201"),
                        entry("u2", "Bob Beta", "202"),
                    ]
                    .join(","),
                    Some("/api/contacts?page=2"),
                ),
                "\"v1\"",
            )
        }
        "/api/contacts?page=2" => Reply::json(&page(
            &[
                entry("u3", "Carol Gamma", "+49 30 1234 203"),
                entry("u4", "Dan Delta", "204"),
            ]
            .join(","),
            Some(&format!("{base}/api/contacts?page=3")),
        )),
        "/api/contacts?page=3" => Reply::json(&page(&entry("u5", "Eve Epsilon", "205"), None)),
        _ => Reply::status(404),
    }
}

fn names(store: &Store, key: &str) -> Vec<String> {
    store
        .read(|c| contacts::company_contacts(c, key))
        .unwrap()
        .into_iter()
        .map(|c| c.display_name)
        .collect()
}

async fn synced_v1(db: &TempDb) -> (HttpServer, Store, CompanyDirectory) {
    let server = HttpServer::start(|_| Reply::status(500));
    server.set_handler(version_1(format!("http://{}", server.addr)));
    let store = Store::open(db.path()).unwrap();
    let dir = CompanyDirectory::new(config(&server)).unwrap();
    let report = dir.sync(&store).await.unwrap();
    assert_eq!(
        report,
        SyncReport {
            added: 5,
            updated: 0,
            deleted: 0,
            unchanged: false,
            pages: 3
        }
    );
    (server, store, dir)
}

#[tokio::test]
async fn pages_are_followed_with_the_bearer_token() {
    let db = TempDb::new("dir-pages");
    let (server, store, dir) = synced_v1(&db).await;
    let requests = server.requests();
    let targets: Vec<_> = requests.iter().map(|r| r.target.as_str()).collect();
    assert_eq!(
        targets,
        [
            "/api/contacts?page=1",
            "/api/contacts?page=2",
            "/api/contacts?page=3"
        ]
    );
    for r in &requests {
        assert_eq!(r.method, "GET");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(r.header("accept"), Some("application/json"));
    }
    assert_eq!(
        requests[0].header("if-none-match"),
        None,
        "no ETag known yet"
    );
    assert_eq!(
        names(&store, dir.key()),
        [
            "Alice Alpha",
            "Bob Beta",
            "Carol Gamma",
            "Dan Delta",
            "Eve Epsilon"
        ]
    );
    // The synced entries take part in caller ID and search.
    let who = store
        .read(|c| contacts::lookup_caller(c, "sip:204@127.0.0.1", "DE"))
        .unwrap()
        .unwrap();
    assert_eq!(
        (who.display_name.as_str(), who.kind, who.id.as_str()),
        ("Dan Delta", ContactKind::Company, "u4")
    );
    let who = store
        .read(|c| contacts::lookup_caller(c, "0049301234203", "US"))
        .unwrap()
        .unwrap();
    assert_eq!(who.display_name, "Carol Gamma");
    let hits = store.read(|c| contacts::search(c, "gam", "DE")).unwrap();
    assert_eq!(hits[0].display_name, "Carol Gamma");
}

#[tokio::test]
async fn etag_304_means_unchanged() {
    let db = TempDb::new("dir-etag");
    let (server, store, dir) = synced_v1(&db).await;
    assert_eq!(
        store
            .read(|c| directory::etag(c, dir.key()))
            .unwrap()
            .as_deref(),
        Some("\"v1\"")
    );
    server.clear_requests();
    let report = dir.sync(&store).await.unwrap();
    assert!(report.unchanged);
    assert_eq!((report.added, report.updated, report.deleted), (0, 0, 0));
    let requests = server.requests();
    assert_eq!(requests.len(), 1, "only the first page is asked for");
    assert_eq!(requests[0].header("if-none-match"), Some("\"v1\""));
    assert_eq!(names(&store, dir.key()).len(), 5);
}

#[tokio::test]
async fn updates_and_deletions() {
    let db = TempDb::new("dir-delete");
    let (server, store, dir) = synced_v1(&db).await;
    // v2: Alice renamed, Bob deleted (tombstone), Frank new, the others listed unchanged
    // (Carol) or not listed at all (Dan, Eve: kept, this is not a "full" listing).
    server.clear_requests();
    server.set_handler(|req: &Request| match req.target.as_str() {
        "/api/contacts?page=1" => Reply::json_with_etag(
            &page(
                &[
                    entry("u1", "Alice Alpha-Omega", "201"),
                    r#"{"id":"u2","deleted":true}"#.to_string(),
                    r#"{"id":"nobody","deleted":true}"#.to_string(),
                ]
                .join(","),
                Some("contacts?page=2"),
            ),
            "\"v2\"",
        ),
        "/api/contacts?page=2" => Reply::json(&page(
            &[
                entry("u3", "Carol Gamma", "+49 30 1234 203"),
                entry("u6", "Frank Phi", "206"),
            ]
            .join(","),
            None,
        )),
        _ => Reply::status(404),
    });
    let report = dir.sync(&store).await.unwrap();
    assert_eq!(
        report,
        SyncReport {
            added: 1,
            updated: 1,
            deleted: 1,
            unchanged: false,
            pages: 2
        }
    );
    let requests = server.requests();
    assert_eq!(requests[0].header("if-none-match"), Some("\"v1\""));
    assert_eq!(
        requests[1].header("if-none-match"),
        None,
        "only the first page is conditional"
    );
    assert_eq!(
        names(&store, dir.key()),
        [
            "Alice Alpha-Omega",
            "Carol Gamma",
            "Dan Delta",
            "Eve Epsilon",
            "Frank Phi"
        ]
    );
    assert_eq!(
        store
            .read(|c| directory::etag(c, dir.key()))
            .unwrap()
            .as_deref(),
        Some("\"v2\"")
    );

    // A "full" listing removes whatever it does not list; integer ids are accepted.
    server.set_handler(|_: &Request| {
        Reply::json(
            r#"{"full":true,"next":null,"contacts":[
                {"id":"u1","name":"Alice Alpha-Omega","numbers":[{"type":"work","number":"201"}],"department":"Sales"},
                {"id":7,"name":"Grace","numbers":[]}
            ]}"#,
        )
    });
    let report = dir.sync(&store).await.unwrap();
    assert_eq!((report.added, report.updated, report.deleted), (1, 0, 4));
    assert_eq!(names(&store, dir.key()), ["Alice Alpha-Omega", "Grace"]);
    assert_eq!(
        store.read(|c| directory::etag(c, dir.key())).unwrap(),
        None,
        "no ETag in the answer: the next sync asks without If-None-Match"
    );
}

/// Serves v1's first page, then `bad` as page 2.
fn broken_second_page(bad: &'static str) -> impl Fn(&Request) -> Reply + Send + Sync + 'static {
    move |req: &Request| match req.target.as_str() {
        "/api/contacts?page=1" => Reply::json_with_etag(
            &page(
                &entry("u1", "Alice Changed", "201"),
                Some("/api/contacts?page=2"),
            ),
            "\"v9\"",
        ),
        _ => Reply::json(bad),
    }
}

#[tokio::test]
async fn malformed_pages_keep_the_old_data() {
    let db = TempDb::new("dir-malformed");
    let (server, store, dir) = synced_v1(&db).await;
    let before = store
        .read(|c| contacts::company_contacts(c, dir.key()))
        .unwrap();
    for bad in [
        r#"{"contacts":[{"id":"u9","name":"Trunc"#,
        "<html>502 Bad Gateway</html>",
        r#"{"contacts":"not a list","next":null}"#,
        r#"{"next":null}"#,
        r#"{"contacts":[{"name":"no id"}],"next":null}"#,
        r#"{"contacts":[{"id":"u9","numbers":[]}],"next":null}"#,
        r#"{"contacts":[{"id":"","name":"empty id"}],"next":null}"#,
        r#"{"contacts":[{"id":"u9","name":"x","numbers":[{"type":"work"}]}],"next":null}"#,
    ] {
        server.set_handler(broken_second_page(bad));
        let err = dir.sync(&store).await.unwrap_err();
        match &err {
            SyncError::Malformed { page, .. } => assert_eq!(*page, 2, "{bad}: {err}"),
            other => panic!("{bad}: {other}"),
        }
        let after = store
            .read(|c| contacts::company_contacts(c, dir.key()))
            .unwrap();
        assert_eq!(after, before, "page 1 was not applied: {bad}");
        assert_eq!(
            store
                .read(|c| directory::etag(c, dir.key()))
                .unwrap()
                .as_deref(),
            Some("\"v1\""),
            "the ETag is unchanged, so the next sync fetches again"
        );
    }
}

#[tokio::test]
async fn next_may_not_leave_the_origin_or_loop() {
    let db = TempDb::new("dir-origin");
    let store = Store::open(db.path()).unwrap();
    let other = HttpServer::start(|_| Reply::json(r#"{"contacts":[],"next":null}"#));
    let elsewhere = other.url("/steal");
    let server =
        HttpServer::start(move |_| Reply::json(&page(&entry("u1", "A", "201"), Some(&elsewhere))));
    let dir = CompanyDirectory::new(config(&server)).unwrap();
    let err = dir.sync(&store).await.unwrap_err();
    assert!(matches!(err, SyncError::Malformed { page: 1, .. }), "{err}");
    assert!(
        other.requests().is_empty(),
        "the token never went to another origin"
    );
    assert!(names(&store, dir.key()).is_empty());

    server.set_handler(|_| {
        Reply::json(&page(
            &entry("u1", "A", "201"),
            Some("/api/contacts?page=1"),
        ))
    });
    let err = dir.sync(&store).await.unwrap_err();
    assert!(matches!(err, SyncError::Malformed { page: 2, .. }), "{err}");

    let mut small = config(&server);
    small.max_page_bytes = 64;
    server.set_handler(|_| Reply::json(&page(&entry("u1", "A long long long name", "201"), None)));
    let err = CompanyDirectory::new(small)
        .unwrap()
        .sync(&store)
        .await
        .unwrap_err();
    assert!(matches!(err, SyncError::Malformed { page: 1, .. }), "{err}");
    assert!(names(&store, dir.key()).is_empty());
}

#[tokio::test]
async fn unauthorized_is_a_clear_error() {
    let db = TempDb::new("dir-401");
    let (server, store, dir) = synced_v1(&db).await;
    for status in [401u16, 403] {
        server.set_handler(move |_| Reply::status(status));
        let err = dir.sync(&store).await.unwrap_err();
        assert!(
            matches!(err, SyncError::Unauthorized { status: s } if s == status),
            "{err}"
        );
        assert!(err.to_string().contains("credentials"), "{err}");
        assert_eq!(names(&store, dir.key()).len(), 5);
    }
    server.set_handler(|_| Reply::status(500));
    let err = dir.sync(&store).await.unwrap_err();
    assert!(
        matches!(err, SyncError::HttpStatus { status: 500 }),
        "{err}"
    );
    // A redirect is not followed (the token stays with the configured origin).
    server.set_handler(|_| {
        Reply::Http(
            302,
            vec![("Location".into(), "http://127.0.0.1:9/x".into())],
            String::new(),
        )
    });
    let err = dir.sync(&store).await.unwrap_err();
    assert!(
        matches!(err, SyncError::HttpStatus { status: 302 }),
        "{err}"
    );
    assert_eq!(names(&store, dir.key()).len(), 5);
}

#[tokio::test]
async fn server_down_is_a_clear_error() {
    let db = TempDb::new("dir-down");
    let store = Store::open(db.path()).unwrap();
    // A port that was free a moment ago: nobody listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut config = DirectoryConfig::new(format!("http://127.0.0.1:{port}/api"));
    config.allow_insecure_http = true;
    let err = CompanyDirectory::new(config)
        .unwrap()
        .sync(&store)
        .await
        .unwrap_err();
    assert!(matches!(err, SyncError::Unreachable(_)), "{err}");
    assert!(err.to_string().contains("unreachable"), "{err}");
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let db = TempDb::new("dir-timeout");
    let store = Store::open(db.path()).unwrap();
    let server = HttpServer::start(|_| Reply::Hang(Duration::from_secs(3)));
    let mut config = config(&server);
    config.timeout = Duration::from_millis(300);
    let err = CompanyDirectory::new(config)
        .unwrap()
        .sync(&store)
        .await
        .unwrap_err();
    assert!(matches!(err, SyncError::Timeout), "{err}");
}

/// Collects everything logged, at every level.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_token_is_never_logged_nor_shown() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let db = TempDb::new("dir-pii");
    let (server, store, dir) = synced_v1(&db).await;
    server.set_handler(|_| Reply::status(401));
    let err = dir.sync(&store).await.unwrap_err();
    server.set_handler(|_| Reply::json("{broken"));
    let err2 = dir.sync(&store).await.unwrap_err();

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("company directory"),
        "something was logged: {logged}"
    );
    for text in [
        logged,
        format!("{dir:?}"),
        format!("{err} {err:?} {err2} {err2:?}"),
    ] {
        assert!(!text.contains("SECRET"), "the token leaked: {text}");
    }
}

#[test]
fn the_sync_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let db = TempDb::new("dir-send");
    let store = Store::open(db.path()).unwrap();
    let dir = CompanyDirectory::new(DirectoryConfig::new("https://127.0.0.1:9/api")).unwrap();
    let future = dir.sync(&store);
    assert_send(&future);
}

// ---- HTTPS with a private CA (self-signed certificate) ----

mod https {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::TlsAcceptor;
    use tokio_rustls::rustls;

    /// An HTTPS server on 127.0.0.1 with a fresh self-signed certificate; answers every
    /// request with `body`. Returns the base URL, the certificate PEM and the task.
    async fn start(body: &'static str) -> (String, String, tokio::task::JoinHandle<()>) {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
        let pem = cert.cert.pem();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.cert.der().clone()], key)
            .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(server_config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            // Bounded: a handful of connections, each with a deadline.
            for _ in 0..8 {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let serve = async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match tls.read(&mut byte).await {
                            Ok(1) => head.push(byte[0]),
                            _ => return,
                        }
                    }
                    let response = common::http_response(200, &[], body);
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), serve).await;
            }
        });
        (format!("https://{addr}/api"), pem, task)
    }

    #[tokio::test]
    async fn a_private_ca_is_trusted_when_configured() {
        let (base, pem, task) =
            start(r#"{"contacts":[{"id":"1","name":"Secure Sam","numbers":[{"type":"work","number":"301"}]}],"next":null}"#)
                .await;
        let db = TempDb::new("dir-https");
        let store = Store::open(db.path()).unwrap();

        // Without the CA: the handshake fails (unknown issuer), nothing is written.
        let mut config = DirectoryConfig::new(base.clone());
        config.timeout = Duration::from_secs(5);
        let err = CompanyDirectory::new(config.clone())
            .unwrap()
            .sync(&store)
            .await
            .unwrap_err();
        assert!(matches!(err, SyncError::Unreachable(_)), "{err}");
        assert!(
            err.to_string().to_lowercase().contains("certificate"),
            "{err}"
        );

        // With the PBX's certificate as custom CA: works.
        config.custom_ca = Some(pem.into_bytes());
        let dir = CompanyDirectory::new(config).unwrap();
        let report = dir.sync(&store).await.unwrap();
        assert_eq!(report.added, 1);
        assert_eq!(names(&store, dir.key()), ["Secure Sam"]);
        task.abort();
    }
}
