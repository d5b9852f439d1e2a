//! `handset`: the QA command line of the Handset SDK. Every event is printed as one JSON
//! object per line on stdout; a failure ends with one clear line on stderr and a non-zero exit.

mod demo;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use handset::audio::WavDevice;
use handset::dns::ResolverSource;
use handset::media::CallQuality;
use handset::{
    AccountConfig, AccountId, CallOptions, CallUpdate, CertFingerprint, Events, Handset,
    HandsetEvent, RegistrationFailure, RegistrationState, RuntimeConfig, Secret, Transport,
};
use handset_media::ice::{IceConfig, IcePolicy, StunUrl, TurnUrl};
use handset_media::sdp::{CodecPref, MediaConfig, SrtpMode, SrtpPolicy};
use serde_json::json;

/// Exit code for a rejected user name or password.
const EXIT_AUTH: u8 = 3;
/// Exit code for a server that cannot be reached or does not answer.
const EXIT_UNREACHABLE: u8 = 4;
/// Exit code for a TLS failure (untrusted or mismatched certificate).
const EXIT_TLS: u8 = 5;
/// Exit code for any other failure.
const EXIT_OTHER: u8 = 1;
/// Bad command-line values (as clap's own usage errors).
const EXIT_USAGE: u8 = 2;
/// Exit code for a call that was rejected, failed or never came in.
const EXIT_CALL: u8 = 6;

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
    /// Register, call TARGET, talk for --duration seconds, hang up, unregister.
    Call(CallArgs),
    /// Register, wait for one incoming call, answer it, record, hang up after --duration
    /// seconds (or when the caller does), unregister.
    Answer(AnswerArgs),
    /// Run the embedded loopback PBX and show calls, the echo bot and push wake-up.
    Demo,
}

#[derive(Clone, Copy, ValueEnum)]
enum SrtpArg {
    Off,
    Sdes,
    Dtls,
}

#[derive(Clone, Copy, ValueEnum)]
enum CodecArg {
    Opus,
    Pcmu,
    Pcma,
}

#[derive(clap::Args)]
struct MediaArgs {
    /// Media encryption: off (RTP/AVP), sdes (SRTP with SDES keys, mandatory), dtls (ICE +
    /// DTLS-SRTP, mandatory).
    #[arg(long, value_enum, default_value = "off")]
    srtp: SrtpArg,
    /// Use only this codec (default: opus, PCMU, PCMA in that order of preference).
    #[arg(long, value_enum)]
    codec: Option<CodecArg>,
    /// WAV file to send as the microphone (silence when absent).
    #[arg(long)]
    play: Option<PathBuf>,
    /// WAV file to write what is heard into (48 kHz mono).
    #[arg(long)]
    record: Option<PathBuf>,
    /// Seconds to stay in the call once answered.
    #[arg(long, default_value_t = 10)]
    duration: u64,
}

#[derive(clap::Args)]
struct CallArgs {
    /// Who to call: a SIP URI, or a user/number in the account's domain.
    target: String,
    #[command(flatten)]
    account: RegisterArgs,
    #[command(flatten)]
    media: MediaArgs,
    /// DTMF digits to send one second after the answer.
    #[arg(long)]
    dtmf: Option<String>,
}

#[derive(clap::Args)]
struct AnswerArgs {
    #[command(flatten)]
    account: RegisterArgs,
    #[command(flatten)]
    media: MediaArgs,
    /// Give up when no call came in after this many seconds.
    #[arg(long, default_value_t = 60)]
    wait: u64,
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
    /// Extra PEM file to trust for TLS: a private PBX CA, or the PBX's own certificate
    /// (pinned: accepted even when self-signed and marked CA; name and dates still checked).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Pin the PBX's own TLS certificate by its SHA-256 fingerprint (64 hex digits, colons
    /// allowed, as `openssl x509 -fingerprint -sha256` prints it).
    #[arg(long, value_name = "HEX")]
    pin_sha256: Option<CertFingerprint>,
    /// Requested registration lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    expires: u32,
    /// Seconds to stay registered before unregistering (register only).
    #[arg(long, default_value_t = 0)]
    hold: u64,
    /// DNS server to use instead of the system's (QA: a local test DNS server).
    #[arg(long)]
    dns_server: Option<SocketAddr>,
    /// CRLF keep-alive interval on TCP/TLS in seconds.
    #[arg(long, default_value_t = 100)]
    keepalive: u64,
    /// Keep-alive interval of a UDP registration in seconds (STUN when the PBX supports SIP
    /// outbound, else CRLF); 0 sends none.
    #[arg(long, default_value_t = handset::DEFAULT_UDP_KEEPALIVE.as_secs())]
    udp_keepalive: u64,
    /// STUN server for ICE server-reflexive candidates, HOST[:PORT] (repeatable). Any ICE
    /// option turns ICE on for plain RTP and SDES-SRTP calls.
    #[arg(long, value_name = "HOST:PORT")]
    stun: Vec<StunUrl>,
    /// TURN server for ICE relayed candidates: turn:HOST[:PORT][;transport=udp|tcp|tls].
    #[arg(long, value_name = "URL", requires = "turn_user")]
    turn: Option<String>,
    /// The TURN server's user name.
    #[arg(long, requires = "turn")]
    turn_user: Option<String>,
    /// The TURN server's password.
    #[arg(long, requires = "turn")]
    turn_password: Option<String>,
    /// Which ICE candidates calls may use: all, or relay (only the TURN relay).
    #[arg(long, value_name = "all|relay")]
    ice_policy: Option<IcePolicy>,
}

impl RegisterArgs {
    /// The ICE settings from --stun, --turn, --turn-user, --turn-password, --ice-policy.
    fn ice(&self) -> Result<IceConfig, String> {
        let turn = match &self.turn {
            Some(url) => vec![
                TurnUrl::parse(
                    url,
                    self.turn_user.as_deref().unwrap_or_default(),
                    self.turn_password.as_deref().unwrap_or_default(),
                )
                .map_err(|e| e.to_string())?,
            ],
            None => Vec::new(),
        };
        let config = IceConfig {
            stun: self.stun.clone(),
            turn,
            policy: self.ice_policy.unwrap_or_default(),
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
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

fn registration_json(state: &RegistrationState) -> serde_json::Value {
    match state {
        RegistrationState::Idle => json!({"event": "idle"}),
        RegistrationState::Registering => json!({"event": "registering"}),
        RegistrationState::Registered { expires } => {
            json!({"event": "registered", "expires": expires})
        }
        RegistrationState::Failed {
            reason,
            detail,
            retry_in,
        } => json!({
            "event": "registration_failed",
            "reason": failure_text(reason, detail.as_deref()),
            "retry_in_ms": retry_in.map(|d| d.as_millis() as u64),
        }),
        RegistrationState::Unregistered => json!({"event": "unregistered"}),
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

/// Starts the runtime and adds the account. Errors are already printed.
async fn start_account(
    args: &RegisterArgs,
    media: MediaConfig,
) -> Result<(Handset, Events, AccountId), ExitCode> {
    let secret = match (&args.password, &args.ha1) {
        (Some(p), _) => Secret::Password(p.clone()),
        (None, Some(h)) => Secret::Ha1 {
            md5: Some(h.clone()),
            sha256: None,
        },
        (None, None) => return Err(fail(EXIT_OTHER, "--password or --ha1 is required")),
    };
    let ice = args.ice().map_err(|e| fail(EXIT_USAGE, &e))?;
    let config = RuntimeConfig {
        bind: bind_address(&args.server),
        keepalive: Duration::from_secs(args.keepalive.max(1)),
        udp_keepalive: (args.udp_keepalive > 0).then(|| Duration::from_secs(args.udp_keepalive)),
        dns: match args.dns_server {
            Some(server) => ResolverSource::Nameservers(vec![server]),
            None => ResolverSource::System,
        },
        ..RuntimeConfig::default()
    };
    let (handset, events) = match Handset::start(config).await {
        Ok(started) => started,
        Err(e) => return Err(fail(EXIT_OTHER, &e.to_string())),
    };
    let mut account = AccountConfig::new(args.server.clone(), args.user.clone(), "");
    account.secret = secret;
    account.auth_user = args.auth_user.clone();
    account.domain = args.domain.clone();
    account.ca_file = args.ca_file.clone();
    account.pinned_sha256 = args.pin_sha256;
    account.ice = ice;
    account.expires = args.expires;
    account.media = media;
    account.transport = args.transport.map(|t| match t {
        TransportArg::Udp => Transport::Udp,
        TransportArg::Tcp => Transport::Tcp,
        TransportArg::Tls => Transport::Tls,
    });
    match handset.add_account(account).await {
        Ok(id) => Ok((handset, events, id)),
        Err(e) => {
            let code = match e {
                handset::HandsetError::Dns(_) => EXIT_UNREACHABLE,
                handset::HandsetError::Tls(_) => EXIT_TLS,
                _ => EXIT_OTHER,
            };
            Err(fail(code, &e.to_string()))
        }
    }
}

async fn register(args: RegisterArgs) -> ExitCode {
    let (handset, mut events, id) = match start_account(&args, MediaConfig::default()).await {
        Ok(started) => started,
        Err(code) => return code,
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
                let state = match event {
                    Some(HandsetEvent::Registration { state, .. }) => state,
                    Some(other) => {
                        emit(event_json(&other));
                        continue;
                    }
                    None => return fail(EXIT_OTHER, "the runtime stopped unexpectedly"),
                };
                emit(registration_json(&state));
                match state {
                    RegistrationState::Registered { .. } if hold_until.is_none() => {
                        hold_until = Some(tokio::time::Instant::now() + Duration::from_secs(args.hold));
                    }
                    RegistrationState::Failed { reason, detail, .. } => {
                        handset.shutdown().await;
                        return fail(
                            exit_code_for(&reason, detail.as_deref()),
                            &failure_text(&reason, detail.as_deref()),
                        );
                    }
                    RegistrationState::Unregistered => {
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
        Command::Call(args) => runtime.block_on(call(args)),
        Command::Answer(args) => runtime.block_on(answer(args)),
        Command::Demo => match runtime.block_on(demo::run()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(EXIT_OTHER, &format!("demo failed: {e}")),
        },
    }
}

fn media_config(args: &MediaArgs) -> Result<MediaConfig, ExitCode> {
    let (srtp, srtp_mode) = match args.srtp {
        SrtpArg::Off => (SrtpPolicy::Off, SrtpMode::Sdes),
        SrtpArg::Sdes => (SrtpPolicy::Mandatory, SrtpMode::Sdes),
        SrtpArg::Dtls => (SrtpPolicy::Mandatory, SrtpMode::Dtls),
    };
    let defaults = MediaConfig::default();
    let codecs = match args.codec {
        None => defaults.codecs.clone(),
        Some(CodecArg::Opus) => vec![CodecPref::Opus {
            useinbandfec: true,
            usedtx: false,
        }],
        Some(CodecArg::Pcmu) => vec![CodecPref::Pcmu],
        Some(CodecArg::Pcma) => vec![CodecPref::Pcma],
    };
    Ok(MediaConfig {
        srtp,
        srtp_mode,
        codecs,
        ..defaults
    })
}

fn device(args: &MediaArgs) -> Result<Box<dyn handset::audio::AudioDevice>, ExitCode> {
    WavDevice::new(args.play.clone(), args.record.clone())
        .map(|d| Box::new(d) as Box<dyn handset::audio::AudioDevice>)
        .map_err(|e| fail(EXIT_OTHER, &e.to_string()))
}

fn quality_json(quality: &Option<CallQuality>) -> serde_json::Value {
    match quality {
        None => serde_json::Value::Null,
        Some(q) => {
            let mut object = serde_json::Map::new();
            object.insert("codec".into(), json!(q.codec));
            object.insert("srtp".into(), json!(q.srtp));
            object.insert("mos".into(), json!((q.mos * 100.0).round() / 100.0));
            for (name, value) in q.stats.to_json_fields() {
                object.insert(name.into(), json!(value));
            }
            if let Some(rtt) = q.stats.round_trip_time {
                object.insert("roundTripTime".into(), json!(rtt));
            }
            serde_json::Value::Object(object)
        }
    }
}

fn call_json(update: &CallUpdate) -> serde_json::Value {
    match update {
        CallUpdate::Incoming {
            from,
            display_name,
            contact_name,
            report_id,
            pushed,
            ..
        } => json!({
            "event": "incoming_call", "from": from, "display_name": display_name,
            "contact_name": contact_name,
            "push_report": pushed.then(|| report_id.to_string()),
        }),
        CallUpdate::Dialing { to, .. } => json!({"event": "calling", "target": to}),
        CallUpdate::Ringing => json!({"event": "ringing"}),
        CallUpdate::EarlyMedia => json!({"event": "early_media"}),
        CallUpdate::Answered { codec, srtp } => {
            json!({"event": "answered", "codec": codec, "srtp": srtp})
        }
        CallUpdate::Dtmf { digit } => json!({"event": "dtmf", "digit": digit.to_string()}),
        CallUpdate::Hold { on_hold } => json!({"event": "hold", "on_hold": on_hold}),
        CallUpdate::MediaPath { relayed } => json!({"event": "media_path", "relayed": relayed}),
        CallUpdate::Ended { reason, quality } => json!({
            "event": "call_ended",
            "reason": reason.to_string(),
            "normal": reason.is_normal(),
            "status": reason.status(),
            "answered_elsewhere": *reason == handset::EndReason::AnsweredElsewhere,
            "quality": quality_json(quality),
        }),
    }
}

/// Any event as JSON (call and registration events have their own, richer forms).
fn event_json(event: &HandsetEvent) -> serde_json::Value {
    match event {
        HandsetEvent::Registration { state, .. } => registration_json(state),
        HandsetEvent::Call { update, .. } => call_json(update),
        HandsetEvent::PushReportEnded { report_id, reason } => json!({
            "event": "push_report_ended", "report_id": report_id.to_string(),
            "reason": reason.to_string(),
        }),
        HandsetEvent::CallBlocked { from, .. } => json!({"event": "call_blocked", "from": from}),
        HandsetEvent::AccountRemoved { account } => {
            json!({"event": "account_removed", "account": account.0})
        }
        // The text stays out of the output: QA logs travel.
        HandsetEvent::MessageReceived { from, text, .. } => {
            json!({"event": "message_received", "from": from, "length": text.len()})
        }
        HandsetEvent::Voicemail { summary, .. } => {
            let voice = summary.voice.unwrap_or_default();
            json!({
                "event": "voicemail", "messages_waiting": summary.messages_waiting,
                "new": voice.new, "old": voice.old,
            })
        }
        HandsetEvent::MessageDelivered { message } => {
            json!({"event": "message_delivered", "message": message.0})
        }
        HandsetEvent::MessageFailed { message, reason } => {
            json!({"event": "message_failed", "message": message.0, "reason": reason})
        }
        HandsetEvent::CallScreen(decision) => json!({
            "event": "call_screen",
            "screen_off_by_proximity": decision.screen_off_by_proximity,
            "keep_screen_on": decision.keep_screen_on,
        }),
        HandsetEvent::AudioRoutes {
            available,
            selected,
        } => json!({
            "event": "audio_routes",
            "available": available.iter().map(|r| format!("{r:?}")).collect::<Vec<_>>(),
            "selected": selected.map(|r| format!("{r:?}")),
        }),
        HandsetEvent::SelectAudioRoute(route) => {
            json!({"event": "select_audio_route", "route": format!("{route:?}")})
        }
        HandsetEvent::Stopped { reason } => json!({"event": "stopped", "reason": reason}),
    }
}

/// Waits until the account is registered; prints registration events. Fails on failure.
async fn wait_registered(handset: &Handset, events: &mut Events) -> Result<(), ExitCode> {
    loop {
        match events.recv().await {
            Some(HandsetEvent::Registration { state, .. }) => {
                emit(registration_json(&state));
                match state {
                    RegistrationState::Registered { .. } => return Ok(()),
                    RegistrationState::Failed { reason, detail, .. } => {
                        handset.shutdown().await;
                        return Err(fail(
                            exit_code_for(&reason, detail.as_deref()),
                            &failure_text(&reason, detail.as_deref()),
                        ));
                    }
                    _ => {}
                }
            }
            Some(other) => emit(event_json(&other)),
            None => return Err(fail(EXIT_OTHER, "the runtime stopped unexpectedly")),
        }
    }
}

/// Unregisters, waits for it (at most 5 s) and stops the runtime.
async fn finish(handset: &Handset, events: &mut Events, account: AccountId) {
    if handset.unregister(account).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(event) = events.recv().await {
                if let HandsetEvent::Registration { state, .. } = event {
                    emit(registration_json(&state));
                    if matches!(
                        state,
                        RegistrationState::Unregistered | RegistrationState::Failed { .. }
                    ) {
                        return;
                    }
                }
            }
        })
        .await;
    }
    handset.shutdown().await;
}

/// Follows one call until it ends: prints its events, hangs up after `duration` once
/// answered, sends `dtmf` one second after the answer. Returns the exit code.
async fn follow_call(
    handset: &Handset,
    events: &mut Events,
    call: handset::CallId,
    duration: Duration,
    dtmf: Option<String>,
) -> ExitCode {
    let mut hangup_at: Option<tokio::time::Instant> = None;
    let mut dtmf_at: Option<tokio::time::Instant> = None;
    loop {
        let next = [hangup_at, dtmf_at].into_iter().flatten().min();
        let timer = async {
            match next {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            event = events.recv() => match event {
                Some(HandsetEvent::Call { call: id, update, .. }) if id == call => {
                    emit(call_json(&update));
                    match update {
                        CallUpdate::Answered { .. } if hangup_at.is_none() => {
                            let now = tokio::time::Instant::now();
                            hangup_at = Some(now + duration);
                            if dtmf.is_some() {
                                dtmf_at = Some(now + Duration::from_secs(1));
                            }
                        }
                        CallUpdate::Ended { reason, .. } => {
                            return if reason.is_normal() {
                                ExitCode::SUCCESS
                            } else {
                                fail(EXIT_CALL, &format!("call failed: {reason}"))
                            };
                        }
                        _ => {}
                    }
                }
                Some(HandsetEvent::Registration { state, .. }) => {
                    emit(registration_json(&state));
                }
                Some(_) => {}
                None => return fail(EXIT_OTHER, "the runtime stopped unexpectedly"),
            },
            _ = timer => {
                let now = tokio::time::Instant::now();
                if dtmf_at.is_some_and(|at| at <= now) {
                    dtmf_at = None;
                    if let Some(digits) = &dtmf
                        && let Err(e) = handset.send_dtmf(call, digits).await {
                            emit(json!({"event": "dtmf_failed", "reason": e.to_string()}));
                        }
                }
                if hangup_at.is_some_and(|at| at <= now) {
                    hangup_at = None;
                    if let Err(e) = handset.hangup(call).await {
                        return fail(EXIT_OTHER, &e.to_string());
                    }
                }
            }
        }
    }
}

async fn call(args: CallArgs) -> ExitCode {
    let media = match media_config(&args.media) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let (handset, mut events, account) = match start_account(&args.account, media).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    if let Err(code) = wait_registered(&handset, &mut events).await {
        return code;
    }
    let device = match device(&args.media) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let options = CallOptions {
        device,
        media: None,
        report_id: None,
    };
    let code = match handset.call(account, &args.target, options).await {
        Ok(call) => {
            follow_call(
                &handset,
                &mut events,
                call,
                Duration::from_secs(args.media.duration),
                args.dtmf.clone(),
            )
            .await
        }
        Err(e) => fail(EXIT_CALL, &e.to_string()),
    };
    finish(&handset, &mut events, account).await;
    code
}

async fn answer(args: AnswerArgs) -> ExitCode {
    let media = match media_config(&args.media) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let (handset, mut events, account) = match start_account(&args.account, media).await {
        Ok(started) => started,
        Err(code) => return code,
    };
    if let Err(code) = wait_registered(&handset, &mut events).await {
        return code;
    }
    emit(json!({"event": "waiting_for_call"}));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(args.wait);
    let incoming = loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(HandsetEvent::Call { call, update, .. })) => {
                emit(call_json(&update));
                if let CallUpdate::Incoming { .. } = update {
                    break Some(call);
                }
            }
            Ok(Some(other)) => emit(event_json(&other)),
            Ok(None) | Err(_) => break None,
        }
    };
    let code = match incoming {
        None => fail(EXIT_CALL, "no call came in"),
        Some(call) => match device(&args.media) {
            Err(code) => code,
            Ok(device) => {
                let options = CallOptions {
                    device,
                    media: None,
                    report_id: None,
                };
                match handset.answer(call, options).await {
                    Ok(()) => {
                        follow_call(
                            &handset,
                            &mut events,
                            call,
                            Duration::from_secs(args.media.duration),
                            None,
                        )
                        .await
                    }
                    Err(e) => fail(EXIT_CALL, &e.to_string()),
                }
            }
        },
    };
    finish(&handset, &mut events, account).await;
    code
}
