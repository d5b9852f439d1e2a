//! `handset`: the QA command line of the Handset SDK. Every event is printed as one JSON
//! object per line on stdout; a failure ends with one clear line on stderr and a non-zero exit.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use handset::dns::ResolverSource;
use handset::{
    AccountConfig, Handset, HandsetEvent, RegistrationEvent, RegistrationFailure, RuntimeConfig,
    Secret, Transport,
};
use serde_json::json;

/// Exit code for a rejected user name or password.
const EXIT_AUTH: u8 = 3;
/// Exit code for a server that cannot be reached or does not answer.
const EXIT_UNREACHABLE: u8 = 4;
/// Exit code for a TLS failure (untrusted or mismatched certificate).
const EXIT_TLS: u8 = 5;
/// Exit code for any other failure.
const EXIT_OTHER: u8 = 1;

#[derive(Parser)]
#[command(
    name = "handset",
    version,
    about = "Handset softphone SDK: QA command line"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register an account, stay registered for --hold seconds (refreshing as needed),
    /// unregister and exit.
    Register(RegisterArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    Udp,
    Tcp,
    Tls,
}

#[derive(clap::Args)]
struct RegisterArgs {
    /// Registrar URI, e.g. sip:pbx.example.com or sip:127.0.0.1:5060.
    #[arg(long)]
    server: String,
    /// User name.
    #[arg(long)]
    user: String,
    /// Password (use --ha1 instead to keep the password off the machine).
    #[arg(long, required_unless_present = "ha1", conflicts_with = "ha1")]
    password: Option<String>,
    /// Stored MD5 HA1 (hex of MD5(user:realm:password)) instead of a password.
    #[arg(long)]
    ha1: Option<String>,
    /// Authentication user name, when it differs from --user.
    #[arg(long)]
    auth_user: Option<String>,
    /// Domain of the address-of-record (default: the server's host).
    #[arg(long)]
    domain: Option<String>,
    /// Transport (default: the URI's transport parameter, else DNS NAPTR/SRV, else UDP).
    #[arg(long, value_enum)]
    transport: Option<TransportArg>,
    /// Extra PEM CA file to trust for TLS (private PBX CA).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Requested registration lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    expires: u32,
    /// Seconds to stay registered before unregistering.
    #[arg(long, default_value_t = 0)]
    hold: u64,
    /// DNS server to use instead of the system's (QA: a local test DNS server).
    #[arg(long)]
    dns_server: Option<SocketAddr>,
    /// CRLF keep-alive interval on TCP/TLS in seconds.
    #[arg(long, default_value_t = 100)]
    keepalive: u64,
}

fn emit(value: serde_json::Value) {
    #[allow(clippy::print_stdout)]
    {
        println!("{value}");
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    #[allow(clippy::print_stderr)]
    {
        eprintln!("handset: error: {message}");
    }
    ExitCode::from(code)
}

fn registration_json(event: &RegistrationEvent, detail: Option<&str>) -> serde_json::Value {
    match event {
        RegistrationEvent::Registering => json!({"event": "registering"}),
        RegistrationEvent::Registered { expires } => {
            json!({"event": "registered", "expires": expires})
        }
        RegistrationEvent::Failed { reason, retry_in } => json!({
            "event": "registration_failed",
            "reason": failure_text(reason, detail),
            "retry_in_ms": retry_in.map(|d| d.as_millis() as u64),
        }),
        RegistrationEvent::Unregistered => json!({"event": "unregistered"}),
    }
}

fn failure_text(reason: &RegistrationFailure, detail: Option<&str>) -> String {
    match detail {
        Some(detail) => format!("{reason}: {detail}"),
        None => reason.to_string(),
    }
}

fn exit_code_for(reason: &RegistrationFailure, detail: Option<&str>) -> u8 {
    match reason {
        RegistrationFailure::AuthenticationFailed { .. }
        | RegistrationFailure::Authentication(_) => EXIT_AUTH,
        RegistrationFailure::Transport if detail.is_some_and(|d| d.contains("TLS")) => EXIT_TLS,
        RegistrationFailure::Transport | RegistrationFailure::Timeout => EXIT_UNREACHABLE,
        _ => EXIT_OTHER,
    }
}

/// Binds to loopback when the server is on loopback, so QA runs never touch other interfaces.
fn bind_address(server: &str) -> SocketAddr {
    let host = handset_sip::message::Uri::parse(server)
        .ok()
        .and_then(|u| u.as_sip().and_then(|s| s.host.ip()));
    match host {
        Some(ip) if ip.is_loopback() => SocketAddr::new(ip, 0),
        _ => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
    }
}

async fn register(args: RegisterArgs) -> ExitCode {
    let secret = match (&args.password, &args.ha1) {
        (Some(p), _) => Secret::Password(p.clone()),
        (None, Some(h)) => Secret::Ha1 {
            md5: Some(h.clone()),
            sha256: None,
        },
        (None, None) => return fail(EXIT_OTHER, "--password or --ha1 is required"),
    };
    let config = RuntimeConfig {
        bind: bind_address(&args.server),
        keepalive: Duration::from_secs(args.keepalive.max(1)),
        dns: match args.dns_server {
            Some(server) => ResolverSource::Nameservers(vec![server]),
            None => ResolverSource::System,
        },
        ..RuntimeConfig::default()
    };
    let (handset, mut events) = match Handset::start(config).await {
        Ok(started) => started,
        Err(e) => return fail(EXIT_OTHER, &e.to_string()),
    };
    let mut account = AccountConfig::new(args.server.clone(), args.user.clone(), "");
    account.secret = secret;
    account.auth_user = args.auth_user.clone();
    account.domain = args.domain.clone();
    account.ca_file = args.ca_file.clone();
    account.expires = args.expires;
    account.transport = args.transport.map(|t| match t {
        TransportArg::Udp => Transport::Udp,
        TransportArg::Tcp => Transport::Tcp,
        TransportArg::Tls => Transport::Tls,
    });
    let id = match handset.add_account(account).await {
        Ok(id) => id,
        Err(e) => {
            let code = match e {
                handset::HandsetError::Dns(_) => EXIT_UNREACHABLE,
                handset::HandsetError::Tls(_) => EXIT_TLS,
                _ => EXIT_OTHER,
            };
            return fail(code, &e.to_string());
        }
    };
    let mut hold_until: Option<tokio::time::Instant> = None;
    let mut unregistering = false;
    loop {
        let hold = async {
            match hold_until {
                Some(at) if !unregistering => tokio::time::sleep_until(at).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.recv() => {
                let Some(HandsetEvent::Registration { event, detail, .. }) = event else {
                    return fail(EXIT_OTHER, "the runtime stopped unexpectedly");
                };
                emit(registration_json(&event, detail.as_deref()));
                match event {
                    RegistrationEvent::Registered { .. } if hold_until.is_none() => {
                        hold_until = Some(tokio::time::Instant::now() + Duration::from_secs(args.hold));
                    }
                    RegistrationEvent::Failed { reason, .. } => {
                        handset.shutdown().await;
                        return fail(
                            exit_code_for(&reason, detail.as_deref()),
                            &failure_text(&reason, detail.as_deref()),
                        );
                    }
                    RegistrationEvent::Unregistered => {
                        handset.shutdown().await;
                        return ExitCode::SUCCESS;
                    }
                    _ => {}
                }
            }
            _ = hold => {
                unregistering = true;
                if let Err(e) = handset.unregister(id).await {
                    return fail(EXIT_OTHER, &e.to_string());
                }
            }
            _ = tokio::signal::ctrl_c(), if !unregistering => {
                unregistering = true;
                if let Err(e) = handset.unregister(id).await {
                    return fail(EXIT_OTHER, &e.to_string());
                }
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HANDSET_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(EXIT_OTHER, &format!("cannot start the async runtime: {e}")),
    };
    match cli.command {
        Command::Register(args) => runtime.block_on(register(args)),
    }
}
