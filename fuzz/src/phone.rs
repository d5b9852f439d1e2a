//! The `phone` fuzz target: random and mutated SIP datagrams and TCP stream bytes fed to a
//! [`Phone`] in virtual time, with two registered accounts and calls in progress.
//!
//! This file is self-contained (it names only `handset_phone`, `handset_sip`, `handset_media`
//! and `rand`) so that `core/phone/tests/fuzz_smoke.rs` can include it by path and run it on
//! stable with `cargo test`, while the cargo-fuzz crate uses it as a module.
//!
//! # One input
//!
//! 1. Set-up, the same for every input (no input byte is read): a phone with a seeded random
//!    source and a fake [`Directory`]; account `alice` over UDP and account `bob` over TCP,
//!    both served by the loopback server 127.0.0.1:5060. The harness answers the phone's
//!    outputs as the runtime does (resolve, connect, bind RTP, stop media, wake at each
//!    timeout) and plays the server (see [`ServerMode`]): it registers both accounts, accepts
//!    alice's voicemail subscription and notifies it, sends alice a call that the app answers,
//!    lets bob dial carol (ringing, then answered) and sends bob a call that keeps ringing.
//! 2. The input is read as a sequence of [`Op`]s (at most [`MAX_OPS`]): datagrams and stream
//!    bytes (raw, or a template message aimed at a live dialog with input-chosen mutations),
//!    the server's replies to the phone's requests, flows closing and failing, virtual time
//!    moving on (milliseconds to hours), app commands and media reports. Messages come from
//!    the server's flows and from addresses that are none of the accounts' flows.
//! 3. Ten quiet minutes pass (on top of the operations' own time, at most
//!    [`MAX_VIRTUAL_TIME`]); then the bounds are checked once more and no ended call may
//!    still be held.
//!
//! # Properties (each a panic with a message naming it)
//!
//! - The phone never panics.
//! - Every drain of `poll_output` ends within [`MAX_DRAIN`] outputs, with `Output::Timeout`
//!   last; one operation (with the runtime's and the server's answers) settles within
//!   [`MAX_INPUTS_PER_OP`] inputs; time moving on wakes the phone finitely often, and never
//!   more than [`MAX_WAKES_AT_ONE_INSTANT`] times in a row without time passing.
//! - `transaction_count()` and `call_count()` stay within bounds relative to the traffic of
//!   the last [`WINDOW`] of virtual time (see [`PhoneHarness::check_bounds`]): every
//!   transaction and every ended call dies within a few minutes of its last message.
//! - After the quiet end, every call the phone still holds is live: ended calls are released.
//! - Virtual time only moves forward.
//! - Every `Output::Transmit` parses back as a SIP message, or is a CRLF keep-alive.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use handset_media::session::MediaEvent;
use handset_phone::phone::{
    AccountConfig, AccountId, BoundMedia, CallId, CallUpdate, CallerInfo, Command, Directory,
    Input, MediaCommand, Output, Phone, PhoneConfig, PhoneEvent, RegistrationState, Reply,
};
use handset_phone::push::ReportId;
use handset_sip::message::{HeaderName, Message, Method, NameAddr, Request, Response};
use handset_sip::transport::{Flow, Target, Transport};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The seed of the phone's random source: tags, branches and keys are the same in every run,
/// so a raw message in a seed file still matches the live dialogs when it is replayed.
pub const PHONE_SEED: u64 = 0x4841_4e44_5345_5431;

/// Most operations read from one input (the rest of a longer input is ignored).
pub const MAX_OPS: usize = 256;

/// Most outputs one `poll_output` drain may yield before it counts as never running dry.
pub const MAX_DRAIN: usize = 10_000;

/// Most inputs one operation may lead to (the operation's own, the runtime's answers to the
/// phone's outputs, the server's answers to its messages) before it counts as a livelock.
pub const MAX_INPUTS_PER_OP: usize = 5_000;

/// Most timeouts one move of the clock may fire before it counts as a timer storm.
pub const MAX_WAKES_PER_ADVANCE: usize = 50_000;

/// Most timeouts in a row at one instant (the deadline not moving on) before it counts as a
/// busy loop: a runtime would spin on it.
pub const MAX_WAKES_AT_ONE_INSTANT: usize = 1_000;

/// Most virtual time the operations of one input may spend; later moves of the clock do
/// nothing (the quiet end comes on top).
pub const MAX_VIRTUAL_TIME: Duration = Duration::from_secs(24 * 3600);

/// How far back traffic counts toward the bounds. Every SIP transaction ends within 64·T1
/// (32 s) of its last message, an unanswered call rings 60 s, a call's media gets 5 s to
/// stop: five minutes is far beyond all of it.
pub const WINDOW: Duration = Duration::from_secs(300);

/// Transactions the phone may hold beyond the window's traffic and its calls' share. Every
/// transaction starts with a message counted in the window (the phone's requests as they go
/// out, the peers' as they come in), so this is only slack: a leak shows up as soon as a few
/// transactions outlive their messages.
pub const TRANSACTION_BASE: usize = 8;

/// Transactions a live call may hold beyond the window's traffic (an INVITE still waiting
/// for its final answer, its CANCEL, a re-INVITE).
pub const TRANSACTIONS_PER_CALL: usize = 4;

/// Calls the phone may hold with no traffic in the window: the phone takes at most four
/// incoming calls (`PhoneConfig::max_calls`) and the harness dials only below four calls.
pub const CALL_BASE: usize = 8;

/// How long the quiet end of every input lasts (beyond [`WINDOW`], so the final bound check
/// sees only what the phone does on its own).
const QUIET_END: Duration = Duration::from_secs(600);

/// The loopback server both accounts use.
const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060);
/// The server's host but another port: not an account's flow.
const SERVER_OTHER_PORT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5080);
/// Another loopback host: not an account's flow.
const STRANGER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 77)), 5060);
/// The phone's own address for UDP.
const PHONE_UDP: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5062);

/// The accounts: (user, server URI, voicemail).
const ACCOUNTS: [(&str, &str, bool); 2] = [
    ("alice", "sip:127.0.0.1:5060", true),
    ("bob", "sip:127.0.0.1:5060;transport=tcp", false),
];

/// Callers the server's calls and messages come from: a contact, a blocked number, a
/// stranger, a user with a display name and escapes.
const CALLERS: [&str; 4] = ["1000", "666", "2000", "%2B4915%20x"];

/// Statuses the server may answer with (including odd ones: 199, 299, 699).
const STATUSES: [u16; 34] = [
    100, 180, 181, 183, 199, 200, 202, 299, 301, 302, 380, 400, 401, 403, 404, 407, 408, 415, 420,
    422, 423, 480, 481, 486, 487, 488, 489, 491, 500, 503, 504, 600, 603, 699,
];

/// Header names the mutations pick from.
const HEADERS: [&str; 28] = [
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Content-Type",
    "Expires",
    "Require",
    "Supported",
    "Session-Expires",
    "Min-SE",
    "Record-Route",
    "Route",
    "Event",
    "Subscription-State",
    "Reason",
    "RSeq",
    "RAck",
    "Refer-To",
    "Allow",
    "Authorization",
    "WWW-Authenticate",
    "Retry-After",
    "Min-Expires",
    "Content-Length",
    "X-Fuzz",
];

/// An SDES key (RFC 4568's example, 30 bytes in base64) for offers with `a=crypto`.
const SDES_KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";

// ----- the operations ---------------------------------------------------------------------

/// Where a message comes from: an address, and for [`Route::Natural`] the flow of the dialog
/// the message belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// 127.0.0.1:5060, the accounts' server.
    Server,
    /// 127.0.0.1:5080: the server's host, another port.
    ServerOtherPort,
    /// 127.0.0.77:5060: nobody the phone knows.
    Stranger,
}

impl Peer {
    const ALL: [Peer; 3] = [Peer::Server, Peer::ServerOtherPort, Peer::Stranger];

    fn addr(self) -> SocketAddr {
        match self {
            Peer::Server => SERVER,
            Peer::ServerOtherPort => SERVER_OTHER_PORT,
            Peer::Stranger => STRANGER,
        }
    }
}

/// The flow a template message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The flow of the dialog it belongs to (the UDP server flow without one).
    Natural,
    /// A UDP datagram from this peer.
    Udp(Peer),
    /// Stream bytes on a TCP connection with this peer.
    Tcp(Peer),
}

impl Route {
    fn decode(byte: u8) -> Route {
        let peer = |i: u8| {
            Peer::ALL
                .get(usize::from(i))
                .copied()
                .unwrap_or(Peer::Server)
        };
        match byte % 7 {
            0 => Route::Natural,
            i @ 1..=3 => Route::Udp(peer(i - 1)),
            i => Route::Tcp(peer(i - 4)),
        }
    }

    fn encode(self) -> u8 {
        let index = |p: Peer| Peer::ALL.iter().position(|q| *q == p).unwrap_or(0) as u8;
        match self {
            Route::Natural => 0,
            Route::Udp(p) => 1 + index(p),
            Route::Tcp(p) => 4 + index(p),
        }
    }
}

/// A message the server (or a stranger) sends the phone, built around a live dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Template {
    /// A new INVITE with an SDP offer (or a repeat of a known call's INVITE).
    Invite,
    /// An in-dialog INVITE with an offer (hold, resume, new codec).
    ReInvite,
    /// The ACK of a call's INVITE.
    Ack,
    /// BYE in a dialog.
    Bye,
    /// CANCEL of a call's INVITE (same branch, RFC 3326 Reason).
    Cancel,
    /// NOTIFY with a message summary (in the voicemail subscription's dialog, or another).
    Notify,
    /// MESSAGE with text.
    Message,
    /// OPTIONS.
    Options,
    /// INFO with DTMF relay.
    Info,
    /// UPDATE with an offer.
    Update,
    /// PRACK.
    Prack,
    /// REFER.
    Refer,
    /// SUBSCRIBE to presence.
    Subscribe,
    /// REGISTER sent to the phone.
    Register,
}

impl Template {
    const ALL: [Template; 14] = [
        Template::Invite,
        Template::ReInvite,
        Template::Ack,
        Template::Bye,
        Template::Cancel,
        Template::Notify,
        Template::Message,
        Template::Options,
        Template::Info,
        Template::Update,
        Template::Prack,
        Template::Refer,
        Template::Subscribe,
        Template::Register,
    ];
}

/// A change to a template message or a reply before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Replaces (or adds) a header ([`HEADERS`]) with these bytes, verbatim.
    SetHeader {
        /// Index into [`HEADERS`].
        header: u8,
        /// The new value (at most 64 bytes).
        value: Vec<u8>,
    },
    /// Removes every line of a header.
    RemoveHeader(u8),
    /// Repeats the first line of a header.
    DuplicateHeader(u8),
    /// Replaces the From (`to == false`) or To tag: none, empty, another dialog's tag, new.
    Tag {
        /// The To header's tag rather than From's.
        to: bool,
        /// Which tag.
        choice: u8,
    },
    /// Replaces the Call-ID with another dialog's or a new one.
    CallId(u8),
    /// Moves the CSeq number by this amount (wrapping, as `i8`).
    CSeqShift(u8),
    /// Replaces the CSeq method.
    CSeqMethod(u8),
    /// Replaces the body with an SDP variant (see [`sdp_offer`]).
    Sdp(u8),
    /// Replaces the body with these bytes (at most 512).
    Body(Vec<u8>),
    /// States a Content-Length off by this amount (as `i8`).
    ContentLengthShift(u8),
    /// Writes this byte at this position of the printed message.
    FlipByte {
        /// Position (modulo the message's length).
        at: u16,
        /// The new byte.
        value: u8,
    },
    /// Cuts the printed message to this length (modulo its length plus one).
    Truncate(u16),
    /// Prints header names in their compact forms (`v:`, `f:`, `i:`...).
    Compact,
}

/// The server's behaviour toward the phone's requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerMode {
    /// Answers everything: REGISTER and SUBSCRIBE 200 (and a NOTIFY), INVITE 180 then 200
    /// with SDP, BYE/CANCEL/MESSAGE/... 200, ACKs the phone's answers, pongs keep-alives.
    Answer,
    /// Like `Answer`, but a new INVITE only rings (180).
    Ring,
    /// Answers nothing, not even keep-alives.
    Silent,
    /// Refuses every request with this status (index into [`STATUSES`], 300 and up).
    Reject(u8),
    /// Challenges every out-of-dialog request without credentials with a 401, then answers.
    Challenge,
}

/// What happens to the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkEvent {
    /// bob's TCP connection closes in order (the phone reconnects and registers again).
    CloseTcp,
    /// bob's TCP connection breaks with an error.
    BreakTcp,
    /// The next this many connects fail.
    FailConnects(u8),
    /// The next this many RTP socket binds fail.
    FailBinds(u8),
    /// A TCP connection the phone never opened reports closed.
    CloseStranger,
    /// A TCP connection the phone never asked for reports connected.
    ConnectedUnasked,
}

/// What the application asks. Calls and reports are picked among those the harness has seen
/// (plus one unknown).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppCommand {
    /// Hang up.
    Hangup(u8),
    /// Hold (`true`) or resume.
    Hold(u8, bool),
    /// Send DTMF (the bytes as text, valid or not).
    Dtmf(u8, Vec<u8>),
    /// Answer.
    Answer(u8),
    /// Reject with a status from [`STATUSES`].
    Reject(u8, u8),
    /// Mute or unmute.
    Mute(u8, bool),
    /// A push payload: 0 incoming call for a known Call-ID, 1 for a new one, 2 cancel for a
    /// known one, 3 these bytes.
    Push(u8, Vec<u8>),
    /// Decline a push report.
    DeclinePushReport(u8),
    /// Dial from an account (`alice` or `bob`) to a target from a small list (only while
    /// the phone holds fewer than four calls).
    Dial(u8, u8),
    /// Send a message from an account (the bytes as text).
    SendMessage(u8, Vec<u8>),
    /// Register an account now.
    Register(u8),
    /// Unregister an account.
    Unregister(u8),
    /// Foreground or background.
    Foreground(bool),
    /// Push Contact parameters on (`true`) or off for an account.
    ContactParams(u8, bool),
    /// Remove an account.
    RemoveAccount(u8),
}

/// One step of a fuzz input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// These bytes as one UDP datagram from a peer.
    Datagram {
        /// From whom.
        peer: Peer,
        /// The datagram (at most 2048 bytes).
        bytes: Vec<u8>,
    },
    /// These bytes on a TCP connection with a peer (the server's is bob's flow), in chunks.
    Stream {
        /// From whom.
        peer: Peer,
        /// The bytes (at most 2048).
        bytes: Vec<u8>,
        /// Seeds the chunk sizes.
        chunking: u8,
    },
    /// A template message, mutated.
    Template {
        /// Which message.
        template: Template,
        /// On which flow.
        route: Route,
        /// Which dialog it belongs to (see [`PhoneHarness::pick_dialog`]).
        dialog: u8,
        /// Changes before it is sent.
        mutations: Vec<Mutation>,
        /// Seeds the chunk sizes on TCP.
        chunking: u8,
    },
    /// The server answers one of the phone's recent requests.
    Reply {
        /// Which request (modulo how many are remembered).
        request: u8,
        /// Index into [`STATUSES`].
        status: u8,
        /// Bits: 1 SDP body, 2 reliable provisional (100rel), 4 a new To tag (a fork),
        /// 8 Record-Route, 16 Session-Expires, 32 no Contact, 64 Retry-After/Min-Expires.
        flags: u8,
        /// Changes before it is sent.
        mutations: Vec<Mutation>,
    },
    /// The network changes.
    Network(NetworkEvent),
    /// Virtual time moves on: scale 0 milliseconds, 1 seconds, 2 minutes, 3 hours.
    Advance {
        /// The unit.
        scale: u8,
        /// How many (plus one).
        amount: u8,
    },
    /// The application asks something.
    App(AppCommand),
    /// The media of a call reports: 0 a DTMF digit, 1 connected, 2 closed, 3 failed.
    Media {
        /// Which call.
        call: u8,
        /// What.
        event: u8,
    },
    /// The server changes its behaviour.
    Server(ServerMode),
}

/// Reads an input byte by byte; past its end every read is zero (or empty).
struct Reader<'a> {
    rest: &'a [u8],
}

impl Reader<'_> {
    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((first, rest)) => {
                self.rest = rest;
                *first
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// A length (a `u16`, modulo `max + 1`) and that many bytes, or fewer at the input's end.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = (usize::from(self.u16()) % (max + 1)).min(self.rest.len());
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        taken.to_vec()
    }

    fn mutations(&mut self) -> Vec<Mutation> {
        let count = self.byte() % 5;
        (0..count).map(|_| Mutation::decode(self)).collect()
    }
}

/// Writes what [`Reader`] reads.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
}

impl Writer {
    fn byte(&mut self, b: u8) {
        self.out.push(b);
    }

    fn u16(&mut self, v: u16) {
        self.out.extend_from_slice(&v.to_le_bytes());
    }

    fn flag(&mut self, b: bool) {
        self.byte(u8::from(b));
    }

    /// Writes at most `max` bytes of `bytes` (and at most what a `u16` length can say).
    fn bytes(&mut self, max: usize, bytes: &[u8]) {
        let len = bytes.len().min(max).min(usize::from(u16::MAX));
        self.u16(len as u16);
        self.out
            .extend_from_slice(bytes.get(..len).unwrap_or_default());
    }

    fn mutations(&mut self, mutations: &[Mutation]) {
        let count = mutations.len().min(4);
        self.byte(count as u8);
        for m in mutations.iter().take(count) {
            m.encode(self);
        }
    }
}

impl Mutation {
    fn decode(r: &mut Reader<'_>) -> Mutation {
        match r.byte() % 13 {
            0 => Mutation::SetHeader {
                header: r.byte(),
                value: r.bytes(64),
            },
            1 => Mutation::RemoveHeader(r.byte()),
            2 => Mutation::DuplicateHeader(r.byte()),
            3 => Mutation::Tag {
                to: r.flag(),
                choice: r.byte(),
            },
            4 => Mutation::CallId(r.byte()),
            5 => Mutation::CSeqShift(r.byte()),
            6 => Mutation::CSeqMethod(r.byte()),
            7 => Mutation::Sdp(r.byte()),
            8 => Mutation::Body(r.bytes(512)),
            9 => Mutation::ContentLengthShift(r.byte()),
            10 => Mutation::FlipByte {
                at: r.u16(),
                value: r.byte(),
            },
            11 => Mutation::Truncate(r.u16()),
            _ => Mutation::Compact,
        }
    }

    fn encode(&self, w: &mut Writer) {
        match self {
            Mutation::SetHeader { header, value } => {
                w.byte(0);
                w.byte(*header);
                w.bytes(64, value);
            }
            Mutation::RemoveHeader(header) => {
                w.byte(1);
                w.byte(*header);
            }
            Mutation::DuplicateHeader(header) => {
                w.byte(2);
                w.byte(*header);
            }
            Mutation::Tag { to, choice } => {
                w.byte(3);
                w.flag(*to);
                w.byte(*choice);
            }
            Mutation::CallId(c) => {
                w.byte(4);
                w.byte(*c);
            }
            Mutation::CSeqShift(delta) => {
                w.byte(5);
                w.byte(*delta);
            }
            Mutation::CSeqMethod(m) => {
                w.byte(6);
                w.byte(*m);
            }
            Mutation::Sdp(v) => {
                w.byte(7);
                w.byte(*v);
            }
            Mutation::Body(b) => {
                w.byte(8);
                w.bytes(512, b);
            }
            Mutation::ContentLengthShift(delta) => {
                w.byte(9);
                w.byte(*delta);
            }
            Mutation::FlipByte { at, value } => {
                w.byte(10);
                w.u16(*at);
                w.byte(*value);
            }
            Mutation::Truncate(len) => {
                w.byte(11);
                w.u16(*len);
            }
            Mutation::Compact => w.byte(12),
        }
    }
}

impl AppCommand {
    fn decode(r: &mut Reader<'_>) -> AppCommand {
        match r.byte() % 15 {
            0 => AppCommand::Hangup(r.byte()),
            1 => AppCommand::Hold(r.byte(), r.flag()),
            2 => AppCommand::Dtmf(r.byte(), r.bytes(16)),
            3 => AppCommand::Answer(r.byte()),
            4 => AppCommand::Reject(r.byte(), r.byte()),
            5 => AppCommand::Mute(r.byte(), r.flag()),
            6 => AppCommand::Push(r.byte(), r.bytes(512)),
            7 => AppCommand::DeclinePushReport(r.byte()),
            8 => AppCommand::Dial(r.byte(), r.byte()),
            9 => AppCommand::SendMessage(r.byte(), r.bytes(64)),
            10 => AppCommand::Register(r.byte()),
            11 => AppCommand::Unregister(r.byte()),
            12 => AppCommand::Foreground(r.flag()),
            13 => AppCommand::ContactParams(r.byte(), r.flag()),
            _ => AppCommand::RemoveAccount(r.byte()),
        }
    }

    fn encode(&self, w: &mut Writer) {
        match self {
            AppCommand::Hangup(c) => {
                w.byte(0);
                w.byte(*c);
            }
            AppCommand::Hold(c, on) => {
                w.byte(1);
                w.byte(*c);
                w.flag(*on);
            }
            AppCommand::Dtmf(c, digits) => {
                w.byte(2);
                w.byte(*c);
                w.bytes(16, digits);
            }
            AppCommand::Answer(c) => {
                w.byte(3);
                w.byte(*c);
            }
            AppCommand::Reject(c, s) => {
                w.byte(4);
                w.byte(*c);
                w.byte(*s);
            }
            AppCommand::Mute(c, on) => {
                w.byte(5);
                w.byte(*c);
                w.flag(*on);
            }
            AppCommand::Push(kind, raw) => {
                w.byte(6);
                w.byte(*kind);
                w.bytes(512, raw);
            }
            AppCommand::DeclinePushReport(r) => {
                w.byte(7);
                w.byte(*r);
            }
            AppCommand::Dial(a, t) => {
                w.byte(8);
                w.byte(*a);
                w.byte(*t);
            }
            AppCommand::SendMessage(a, text) => {
                w.byte(9);
                w.byte(*a);
                w.bytes(64, text);
            }
            AppCommand::Register(a) => {
                w.byte(10);
                w.byte(*a);
            }
            AppCommand::Unregister(a) => {
                w.byte(11);
                w.byte(*a);
            }
            AppCommand::Foreground(on) => {
                w.byte(12);
                w.flag(*on);
            }
            AppCommand::ContactParams(a, on) => {
                w.byte(13);
                w.byte(*a);
                w.flag(*on);
            }
            AppCommand::RemoveAccount(a) => {
                w.byte(14);
                w.byte(*a);
            }
        }
    }
}

impl Op {
    /// Reads one operation; every byte sequence reads as some operation.
    fn decode(r: &mut Reader<'_>) -> Op {
        let peer = |b: u8| {
            Peer::ALL
                .get(usize::from(b) % Peer::ALL.len())
                .copied()
                .unwrap_or(Peer::Server)
        };
        match r.byte() % 9 {
            0 => Op::Datagram {
                peer: peer(r.byte()),
                bytes: r.bytes(2048),
            },
            1 => Op::Stream {
                peer: peer(r.byte()),
                bytes: r.bytes(2048),
                chunking: r.byte(),
            },
            2 => Op::Template {
                template: Template::ALL
                    .get(usize::from(r.byte()) % Template::ALL.len())
                    .copied()
                    .unwrap_or(Template::Options),
                route: Route::decode(r.byte()),
                dialog: r.byte(),
                chunking: r.byte(),
                mutations: r.mutations(),
            },
            3 => Op::Reply {
                request: r.byte(),
                status: r.byte(),
                flags: r.byte(),
                mutations: r.mutations(),
            },
            4 => Op::Network(match r.byte() % 6 {
                0 => NetworkEvent::CloseTcp,
                1 => NetworkEvent::BreakTcp,
                2 => NetworkEvent::FailConnects(r.byte()),
                3 => NetworkEvent::FailBinds(r.byte()),
                4 => NetworkEvent::CloseStranger,
                _ => NetworkEvent::ConnectedUnasked,
            }),
            5 => Op::Advance {
                scale: r.byte(),
                amount: r.byte(),
            },
            6 => Op::App(AppCommand::decode(r)),
            7 => Op::Media {
                call: r.byte(),
                event: r.byte(),
            },
            _ => Op::Server(match r.byte() % 5 {
                0 => ServerMode::Answer,
                1 => ServerMode::Ring,
                2 => ServerMode::Silent,
                3 => ServerMode::Reject(r.byte()),
                _ => ServerMode::Challenge,
            }),
        }
    }

    /// Writes the operation so that [`Op::decode`] reads it back.
    fn encode(&self, w: &mut Writer) {
        let peer = |p: &Peer| Peer::ALL.iter().position(|q| q == p).unwrap_or(0) as u8;
        match self {
            Op::Datagram { peer: p, bytes } => {
                w.byte(0);
                w.byte(peer(p));
                w.bytes(2048, bytes);
            }
            Op::Stream {
                peer: p,
                bytes,
                chunking,
            } => {
                w.byte(1);
                w.byte(peer(p));
                w.bytes(2048, bytes);
                w.byte(*chunking);
            }
            Op::Template {
                template,
                route,
                dialog,
                mutations,
                chunking,
            } => {
                w.byte(2);
                w.byte(
                    Template::ALL
                        .iter()
                        .position(|t| t == template)
                        .unwrap_or(0) as u8,
                );
                w.byte(route.encode());
                w.byte(*dialog);
                w.byte(*chunking);
                w.mutations(mutations);
            }
            Op::Reply {
                request,
                status,
                flags,
                mutations,
            } => {
                w.byte(3);
                w.byte(*request);
                w.byte(*status);
                w.byte(*flags);
                w.mutations(mutations);
            }
            Op::Network(event) => {
                w.byte(4);
                match event {
                    NetworkEvent::CloseTcp => w.byte(0),
                    NetworkEvent::BreakTcp => w.byte(1),
                    NetworkEvent::FailConnects(n) => {
                        w.byte(2);
                        w.byte(*n);
                    }
                    NetworkEvent::FailBinds(n) => {
                        w.byte(3);
                        w.byte(*n);
                    }
                    NetworkEvent::CloseStranger => w.byte(4),
                    NetworkEvent::ConnectedUnasked => w.byte(5),
                }
            }
            Op::Advance { scale, amount } => {
                w.byte(5);
                w.byte(*scale);
                w.byte(*amount);
            }
            Op::App(command) => {
                w.byte(6);
                command.encode(w);
            }
            Op::Media { call, event } => {
                w.byte(7);
                w.byte(*call);
                w.byte(*event);
            }
            Op::Server(mode) => {
                w.byte(8);
                match mode {
                    ServerMode::Answer => w.byte(0),
                    ServerMode::Ring => w.byte(1),
                    ServerMode::Silent => w.byte(2),
                    ServerMode::Reject(s) => {
                        w.byte(3);
                        w.byte(*s);
                    }
                    ServerMode::Challenge => w.byte(4),
                }
            }
        }
    }
}

/// Reads a fuzz input as operations (at most [`MAX_OPS`]).
pub fn decode_ops(data: &[u8]) -> Vec<Op> {
    let mut reader = Reader { rest: data };
    let mut ops = Vec::new();
    while !reader.is_empty() && ops.len() < MAX_OPS {
        ops.push(Op::decode(&mut reader));
    }
    ops
}

/// Writes operations as a fuzz input that [`decode_ops`] reads back.
pub fn encode_ops(ops: &[Op]) -> Vec<u8> {
    let mut writer = Writer::default();
    for op in ops {
        op.encode(&mut writer);
    }
    writer.out
}

// ----- messages -------------------------------------------------------------------------

/// A message being built: start line, header lines (values as bytes, so mutations can put
/// anything there) and body. Printed with a Content-Length of the body's length unless a
/// mutation says otherwise.
#[derive(Debug, Clone)]
struct Draft {
    start: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    length_shift: i64,
}

impl Draft {
    fn new(start: String) -> Draft {
        Draft {
            start,
            headers: Vec::new(),
            body: Vec::new(),
            length_shift: 0,
        }
    }

    fn from_message(message: &Message) -> Draft {
        let (start, headers, body) = match message {
            Message::Request(r) => (
                format!("{} {} SIP/2.0", r.method, r.uri),
                &r.headers,
                &r.body,
            ),
            Message::Response(r) => (
                format!("SIP/2.0 {} {}", r.status, r.reason),
                &r.headers,
                &r.body,
            ),
        };
        let mut draft = Draft::new(start);
        for header in headers.iter() {
            if header.name != HeaderName::ContentLength {
                draft.header(header.name.as_str(), &header.value);
            }
        }
        draft.body = body.clone();
        draft
    }

    fn header(&mut self, name: &str, value: &str) {
        self.headers
            .push((name.to_string(), value.as_bytes().to_vec()));
    }

    fn get(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    fn set(&mut self, name: &str, value: Vec<u8>) {
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, v)) => *v = value,
            None => self.headers.push((name.to_string(), value)),
        }
    }

    /// Replaces the `tag` parameter of From or To (None: removes it).
    fn set_tag(&mut self, name: &str, tag: Option<&str>) {
        let Some(value) = self.get(name) else {
            return;
        };
        let bare = match value.find(";tag=") {
            Some(at) => value.get(..at).unwrap_or_default().to_string(),
            None => value,
        };
        let new = match tag {
            Some(tag) => format!("{bare};tag={tag}"),
            None => bare,
        };
        self.set(name, new.into_bytes());
    }

    fn print(&self, compact: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        out.extend_from_slice(self.start.as_bytes());
        out.extend_from_slice(b"\r\n");
        let mut stated_length = false;
        for (name, value) in &self.headers {
            stated_length |= name.eq_ignore_ascii_case("Content-Length");
            let name = if compact {
                compact_name(name)
            } else {
                name.as_str()
            };
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !stated_length {
            let length = (self.body.len() as i64 + self.length_shift).max(0);
            out.extend_from_slice(format!("Content-Length: {length}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// The RFC 3261 §7.3.3 compact form of a header name, if it has one.
fn compact_name(name: &str) -> &str {
    const COMPACT: [(&str, &str); 10] = [
        ("Via", "v"),
        ("From", "f"),
        ("To", "t"),
        ("Call-ID", "i"),
        ("Contact", "m"),
        ("Content-Type", "c"),
        ("Supported", "k"),
        ("Event", "o"),
        ("Session-Expires", "x"),
        ("Refer-To", "r"),
    ];
    COMPACT
        .iter()
        .find(|(long, _)| long.eq_ignore_ascii_case(name))
        .map(|(_, short)| *short)
        .unwrap_or(name)
}

/// The SDP of the server's offers, by variant: plain PCMU/PCMA, held (sendonly), inactive,
/// SDES-SRTP, Opus only, no common codec, broken, empty, a rejected stream, IPv6, audio
/// and video, DTLS (which this phone, without a certificate, refuses).
pub fn sdp_offer(variant: u8, version: u32) -> Vec<u8> {
    let head = |c: &str| {
        format!("v=0\r\no=pbx 42 {version} IN IP4 127.0.0.1\r\ns=-\r\nc={c}\r\nt=0 0\r\n")
    };
    let plain = "m=audio 40000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n\
                 a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
                 a=fmtp:101 0-16\r\na=ptime:20\r\n";
    let v4 = "IN IP4 127.0.0.1";
    let text = match variant % 12 {
        0 => format!("{}{plain}a=sendrecv\r\n", head(v4)),
        1 => format!("{}{plain}a=sendonly\r\n", head(v4)),
        2 => format!("{}{plain}a=inactive\r\n", head(v4)),
        3 => format!(
            "{}m=audio 40000 RTP/SAVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{SDES_KEY}\r\na=sendrecv\r\n",
            head(v4)
        ),
        4 => format!(
            "{}m=audio 40000 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n\
             a=fmtp:111 useinbandfec=1\r\na=rtcp-mux\r\n",
            head(v4)
        ),
        5 => format!(
            "{}m=audio 40000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n",
            head(v4)
        ),
        6 => "v=0\r\nm=audio x\r\nc=IN\r\n".to_string(),
        7 => String::new(),
        8 => format!(
            "{}m=audio 0 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            head(v4)
        ),
        9 => format!("{}{plain}", head("IN IP6 ::1")),
        10 => format!(
            "{}{plain}m=video 40002 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n",
            head(v4)
        ),
        _ => format!(
            "{}m=audio 40000 UDP/TLS/RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
             a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:\
             00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\na=setup:actpass\r\n\
             a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\na=rtcp-mux\r\n",
            head(v4)
        ),
    };
    text.into_bytes()
}

/// The server's answer to one of the phone's offers: PCMU with telephone-event in plain RTP
/// (the phone's best-effort SRTP offers accept it), the direction mirrored.
fn sdp_answer(offer: &[u8]) -> Vec<u8> {
    let offer = String::from_utf8_lossy(offer);
    let direction = if offer.contains("a=inactive") {
        "inactive"
    } else if offer.contains("a=sendonly") {
        "recvonly"
    } else if offer.contains("a=recvonly") {
        "sendonly"
    } else {
        "sendrecv"
    };
    format!(
        "v=0\r\no=pbx 7 7 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 41000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
         a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n\
         a={direction}\r\n"
    )
    .into_bytes()
}

/// Sizes of the chunks a stream is cut into, from a seed: one byte at a time (the hardest
/// case for framing) mixed with larger reads.
fn chunk_sizes(seed: u8, total: usize) -> Vec<usize> {
    let mut state = (u32::from(seed) << 16) ^ (total as u32) ^ 0x9e37_79b9;
    let mut sizes = Vec::new();
    let mut left = total;
    while left > 0 {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = if seed == 0 {
            left
        } else {
            match state % 4 {
                0 => 1,
                1 => 1 + (state >> 8) as usize % 8,
                2 => 1 + (state >> 8) as usize % 64,
                _ => 1 + (state >> 8) as usize % 1024,
            }
        };
        let size = size.min(left);
        sizes.push(size);
        left -= size;
    }
    sizes
}

/// How many SIP messages some bytes may hold at most: each ends its header with an empty
/// line, and one may span the previous chunk's end.
fn message_bound(bytes: &[u8]) -> usize {
    let ends = bytes
        .windows(2)
        .filter(|w| w == b"\n\n" || w == b"\n\r")
        .count();
    1 + ends
}

/// Whether some bytes are an RFC 5626 keep-alive (nothing but CR and LF).
fn is_keepalive(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|b| *b == b'\r' || *b == b'\n')
}

/// Property: what the phone transmits is a SIP message or a CRLF keep-alive.
pub fn check_transmit(flow: Flow, bytes: &[u8]) -> Option<Message> {
    if is_keepalive(bytes) {
        return None;
    }
    match Message::parse(bytes) {
        Ok(message) => Some(message),
        Err(error) => panic!(
            "property `transmit parses`: the phone sent bytes on {flow} that do not parse as \
             SIP ({error}):\n{}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

/// The `tag` parameter of a From or To header value.
fn tag_of(addr: &str) -> Option<String> {
    NameAddr::parse(addr)
        .ok()
        .and_then(|a| a.tag().map(str::to_string))
}

/// The URI of a name-addr header value.
fn uri_of(addr: &str) -> Option<String> {
    NameAddr::parse(addr).ok().map(|a| a.uri.to_string())
}

// ----- the harness --------------------------------------------------------------------------

/// A directory that knows one contact (`1000`) and blocks one number (`666`).
struct FakeDirectory;

impl Directory for FakeDirectory {
    fn caller(&self, number: &str) -> CallerInfo {
        CallerInfo {
            contact_name: (number == "1000").then(|| "Alice Contact".to_string()),
            blocked: number == "666",
        }
    }
}

/// What kind of dialog the server shares with the phone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DialogKind {
    /// The server called the phone.
    IncomingCall,
    /// The phone called through the server.
    OutgoingCall,
    /// The phone subscribed to voicemail.
    Subscription,
}

/// A dialog (or an attempt at one) between the server and the phone, from the server's
/// side: what it needs to send in-dialog requests.
#[derive(Debug, Clone)]
struct KnownDialog {
    kind: DialogKind,
    flow: Flow,
    call_id: String,
    server_tag: String,
    phone_tag: Option<String>,
    server_uri: String,
    phone_uri: String,
    /// The phone's Contact (the Request-URI of in-dialog requests).
    phone_target: Option<String>,
    /// The last CSeq the server used in the dialog.
    server_cseq: u32,
    /// The INVITE's CSeq (calls).
    invite_cseq: u32,
    /// The server's INVITE (incoming calls): its Request-URI and branch, for CANCEL and the
    /// ACK of a refusal.
    invite_uri: String,
    invite_branch: String,
    /// The SDP version of the server's next offer.
    sdp_version: u32,
}

/// Counts of what the runs reached, so a smoke test can tell that the harness still drives
/// the phone somewhere (and not only into refusals).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reached {
    /// Registration events with state Registered.
    pub registered: usize,
    /// Incoming calls announced.
    pub incoming_calls: usize,
    /// Calls answered (either direction).
    pub answered: usize,
    /// Calls ended by the other side's BYE.
    pub remote_hangups: usize,
    /// Calls ended any other way.
    pub other_ends: usize,
    /// Hold changes reported.
    pub holds: usize,
    /// DTMF digits reported.
    pub dtmf: usize,
    /// Instant messages received.
    pub messages: usize,
    /// Voicemail notifications.
    pub voicemail: usize,
    /// Push reports made.
    pub push_reports: usize,
    /// SIP messages the phone transmitted.
    pub transmitted: usize,
}

impl Reached {
    /// Adds another run's counts.
    pub fn add(&mut self, other: &Reached) {
        self.registered += other.registered;
        self.incoming_calls += other.incoming_calls;
        self.answered += other.answered;
        self.remote_hangups += other.remote_hangups;
        self.other_ends += other.other_ends;
        self.holds += other.holds;
        self.dtmf += other.dtmf;
        self.messages += other.messages;
        self.voicemail += other.voicemail;
        self.push_reports += other.push_reports;
        self.transmitted += other.transmitted;
    }
}

/// The anchor of virtual time: one real instant per process, read once. Nothing reads the
/// clock after it; every input's virtual time runs from here.
#[allow(clippy::disallowed_methods)]
fn anchor() -> Instant {
    static ANCHOR: OnceLock<Instant> = OnceLock::new();
    *ANCHOR.get_or_init(Instant::now)
}

/// A phone, the runtime around it and the server in front of it, in virtual time.
pub struct PhoneHarness {
    phone: Phone,
    start: Instant,
    /// Virtual time since `start`.
    elapsed: Duration,
    /// The phone's last `Output::Timeout` (none: nothing scheduled).
    deadline: Option<Instant>,
    accounts: Vec<AccountId>,
    /// Flows the runtime holds open (TCP connections, UDP routes).
    up: HashSet<Flow>,
    tcp_connections: u16,
    fail_connects: u8,
    fail_binds: u8,
    mode: ServerMode,
    dialogs: Vec<KnownDialog>,
    /// The phone's recent requests, with their flows.
    requests: VecDeque<(Flow, Request)>,
    /// Calls the harness has seen (dialled, announced).
    calls: Vec<CallId>,
    /// Incoming calls' SIP Call-IDs (for push payloads).
    sip_call_ids: Vec<String>,
    reports: Vec<ReportId>,
    /// Inputs the runtime and the server owe the phone.
    queue: VecDeque<Input>,
    /// SIP traffic (both ways) in the last [`WINDOW`]: (when, how many messages at most).
    traffic: VecDeque<(Duration, usize)>,
    counter: u64,
    /// What the run reached.
    pub reached: Reached,
}

impl std::fmt::Debug for PhoneHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PhoneHarness")
            .field("elapsed", &self.elapsed)
            .field("phone", &self.phone)
            .field("dialogs", &self.dialogs.len())
            .finish_non_exhaustive()
    }
}

/// Most dialogs, requests, calls and reports the harness remembers (oldest forgotten).
const REMEMBERED: usize = 16;

fn remember<T>(list: &mut Vec<T>, item: T) {
    if list.len() >= REMEMBERED {
        list.remove(0);
    }
    list.push(item);
}

impl Default for PhoneHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl PhoneHarness {
    /// A phone with both accounts registered, alice's voicemail subscribed, an answered
    /// incoming call (alice), an answered outgoing call (bob to carol) and a ringing incoming
    /// call (bob). Panics, naming the step, if the phone does not get there.
    pub fn new() -> PhoneHarness {
        let phone = Phone::new(
            PhoneConfig::default(),
            Box::new(FakeDirectory),
            Box::new(StdRng::seed_from_u64(PHONE_SEED)),
        );
        let mut harness = PhoneHarness {
            phone,
            start: anchor(),
            elapsed: Duration::ZERO,
            deadline: None,
            accounts: Vec::new(),
            up: HashSet::new(),
            tcp_connections: 0,
            fail_connects: 0,
            fail_binds: 0,
            mode: ServerMode::Answer,
            dialogs: Vec::new(),
            requests: VecDeque::new(),
            calls: Vec::new(),
            sip_call_ids: Vec::new(),
            reports: Vec::new(),
            queue: VecDeque::new(),
            traffic: VecDeque::new(),
            counter: 0,
            reached: Reached::default(),
        };
        for (user, server, voicemail) in ACCOUNTS {
            let mut config = AccountConfig::new(server, user, format!("{user}-secret"));
            config.voicemail = voicemail;
            match harness.command(Command::AddAccount(Box::new(config))) {
                Ok(Reply::Account(id)) => harness.accounts.push(id),
                other => panic!("set-up: adding account {user} failed: {other:?}"),
            }
        }
        assert_eq!(
            harness.reached.registered, 2,
            "set-up: both accounts should be registered"
        );
        assert_eq!(
            harness.reached.voicemail, 1,
            "set-up: alice's voicemail should be notified"
        );

        // alice is called and answers.
        harness.send_template(Template::Invite, Route::Udp(Peer::Server), None, &[], 0);
        let incoming = harness.last_call("set-up: alice's incoming call");
        let answer = harness.command(Command::Answer {
            call: incoming,
            media: None,
        });
        assert!(answer.is_ok(), "set-up: answering failed: {answer:?}");
        harness.expect_active(incoming, "alice's answered call");

        // bob calls carol, who answers.
        let outgoing = match harness.command(Command::Dial {
            account: harness.account(1),
            target: "carol".into(),
            media: None,
            report_id: None,
        }) {
            Ok(Reply::Call(id)) => id,
            other => panic!("set-up: dialing failed: {other:?}"),
        };
        harness.expect_active(outgoing, "bob's outgoing call");

        // bob is called; it keeps ringing.
        harness.send_template(Template::Invite, Route::Tcp(Peer::Server), None, &[], 7);
        let ringing = harness.last_call("set-up: bob's incoming call");
        assert!(
            matches!(
                harness.phone.call_state(ringing),
                Some(handset_phone::CallState::Incoming)
            ),
            "set-up: bob's incoming call should ring, is {:?}",
            harness.phone.call_state(ringing)
        );
        assert_eq!(harness.phone.call_count(), 3, "set-up: three calls");
        harness
    }

    fn expect_active(&self, call: CallId, what: &str) {
        assert!(
            matches!(
                self.phone.call_state(call),
                Some(handset_phone::CallState::Active { .. })
            ),
            "set-up: {what} should be active, is {:?}",
            self.phone.call_state(call)
        );
    }

    fn last_call(&self, what: &str) -> CallId {
        match self.calls.last() {
            Some(call) => *call,
            None => panic!("{what}: no call was announced"),
        }
    }

    fn account(&self, pick: u8) -> AccountId {
        self.accounts
            .get(usize::from(pick) % self.accounts.len().max(1))
            .copied()
            .unwrap_or(AccountId(u64::from(pick)))
    }

    fn now(&self) -> Instant {
        self.start + self.elapsed
    }

    /// Runs one fuzz input: set-up, the operations, ten quiet minutes.
    pub fn run_input(data: &[u8]) -> PhoneHarness {
        let mut harness = PhoneHarness::new();
        for op in decode_ops(data) {
            harness.apply(op);
        }
        harness.advance(QUIET_END);
        harness.check_ended_calls_released();
        harness
    }

    /// Property, after the quiet end: every call the phone still holds is live. An ended call
    /// is released once its SIP session has nothing left to send (64·T1 at most) and its
    /// media stopped, long before ten quiet minutes are over.
    pub fn check_ended_calls_released(&self) {
        // Call ids are handed out in order from 1; look until every held call is found.
        let held = self.phone.call_count();
        let mut found = 0;
        let mut id = 0;
        while found < held {
            id += 1;
            assert!(
                id <= 1_000_000,
                "property `ended calls released`: call_count() = {held} but only {found} calls \
                 have ids up to a million"
            );
            if let Some(state) = self.phone.call_state(CallId(id)) {
                found += 1;
                assert!(
                    !state.is_ended(),
                    "property `ended calls released`: call {id} ended ({state:?}) but is still \
                     held after {QUIET_END:?} without input; {self:?}"
                );
            }
        }
    }

    /// Applies one operation, with everything it leads to, and checks the properties.
    pub fn apply(&mut self, op: Op) {
        match op {
            Op::Datagram { peer, bytes } => {
                self.deliver(Flow::new(Transport::Udp, peer.addr()), bytes, 0);
            }
            Op::Stream {
                peer,
                bytes,
                chunking,
            } => self.deliver(Flow::new(Transport::Tcp, peer.addr()), bytes, chunking),
            Op::Template {
                template,
                route,
                dialog,
                mutations,
                chunking,
            } => {
                let dialog = if template == Template::Invite && dialog & 0x80 == 0 {
                    // Mostly new calls; now and then a repeat of a known call's INVITE.
                    None
                } else {
                    self.pick_dialog(dialog)
                };
                self.send_template(template, route, dialog, &mutations, chunking);
            }
            Op::Reply {
                request,
                status,
                flags,
                mutations,
            } => self.reply(request, status, flags, &mutations),
            Op::Network(event) => self.network(event),
            Op::Advance { scale, amount } => {
                let n = u64::from(amount) + 1;
                let by = match scale % 4 {
                    0 => Duration::from_millis(n),
                    1 => Duration::from_secs(n),
                    2 => Duration::from_secs(60 * (n % 60 + 1)),
                    _ => Duration::from_secs(3600 * (n % 8 + 1)),
                };
                // The input's own moves stay within the budget (the quiet end comes on top).
                self.advance(by.min(MAX_VIRTUAL_TIME.saturating_sub(self.elapsed)));
            }
            Op::App(command) => self.app(command),
            Op::Media { call, event } => {
                let call = self.pick_call(call);
                let input = match event % 4 {
                    0 => Input::Media {
                        call,
                        event: MediaEvent::Dtmf {
                            digit: ['1', '#', '*', 'A', 'x']
                                .get(usize::from(event / 4) % 5)
                                .copied()
                                .unwrap_or('1'),
                        },
                    },
                    1 => Input::Media {
                        call,
                        event: MediaEvent::Connected,
                    },
                    2 => Input::Media {
                        call,
                        event: MediaEvent::Closed,
                    },
                    _ => Input::MediaFailed {
                        call,
                        error: "audio device gone".into(),
                    },
                };
                self.run(input);
            }
            Op::Server(mode) => self.mode = mode,
        }
    }

    /// A known dialog, or `None` (a made-up one) for the last choice.
    fn pick_dialog(&self, pick: u8) -> Option<usize> {
        let i = usize::from(pick) % (self.dialogs.len() + 1);
        (i < self.dialogs.len()).then_some(i)
    }

    /// A known call, or an unknown id for the last choice.
    fn pick_call(&self, pick: u8) -> CallId {
        let i = usize::from(pick) % (self.calls.len() + 1);
        self.calls.get(i).copied().unwrap_or(CallId(999))
    }

    fn next(&mut self) -> u64 {
        self.counter += 1;
        self.counter
    }

    // ----- the runtime ----------------------------------------------------------------------

    /// An app command and everything it leads to.
    fn command(&mut self, command: Command) -> Result<Reply, handset_phone::PhoneError> {
        let reply = self.feed(Input::Command(command));
        self.settle();
        match &reply {
            Ok(Reply::Call(id)) => remember(&mut self.calls, *id),
            Ok(Reply::PushReport { report, .. }) => {
                self.reached.push_reports += 1;
                remember(&mut self.reports, report.report_id);
            }
            _ => {}
        }
        reply
    }

    /// Feeds one input (other than a command) and everything it leads to.
    fn run(&mut self, input: Input) {
        // Inputs other than commands always reply `Done`.
        let _ = self.feed(input);
        self.settle();
    }

    /// Feeds what the runtime and the server owe the phone, until nothing is owed.
    fn settle(&mut self) {
        let mut fed = 1usize;
        while let Some(input) = self.queue.pop_front() {
            fed += 1;
            assert!(
                fed <= MAX_INPUTS_PER_OP,
                "property `settles`: one operation led to more than {MAX_INPUTS_PER_OP} \
                 inputs (the phone and its runtime/server answer each other without end); \
                 {self:?}"
            );
            let _ = self.feed(input);
        }
    }

    fn feed(&mut self, input: Input) -> Result<Reply, handset_phone::PhoneError> {
        if let Input::Received { bytes, .. } = &input {
            let messages = message_bound(bytes);
            self.note_traffic(messages);
        }
        let reply = self.phone.handle_input(self.now(), input);
        self.drain();
        self.check_bounds();
        reply
    }

    fn note_traffic(&mut self, messages: usize) {
        match self.traffic.back_mut() {
            Some((at, count)) if *at == self.elapsed => *count += messages,
            _ => self.traffic.push_back((self.elapsed, messages)),
        }
    }

    /// Drains the phone's outputs and carries each out as the runtime would.
    fn drain(&mut self) {
        let mut drained = 0usize;
        let mut timeout = None;
        while let Some(output) = self.phone.poll_output() {
            drained += 1;
            assert!(
                drained <= MAX_DRAIN,
                "property `drain ends`: poll_output yielded more than {MAX_DRAIN} outputs \
                 without running dry; {self:?}"
            );
            assert!(
                timeout.is_none(),
                "property `timeout last`: {output:?} came after Output::Timeout"
            );
            match output {
                Output::Timeout(at) => timeout = Some(at),
                other => self.execute(other),
            }
        }
        self.deadline = timeout;
    }

    fn execute(&mut self, output: Output) {
        match output {
            Output::Transmit { flow, bytes } => self.transmitted(flow, &bytes),
            Output::Resolve { account, target } => {
                let transport = target.transport.unwrap_or(Transport::Udp);
                let port = target.port.unwrap_or(transport.default_port());
                self.queue.push_back(Input::Resolved {
                    account,
                    result: Ok(vec![Target {
                        transport,
                        addr: SocketAddr::new(SERVER.ip(), port),
                        host: target.host,
                    }]),
                });
            }
            Output::Connect { flow, .. } => {
                if self.fail_connects > 0 {
                    self.fail_connects -= 1;
                    self.queue.push_back(Input::ConnectFailed {
                        flow,
                        error: "connection refused".into(),
                    });
                    return;
                }
                let local = if flow.reliable() {
                    // Each connection gets a new ephemeral port, as a real one would.
                    self.tcp_connections = self.tcp_connections.wrapping_add(1);
                    SocketAddr::new(PHONE_UDP.ip(), 40_000 + self.tcp_connections % 20_000)
                } else {
                    PHONE_UDP
                };
                self.up.insert(flow);
                self.queue.push_back(Input::Connected { flow, local });
            }
            Output::Disconnect { flow } => {
                self.up.remove(&flow);
            }
            Output::BindMedia { call, .. } => {
                let result = if self.fail_binds > 0 {
                    self.fail_binds -= 1;
                    Err("no port".to_string())
                } else {
                    Ok(BoundMedia::plain(SocketAddr::new(
                        PHONE_UDP.ip(),
                        20_000 + (call.0 % 10_000) as u16 * 2,
                    )))
                };
                self.queue.push_back(Input::MediaBound { call, result });
            }
            Output::Media { call, command } => {
                if let MediaCommand::Stop = command {
                    self.queue.push_back(Input::MediaStopped {
                        call,
                        quality: None,
                    });
                }
            }
            // No database here: what the phone would write is not under test.
            Output::Store(_) => {}
            Output::Event(event) => self.event(event),
            // `drain` keeps the deadline itself; it never hands a timeout here.
            Output::Timeout(_) => {}
        }
    }

    fn event(&mut self, event: PhoneEvent) {
        match event {
            PhoneEvent::Registration {
                state: RegistrationState::Registered { .. },
                ..
            } => self.reached.registered += 1,
            PhoneEvent::Call { call, update, .. } => match update {
                CallUpdate::Incoming {
                    sip_call_id,
                    report_id,
                    ..
                } => {
                    self.reached.incoming_calls += 1;
                    remember(&mut self.calls, call);
                    remember(&mut self.sip_call_ids, sip_call_id);
                    remember(&mut self.reports, report_id);
                }
                CallUpdate::Answered { .. } => self.reached.answered += 1,
                CallUpdate::Hold { .. } => self.reached.holds += 1,
                CallUpdate::Dtmf { .. } => self.reached.dtmf += 1,
                CallUpdate::Ended { reason, .. } => {
                    if reason == handset_phone::EndReason::RemoteHangup {
                        self.reached.remote_hangups += 1;
                    } else {
                        self.reached.other_ends += 1;
                    }
                }
                _ => {}
            },
            PhoneEvent::MessageReceived { .. } => self.reached.messages += 1,
            PhoneEvent::Voicemail { .. } => self.reached.voicemail += 1,
            _ => {}
        }
    }

    /// The phone sent something: check it, and let the server answer.
    fn transmitted(&mut self, flow: Flow, bytes: &[u8]) {
        let message = check_transmit(flow, bytes);
        if flow.reliable() && !self.up.contains(&flow) {
            // As the runtime does: a send on a connection that is gone reports it closed.
            self.queue.push_back(Input::Closed {
                flow,
                error: Some("the connection is gone".into()),
            });
            return;
        }
        let Some(message) = message else {
            // A ping on a connection gets its pong from a live server.
            if flow.reliable() && bytes == b"\r\n\r\n" && self.mode != ServerMode::Silent {
                self.queue.push_back(Input::Received {
                    flow,
                    bytes: b"\r\n".to_vec(),
                });
            }
            return;
        };
        self.reached.transmitted += 1;
        self.note_traffic(1);
        let server_flow = flow.remote == SERVER;
        match message {
            Message::Request(request) => {
                if server_flow {
                    self.server_request(flow, request);
                }
            }
            Message::Response(response) => {
                if server_flow {
                    self.server_response(flow, &response);
                }
            }
        }
    }

    /// Delivers bytes from a peer: one datagram, or stream chunks.
    fn deliver(&mut self, flow: Flow, bytes: Vec<u8>, chunking: u8) {
        if !flow.reliable() {
            self.run(Input::Received { flow, bytes });
            return;
        }
        let mut rest = bytes.as_slice();
        for size in chunk_sizes(chunking, bytes.len()) {
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            rest = tail;
            self.run(Input::Received {
                flow,
                bytes: chunk.to_vec(),
            });
        }
    }

    /// Moves virtual time on by `by`, waking the phone at each of its deadlines on the way
    /// (as the runtime's sleep would).
    pub fn advance(&mut self, by: Duration) {
        let target = self.elapsed + by;
        let mut wakes = 0usize;
        let mut in_a_row = 0usize;
        while let Some(at) = self.deadline {
            let at = at.saturating_duration_since(self.start);
            if at > target {
                break;
            }
            wakes += 1;
            assert!(
                wakes <= MAX_WAKES_PER_ADVANCE,
                "property `finite timers`: moving the clock by {by:?} fired more than \
                 {MAX_WAKES_PER_ADVANCE} timeouts; {self:?}"
            );
            if at > self.elapsed {
                self.set_elapsed(at);
                in_a_row = 0;
            } else {
                in_a_row += 1;
                assert!(
                    in_a_row <= MAX_WAKES_AT_ONE_INSTANT,
                    "property `timers move on`: the phone asked to be woken at or before \
                     {:?} more than {MAX_WAKES_AT_ONE_INSTANT} times in a row (a runtime \
                     would spin); {self:?}",
                    self.elapsed
                );
            }
            self.run(Input::Timeout);
        }
        self.set_elapsed(target);
        self.check_bounds();
    }

    fn set_elapsed(&mut self, elapsed: Duration) {
        assert!(
            elapsed >= self.elapsed,
            "property `time moves forward`: virtual time would go from {:?} back to {elapsed:?}",
            self.elapsed
        );
        self.elapsed = elapsed;
    }

    /// Property: the phone's transactions and calls stay within bounds of the traffic of the
    /// last [`WINDOW`]. Each message (either way) may start one transaction and one call;
    /// beyond that only what lives on its own is allowed: [`TRANSACTION_BASE`] transactions,
    /// [`TRANSACTIONS_PER_CALL`] per call, [`CALL_BASE`] calls. A transaction or an ended
    /// call that outlives its last message by minutes breaks it.
    pub fn check_bounds(&mut self) {
        let horizon = self.elapsed.saturating_sub(WINDOW);
        while self.traffic.front().is_some_and(|(at, _)| *at < horizon) {
            self.traffic.pop_front();
        }
        let recent: usize = self.traffic.iter().map(|(_, n)| n).sum();
        let calls = self.phone.call_count();
        let transactions = self.phone.transaction_count();
        check_bounds(calls, transactions, recent);
    }

    // ----- the server -----------------------------------------------------------------------

    fn server_request(&mut self, flow: Flow, request: Request) {
        if self.requests.len() >= REMEMBERED {
            self.requests.pop_front();
        }
        self.requests.push_back((flow, request.clone()));
        let method = request.method.clone();
        if method == Method::Ack {
            return;
        }
        let in_dialog = request.headers.to().is_ok_and(|to| to.tag().is_some());
        match self.mode {
            ServerMode::Silent => return,
            ServerMode::Reject(status) => {
                let status = STATUSES
                    .get(usize::from(status) % STATUSES.len())
                    .copied()
                    .unwrap_or(500)
                    .max(300);
                let tag = self.server_tag_for(&request);
                let response = response_to(&request, status, Some(&tag));
                self.send_server(flow, response.into());
                return;
            }
            ServerMode::Challenge
                if !in_dialog
                    && matches!(
                        method,
                        Method::Register | Method::Invite | Method::Subscribe | Method::Message
                    )
                    && !request.headers.contains(&HeaderName::Authorization)
                    && !request.headers.contains(&HeaderName::ProxyAuthorization) =>
            {
                let mut response = response_to(&request, 401, Some("chal"));
                let nonce = self.next();
                response.headers.push(
                    HeaderName::WwwAuthenticate,
                    format!(
                        "Digest realm=\"127.0.0.1\", nonce=\"n{nonce:08x}\", algorithm=MD5, \
                         qop=\"auth\""
                    ),
                );
                self.send_server(flow, response.into());
                return;
            }
            _ => {}
        }
        match method {
            Method::Register => {
                let expires = request
                    .headers
                    .contacts()
                    .ok()
                    .and_then(|c| c.into_iter().flatten().next())
                    .and_then(|c| c.expires())
                    .or_else(|| request.headers.expires().ok().flatten())
                    .unwrap_or(3600);
                let mut response = response_to(&request, 200, Some("reg"));
                if expires > 0
                    && let Some(contact) = request.headers.get(&HeaderName::Contact)
                {
                    response
                        .headers
                        .push(HeaderName::Contact, format!("{contact};expires={expires}"));
                }
                self.send_server(flow, response.into());
            }
            Method::Subscribe => {
                let tag = self.server_tag_for(&request);
                let expires = request.headers.expires().ok().flatten().unwrap_or(3600);
                let mut response = response_to(&request, 200, Some(&tag));
                response
                    .headers
                    .push(HeaderName::Contact, "<sip:voicemail@127.0.0.1:5060>");
                response
                    .headers
                    .push(HeaderName::Expires, expires.to_string());
                if let Some(i) =
                    self.learn_phone_dialog(flow, &request, &tag, DialogKind::Subscription)
                {
                    self.send_server(flow, response.into());
                    let state = if expires == 0 {
                        "terminated;reason=timeout".to_string()
                    } else {
                        format!("active;expires={expires}")
                    };
                    self.send_notify(i, &state);
                } else {
                    self.send_server(flow, response.into());
                }
            }
            Method::Invite if !in_dialog => {
                let tag = self.server_tag_for(&request);
                self.learn_phone_dialog(flow, &request, &tag, DialogKind::OutgoingCall);
                self.send_server(flow, response_to(&request, 100, None).into());
                let mut ringing = response_to(&request, 180, Some(&tag));
                ringing
                    .headers
                    .push(HeaderName::Contact, "<sip:carol@127.0.0.1:5060>");
                self.send_server(flow, ringing.into());
                if self.mode != ServerMode::Ring {
                    let ok = self.ok_with_answer(&request, &tag);
                    self.send_server(flow, ok.into());
                }
            }
            Method::Invite | Method::Update => {
                let tag = self.server_tag_for(&request);
                let ok = self.ok_with_answer(&request, &tag);
                self.send_server(flow, ok.into());
            }
            Method::Cancel => {
                self.send_server(flow, response_to(&request, 200, None).into());
                // The INVITE it cancels ends with 487 unless it was answered already.
                let invite = self
                    .requests
                    .iter()
                    .find(|(_, r)| {
                        r.method == Method::Invite
                            && r.headers
                                .top_via()
                                .ok()
                                .and_then(|v| v.branch().map(str::to_string))
                                == request
                                    .headers
                                    .top_via()
                                    .ok()
                                    .and_then(|v| v.branch().map(str::to_string))
                    })
                    .map(|(_, r)| r.clone());
                if let Some(invite) = invite
                    && self.mode == ServerMode::Ring
                {
                    let tag = self.server_tag_for(&invite);
                    self.send_server(flow, response_to(&invite, 487, Some(&tag)).into());
                }
            }
            _ => {
                let tag = self.server_tag_for(&request);
                self.send_server(flow, response_to(&request, 200, Some(&tag)).into());
            }
        }
    }

    /// A 200 to an INVITE or UPDATE with the server's answer to its offer.
    fn ok_with_answer(&self, request: &Request, tag: &str) -> Response {
        let mut ok = response_to(request, 200, Some(tag));
        ok.headers
            .push(HeaderName::Contact, "<sip:carol@127.0.0.1:5060>");
        if !request.body.is_empty() {
            ok.headers.push(HeaderName::ContentType, "application/sdp");
            ok.body = sdp_answer(&request.body);
        }
        ok
    }

    /// The server's To tag for a request of the phone: its dialog's, else a new one.
    fn server_tag_for(&mut self, request: &Request) -> String {
        if let Ok(to) = request.headers.to()
            && let Some(tag) = to.tag()
        {
            return tag.to_string();
        }
        let call_id = request.headers.call_id().unwrap_or_default();
        let phone_tag = request
            .headers
            .from()
            .ok()
            .and_then(|f| f.tag().map(str::to_string));
        if let Some(dialog) = self
            .dialogs
            .iter()
            .find(|dialog| dialog.call_id == call_id && dialog.phone_tag == phone_tag)
        {
            return dialog.server_tag.clone();
        }
        format!("srv{}", self.next())
    }

    /// Remembers a dialog the phone starts (its INVITE or SUBSCRIBE); returns its index.
    fn learn_phone_dialog(
        &mut self,
        flow: Flow,
        request: &Request,
        server_tag: &str,
        kind: DialogKind,
    ) -> Option<usize> {
        let call_id = request.headers.call_id().ok()?.to_string();
        let from = request.headers.get(&HeaderName::From)?.to_string();
        let to = request.headers.get(&HeaderName::To)?.to_string();
        let phone_tag = tag_of(&from);
        if let Some(i) = self
            .dialogs
            .iter()
            .position(|dialog| dialog.call_id == call_id && dialog.phone_tag == phone_tag)
        {
            return Some(i);
        }
        let cseq = request.headers.cseq().map(|c| c.seq).unwrap_or(1);
        remember(
            &mut self.dialogs,
            KnownDialog {
                kind,
                flow,
                call_id,
                server_tag: server_tag.to_string(),
                phone_tag,
                server_uri: uri_of(&to).unwrap_or_else(|| "sip:carol@127.0.0.1".into()),
                phone_uri: uri_of(&from).unwrap_or_else(|| "sip:alice@127.0.0.1".into()),
                phone_target: request.headers.get(&HeaderName::Contact).and_then(uri_of),
                server_cseq: 100,
                invite_cseq: cseq,
                invite_uri: request.uri.to_string(),
                invite_branch: String::new(),
                sdp_version: 1,
            },
        );
        Some(self.dialogs.len() - 1)
    }

    /// The server's NOTIFY in a subscription dialog.
    fn send_notify(&mut self, index: usize, state: &str) {
        let Some(dialog) = self.dialogs.get_mut(index) else {
            return;
        };
        dialog.server_cseq += 1;
        let dialog = dialog.clone();
        let branch = self.next();
        let mut draft = in_dialog_draft(&dialog, "NOTIFY", dialog.server_cseq, branch);
        draft.header("Contact", "<sip:voicemail@127.0.0.1:5060>");
        draft.header("Event", "message-summary");
        draft.header("Subscription-State", state);
        draft.header("Content-Type", "application/simple-message-summary");
        draft.body = b"Messages-Waiting: yes\r\nMessage-Account: sip:alice@127.0.0.1\r\n\
                       Voice-Message: 2/8 (0/2)\r\n"
            .to_vec();
        self.queue.push_back(Input::Received {
            flow: dialog.flow,
            bytes: draft.print(false),
        });
    }

    /// The phone answered one of the server's requests.
    fn server_response(&mut self, flow: Flow, response: &Response) {
        let Ok(cseq) = response.headers.cseq() else {
            return;
        };
        if cseq.method != Method::Invite {
            return;
        }
        let call_id = response.headers.call_id().unwrap_or_default().to_string();
        let server_tag = response
            .headers
            .from()
            .ok()
            .and_then(|f| f.tag().map(str::to_string));
        let Some(i) = self.dialogs.iter().position(|dialog| {
            dialog.call_id == call_id && Some(&dialog.server_tag) == server_tag.as_ref()
        }) else {
            return;
        };
        let phone_tag = response
            .headers
            .to()
            .ok()
            .and_then(|t| t.tag().map(str::to_string));
        let contact = response.headers.get(&HeaderName::Contact).and_then(uri_of);
        if let Some(dialog) = self.dialogs.get_mut(i) {
            if phone_tag.is_some() {
                dialog.phone_tag = phone_tag;
            }
            if contact.is_some() {
                dialog.phone_target = contact;
            }
        }
        if response.status < 200 || self.mode == ServerMode::Silent {
            return;
        }
        let Some(dialog) = self.dialogs.get(i).cloned() else {
            return;
        };
        if response.status >= 300 {
            // The ACK of a refusal is hop-by-hop: the INVITE's branch and Request-URI.
            let mut ack = Draft::new(format!("ACK {} SIP/2.0", dialog.invite_uri));
            ack.header(
                "Via",
                &format!(
                    "SIP/2.0/{} 127.0.0.1:5060;branch={}",
                    flow.transport.via_name(),
                    dialog.invite_branch
                ),
            );
            ack.header("Max-Forwards", "70");
            ack.header(
                "From",
                &format!("<{}>;tag={}", dialog.server_uri, dialog.server_tag),
            );
            ack.header(
                "To",
                response.headers.get(&HeaderName::To).unwrap_or_default(),
            );
            ack.header("Call-ID", &dialog.call_id);
            ack.header("CSeq", &format!("{} ACK", cseq.seq));
            self.queue.push_back(Input::Received {
                flow,
                bytes: ack.print(false),
            });
        } else if dialog.kind == DialogKind::IncomingCall {
            let branch = self.next();
            let ack = in_dialog_draft(&dialog, "ACK", cseq.seq, branch);
            self.queue.push_back(Input::Received {
                flow,
                bytes: ack.print(false),
            });
        }
    }

    /// Sends the server's message on a flow (nothing when the connection is gone).
    fn send_server(&mut self, flow: Flow, message: Message) {
        if flow.reliable() && !self.up.contains(&flow) {
            return;
        }
        self.queue.push_back(Input::Received {
            flow,
            bytes: message.to_bytes(),
        });
    }

    /// The server (or a stranger) answers one of the phone's recent requests.
    fn reply(&mut self, pick: u8, status: u8, flags: u8, mutations: &[Mutation]) {
        if self.requests.is_empty() {
            return;
        }
        let i = usize::from(pick) % self.requests.len();
        let Some((flow, request)) = self.requests.get(i).cloned() else {
            return;
        };
        let status = STATUSES
            .get(usize::from(status) % STATUSES.len())
            .copied()
            .unwrap_or(200);
        let tag = if flags & 4 != 0 {
            format!("fork{}", self.next())
        } else {
            self.server_tag_for(&request)
        };
        let mut response = response_to(&request, status, (status > 100).then_some(&*tag));
        if request.method == Method::Invite && (101..300).contains(&status) {
            if flags & 1 != 0 && !request.body.is_empty() {
                response
                    .headers
                    .push(HeaderName::ContentType, "application/sdp");
                response.body = sdp_answer(&request.body);
            }
            if flags & 2 != 0 && status < 200 {
                response.headers.push(HeaderName::Require, "100rel");
                response.headers.push(HeaderName::from("RSeq"), "1");
            }
            if flags & 8 != 0 {
                response
                    .headers
                    .push(HeaderName::RecordRoute, "<sip:127.0.0.1:5060;lr>");
            }
            if flags & 16 != 0 && status >= 200 {
                response
                    .headers
                    .push(HeaderName::SessionExpires, "90;refresher=uac");
                response.headers.push(HeaderName::Require, "timer");
            }
        }
        if flags & 32 == 0 && (101..400).contains(&status) {
            response
                .headers
                .push(HeaderName::Contact, "<sip:carol@127.0.0.1:5060>");
        }
        match status {
            401 => response.headers.push(
                HeaderName::WwwAuthenticate,
                "Digest realm=\"127.0.0.1\", nonce=\"abc\", qop=\"auth\"",
            ),
            407 => response.headers.push(
                HeaderName::ProxyAuthenticate,
                "Digest realm=\"elsewhere\", nonce=\"xyz\"",
            ),
            423 if flags & 64 != 0 => response.headers.push(HeaderName::MinExpires, "7200"),
            503 if flags & 64 != 0 => response.headers.push(HeaderName::RetryAfter, "30"),
            _ => {}
        }
        let mut draft = Draft::from_message(&Message::Response(response));
        let bytes = self.mutate(&mut draft, mutations);
        self.deliver(flow, bytes, pick);
    }

    // ----- templates ------------------------------------------------------------------------

    /// Builds a template message for a dialog (or a made-up one), mutates it and sends it.
    fn send_template(
        &mut self,
        template: Template,
        route: Route,
        index: Option<usize>,
        mutations: &[Mutation],
        chunking: u8,
    ) {
        let branch = self.next();
        let known = index.and_then(|i| self.dialogs.get(i).cloned());
        let flow = match route {
            Route::Natural => known
                .as_ref()
                .map(|dialog| dialog.flow)
                .unwrap_or(Flow::new(Transport::Udp, SERVER)),
            Route::Udp(peer) => Flow::new(Transport::Udp, peer.addr()),
            Route::Tcp(peer) => Flow::new(Transport::Tcp, peer.addr()),
        };
        // Bob's account is the TCP one, alice's the UDP one.
        let user = if flow.reliable() { "bob" } else { "alice" };
        let fake = || KnownDialog {
            kind: DialogKind::IncomingCall,
            flow,
            call_id: format!("gone{branch}@127.0.0.1"),
            server_tag: format!("x{branch}"),
            phone_tag: Some(format!("y{branch}")),
            server_uri: "sip:1000@127.0.0.1".into(),
            phone_uri: format!("sip:{user}@127.0.0.1"),
            phone_target: None,
            server_cseq: 5,
            invite_cseq: 1,
            invite_uri: format!("sip:{user}@127.0.0.1"),
            invite_branch: format!("z9hG4bKgone{branch}"),
            sdp_version: 1,
        };
        let mut dialog = known.clone().unwrap_or_else(fake);
        dialog.flow = flow;
        let via = |b: &str| {
            format!(
                "SIP/2.0/{} {};branch={b};rport",
                flow.transport.via_name(),
                flow.remote
            )
        };
        let new_branch = format!("z9hG4bKsrv{branch}");
        let mut draft = match template {
            Template::Invite => {
                if known.is_none() {
                    let caller = CALLERS
                        .get(usize::from(chunking) % CALLERS.len())
                        .copied()
                        .unwrap_or("1000");
                    dialog = KnownDialog {
                        kind: DialogKind::IncomingCall,
                        flow,
                        call_id: format!("call{branch}@127.0.0.1"),
                        server_tag: format!("srv{branch}"),
                        phone_tag: None,
                        server_uri: format!("sip:{caller}@127.0.0.1"),
                        phone_uri: format!("sip:{user}@127.0.0.1"),
                        phone_target: None,
                        server_cseq: 1,
                        invite_cseq: 1,
                        invite_uri: format!("sip:{user}@{PHONE_UDP}"),
                        invite_branch: new_branch.clone(),
                        sdp_version: 1,
                    };
                }
                let mut draft = Draft::new(format!("INVITE {} SIP/2.0", dialog.invite_uri));
                draft.header("Via", &via(&dialog.invite_branch));
                draft.header("Max-Forwards", "70");
                draft.header(
                    "From",
                    &format!(
                        "\"Caller\" <{}>;tag={}",
                        dialog.server_uri, dialog.server_tag
                    ),
                );
                draft.header("To", &format!("<{}>", dialog.phone_uri));
                draft.header("Call-ID", &dialog.call_id);
                draft.header("CSeq", &format!("{} INVITE", dialog.invite_cseq));
                draft.header("Contact", &format!("<sip:{}@{}>", "1000", flow.remote));
                draft.header("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO");
                draft.header("Content-Type", "application/sdp");
                draft.body = sdp_offer(0, dialog.sdp_version);
                draft
            }
            Template::Cancel => {
                let mut draft = Draft::new(format!("CANCEL {} SIP/2.0", dialog.invite_uri));
                draft.header("Via", &via(&dialog.invite_branch));
                draft.header("Max-Forwards", "70");
                draft.header(
                    "From",
                    &format!("<{}>;tag={}", dialog.server_uri, dialog.server_tag),
                );
                draft.header("To", &format!("<{}>", dialog.phone_uri));
                draft.header("Call-ID", &dialog.call_id);
                draft.header("CSeq", &format!("{} CANCEL", dialog.invite_cseq));
                draft.header("Reason", "SIP;cause=200;text=\"Call completed elsewhere\"");
                draft
            }
            Template::Ack => in_dialog_draft(&dialog, "ACK", dialog.invite_cseq, branch),
            Template::Notify
            | Template::ReInvite
            | Template::Bye
            | Template::Info
            | Template::Update
            | Template::Prack
            | Template::Refer => {
                dialog.server_cseq = dialog.server_cseq.wrapping_add(1);
                dialog.sdp_version = dialog.sdp_version.wrapping_add(1);
                let method = match template {
                    Template::Notify => "NOTIFY",
                    Template::ReInvite => "INVITE",
                    Template::Bye => "BYE",
                    Template::Info => "INFO",
                    Template::Update => "UPDATE",
                    Template::Prack => "PRACK",
                    _ => "REFER",
                };
                let mut draft = in_dialog_draft(&dialog, method, dialog.server_cseq, branch);
                match template {
                    Template::Notify => {
                        draft.header("Event", "message-summary");
                        draft.header("Subscription-State", "active;expires=3600");
                        draft.header("Content-Type", "application/simple-message-summary");
                        draft.body =
                            b"Messages-Waiting: yes\r\nVoice-Message: 3/9 (1/0)\r\n".to_vec();
                    }
                    Template::ReInvite | Template::Update => {
                        draft.header("Contact", &format!("<sip:1000@{}>", flow.remote));
                        draft.header("Content-Type", "application/sdp");
                        draft.body = sdp_offer(chunking % 3, dialog.sdp_version);
                    }
                    Template::Info => {
                        draft.header("Content-Type", "application/dtmf-relay");
                        draft.body = b"Signal=5\r\nDuration=160\r\n".to_vec();
                    }
                    Template::Prack => {
                        draft.header("RAck", &format!("1 {} INVITE", dialog.invite_cseq));
                    }
                    Template::Refer => {
                        draft.header("Refer-To", "<sip:3000@127.0.0.1>");
                        draft.header("Contact", &format!("<sip:1000@{}>", flow.remote));
                    }
                    _ => {}
                }
                draft
            }
            Template::Message | Template::Options | Template::Subscribe | Template::Register => {
                let method = match template {
                    Template::Message => "MESSAGE",
                    Template::Options => "OPTIONS",
                    Template::Subscribe => "SUBSCRIBE",
                    _ => "REGISTER",
                };
                let mut draft = Draft::new(format!("{method} sip:{user}@{PHONE_UDP} SIP/2.0"));
                draft.header("Via", &via(&new_branch));
                draft.header("Max-Forwards", "70");
                draft.header(
                    "From",
                    &format!("\"Sender\" <{}>;tag=m{branch}", dialog.server_uri),
                );
                draft.header("To", &format!("<sip:{user}@127.0.0.1>"));
                draft.header("Call-ID", &format!("out{branch}@127.0.0.1"));
                draft.header("CSeq", &format!("1 {method}"));
                match template {
                    Template::Message => {
                        draft.header("Content-Type", "text/plain;charset=UTF-8");
                        draft.body = "Hello from the fuzzer \u{1f41b}".as_bytes().to_vec();
                    }
                    Template::Subscribe => {
                        draft.header("Event", "presence");
                        draft.header("Expires", "600");
                        draft.header("Contact", &format!("<sip:1000@{}>", flow.remote));
                    }
                    Template::Register => {
                        draft.header("Contact", &format!("<sip:1000@{}>", flow.remote));
                        draft.header("Expires", "60");
                    }
                    _ => {}
                }
                draft
            }
        };
        let bytes = self.mutate(&mut draft, mutations);
        // The server's own state follows what it sent (new calls, CSeqs used).
        match (template, index) {
            (Template::Invite, None) => remember(&mut self.dialogs, dialog),
            (_, Some(i)) => {
                if let Some(slot) = self.dialogs.get_mut(i) {
                    slot.server_cseq = dialog.server_cseq;
                    slot.sdp_version = dialog.sdp_version;
                }
            }
            _ => {}
        }
        self.deliver(flow, bytes, chunking);
    }

    /// Applies the mutations to a draft and prints it (byte-level ones last).
    fn mutate(&mut self, draft: &mut Draft, mutations: &[Mutation]) -> Vec<u8> {
        let header_name = |index: &u8| {
            HEADERS
                .get(usize::from(*index) % HEADERS.len())
                .copied()
                .unwrap_or("X-Fuzz")
        };
        let mut compact = false;
        for m in mutations {
            match m {
                Mutation::SetHeader { header, value } => {
                    draft.set(header_name(header), value.clone());
                }
                Mutation::RemoveHeader(header) => {
                    let name = header_name(header);
                    draft.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                }
                Mutation::DuplicateHeader(header) => {
                    let name = header_name(header);
                    if let Some(line) = draft
                        .headers
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case(name))
                        .cloned()
                    {
                        draft.headers.push(line);
                    }
                }
                Mutation::Tag { to, choice } => {
                    let name = if *to { "To" } else { "From" };
                    let known: Vec<String> = self
                        .dialogs
                        .iter()
                        .flat_map(|dialog| {
                            [Some(dialog.server_tag.clone()), dialog.phone_tag.clone()]
                        })
                        .flatten()
                        .collect();
                    let tag = match usize::from(*choice) % (known.len() + 3) {
                        0 => None,
                        1 => Some(String::new()),
                        2 => Some(format!("new{}", self.next())),
                        i => known.get(i - 3).cloned(),
                    };
                    draft.set_tag(name, tag.as_deref());
                }
                Mutation::CallId(pick) => {
                    let call_id = match self.pick_dialog(*pick) {
                        Some(i) => self
                            .dialogs
                            .get(i)
                            .map(|dialog| dialog.call_id.clone())
                            .unwrap_or_default(),
                        None => format!("other{}", self.next()),
                    };
                    draft.set("Call-ID", call_id.into_bytes());
                }
                Mutation::CSeqShift(delta) => {
                    if let Some(cseq) = draft.get("CSeq") {
                        let mut parts = cseq.splitn(2, ' ');
                        let seq: u32 = parts.next().and_then(|s| s.parse().ok()).unwrap_or(1);
                        let method = parts.next().unwrap_or("INVITE").to_string();
                        let seq = seq.wrapping_add_signed(i32::from(*delta as i8) * 1000);
                        draft.set("CSeq", format!("{seq} {method}").into_bytes());
                    }
                }
                Mutation::CSeqMethod(pick) => {
                    const METHODS: [&str; 8] = [
                        "INVITE", "ACK", "BYE", "CANCEL", "NOTIFY", "PRACK", "FOO", "",
                    ];
                    if let Some(cseq) = draft.get("CSeq") {
                        let seq = cseq.split(' ').next().unwrap_or("1").to_string();
                        let method = METHODS
                            .get(usize::from(*pick) % METHODS.len())
                            .copied()
                            .unwrap_or("");
                        draft.set("CSeq", format!("{seq} {method}").into_bytes());
                    }
                }
                Mutation::Sdp(variant) => {
                    draft.body = sdp_offer(*variant, 2);
                    draft.set("Content-Type", b"application/sdp".to_vec());
                }
                Mutation::Body(bytes) => draft.body = bytes.clone(),
                Mutation::ContentLengthShift(delta) => {
                    draft.length_shift = i64::from(*delta as i8);
                }
                Mutation::Compact => compact = true,
                Mutation::FlipByte { .. } | Mutation::Truncate(_) => {}
            }
        }
        let mut bytes = draft.print(compact);
        for m in mutations {
            match m {
                Mutation::FlipByte { at, value } => {
                    let len = bytes.len();
                    if let Some(b) = bytes.get_mut(usize::from(*at) % len.max(1)) {
                        *b = *value;
                    }
                }
                Mutation::Truncate(len) => {
                    let keep = usize::from(*len) % (bytes.len() + 1);
                    bytes.truncate(keep);
                }
                _ => {}
            }
        }
        bytes
    }

    // ----- network and app --------------------------------------------------------------

    fn network(&mut self, event: NetworkEvent) {
        let bob = Flow::new(Transport::Tcp, SERVER);
        let stranger = Flow::new(Transport::Tcp, STRANGER);
        match event {
            NetworkEvent::CloseTcp | NetworkEvent::BreakTcp => {
                self.up.remove(&bob);
                let error = (event == NetworkEvent::BreakTcp).then(|| "reset by peer".into());
                self.run(Input::Closed { flow: bob, error });
            }
            NetworkEvent::FailConnects(n) => self.fail_connects = n % 4,
            NetworkEvent::FailBinds(n) => self.fail_binds = n % 4,
            NetworkEvent::CloseStranger => {
                self.run(Input::Closed {
                    flow: stranger,
                    error: None,
                });
            }
            NetworkEvent::ConnectedUnasked => {
                self.run(Input::Connected {
                    flow: stranger,
                    local: SocketAddr::new(PHONE_UDP.ip(), 39_999),
                });
            }
        }
    }

    fn app(&mut self, command: AppCommand) {
        let command = match command {
            AppCommand::Hangup(c) => Command::Hangup(self.pick_call(c)),
            AppCommand::Hold(c, on_hold) => Command::Hold {
                call: self.pick_call(c),
                on_hold,
            },
            AppCommand::Dtmf(c, digits) => Command::Dtmf {
                call: self.pick_call(c),
                digits: String::from_utf8_lossy(&digits).into_owned(),
            },
            AppCommand::Answer(c) => Command::Answer {
                call: self.pick_call(c),
                media: None,
            },
            AppCommand::Reject(c, s) => Command::Reject {
                call: self.pick_call(c),
                status: STATUSES
                    .get(usize::from(s) % STATUSES.len())
                    .copied()
                    .unwrap_or(486),
            },
            AppCommand::Mute(c, muted) => Command::Mute {
                call: self.pick_call(c),
                muted,
            },
            AppCommand::Push(kind, raw) => Command::Push(self.push_payload(kind, raw)),
            AppCommand::DeclinePushReport(r) => {
                let i = usize::from(r) % (self.reports.len() + 1);
                match self.reports.get(i) {
                    Some(report) => Command::DeclinePushReport(*report),
                    None => Command::DeclinePushReport(ReportId::for_call_id("nobody")),
                }
            }
            AppCommand::Dial(a, t) => {
                // An app places calls one by one; the phone's cap is for incoming calls.
                if self.phone.call_count() >= 4 {
                    return;
                }
                const TARGETS: [&str; 6] = [
                    "carol",
                    "sip:dave@127.0.0.1",
                    "+49 30 1234",
                    "sips:eve@127.0.0.1;transport=tls",
                    "tel:+123",
                    " ",
                ];
                Command::Dial {
                    account: self.account(a),
                    target: TARGETS
                        .get(usize::from(t) % TARGETS.len())
                        .copied()
                        .unwrap_or("carol")
                        .to_string(),
                    media: None,
                    report_id: None,
                }
            }
            AppCommand::SendMessage(a, text) => Command::SendMessage {
                account: self.account(a),
                target: "carol".into(),
                text: String::from_utf8_lossy(&text).into_owned(),
            },
            AppCommand::Register(a) => Command::Register(self.account(a)),
            AppCommand::Unregister(a) => Command::Unregister(self.account(a)),
            AppCommand::Foreground(on) => Command::SetForeground(on),
            AppCommand::ContactParams(a, push) => Command::SetContactParams(
                self.account(a),
                if push {
                    vec![
                        ("pn-provider".into(), Some("apns".into())),
                        ("pn-prid".into(), Some("00fc13adff78512".into())),
                        ("pn-param".into(), Some("ABCD1234.com.example.voip".into())),
                    ]
                } else {
                    Vec::new()
                },
            ),
            AppCommand::RemoveAccount(a) => Command::RemoveAccount(self.account(a)),
        };
        let _ = self.command(command);
    }

    fn push_payload(&mut self, kind: u8, raw: Vec<u8>) -> Vec<u8> {
        let known = |i: u8| {
            self.sip_call_ids
                .get(usize::from(i) % self.sip_call_ids.len().max(1))
                .cloned()
                .unwrap_or_else(|| "none@127.0.0.1".into())
        };
        match kind % 4 {
            0 => format!(
                "{{\"type\":\"incoming_call\",\"call_id\":\"{}\",\"from\":\"sip:1000@127.0.0.1\",\
                 \"from_name\":\"Caller\"}}",
                known(kind / 4)
            )
            .into_bytes(),
            1 => format!(
                "{{\"type\":\"incoming_call\",\"call_id\":\"push{}@127.0.0.1\",\
                 \"from\":\"sip:2000@127.0.0.1\",\"sent_at\":1700000000000}}",
                self.next()
            )
            .into_bytes(),
            2 => format!(
                "{{\"type\":\"cancel\",\"call_id\":\"{}\",\"reason\":\"answered_elsewhere\"}}",
                known(kind / 4)
            )
            .into_bytes(),
            _ => raw,
        }
    }
}

/// Property: the bounds of [`PhoneHarness::check_bounds`] for these counts, given `recent`
/// messages in the window.
pub fn check_bounds(calls: usize, transactions: usize, recent: usize) {
    let call_bound = CALL_BASE + recent;
    assert!(
        calls <= call_bound,
        "property `calls bounded`: call_count() = {calls} > {call_bound} ({CALL_BASE} + \
         {recent} messages in the last {WINDOW:?}): ended calls are not released"
    );
    let transaction_bound = TRANSACTION_BASE + TRANSACTIONS_PER_CALL * calls + recent;
    assert!(
        transactions <= transaction_bound,
        "property `transactions bounded`: transaction_count() = {transactions} > \
         {transaction_bound} ({TRANSACTION_BASE} + {TRANSACTIONS_PER_CALL} x {calls} calls + \
         {recent} messages in the last {WINDOW:?}): transactions outlive their messages"
    );
}

/// A response to a request of the phone, with a To tag when given (and none yet).
fn response_to(request: &Request, status: u16, tag: Option<&str>) -> Response {
    let mut response = Response::to_request(request, status);
    if let Some(tag) = tag
        && response.headers.to().is_ok_and(|to| to.tag().is_none())
        && let Some(to) = response.headers.get(&HeaderName::To).map(str::to_string)
    {
        response
            .headers
            .set(HeaderName::To, format!("{to};tag={tag}"));
    }
    response
}

/// An in-dialog request from the server: From the server with its tag, To the phone with
/// its tag, to the phone's Contact.
fn in_dialog_draft(dialog: &KnownDialog, method: &str, cseq: u32, branch: u64) -> Draft {
    let target = dialog
        .phone_target
        .clone()
        .unwrap_or_else(|| dialog.phone_uri.clone());
    let mut draft = Draft::new(format!("{method} {target} SIP/2.0"));
    draft.header(
        "Via",
        &format!(
            "SIP/2.0/{} {};branch=z9hG4bKdlg{branch};rport",
            dialog.flow.transport.via_name(),
            dialog.flow.remote
        ),
    );
    draft.header("Max-Forwards", "70");
    draft.header(
        "From",
        &format!("<{}>;tag={}", dialog.server_uri, dialog.server_tag),
    );
    let to = match &dialog.phone_tag {
        Some(tag) => format!("<{}>;tag={tag}", dialog.phone_uri),
        None => format!("<{}>", dialog.phone_uri),
    };
    draft.header("To", &to);
    draft.header("Call-ID", &dialog.call_id);
    draft.header("CSeq", &format!("{cseq} {method}"));
    draft
}

/// Runs one fuzz input and checks every property (the `phone` target).
pub fn check_phone(data: &[u8]) {
    let _ = PhoneHarness::run_input(data);
}

/// Seed inputs for the `phone` target, by name: each drives the set-up phone somewhere
/// (raw REGISTER 200s built from the phone's own request, the live dialogs' INVITE, ACK,
/// BYE and CANCEL, NOTIFY, MESSAGE, commands, time, reconnection, garbage).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let template =
        |template: Template, route: Route, dialog: u8, mutations: Vec<Mutation>| Op::Template {
            template,
            route,
            dialog,
            mutations,
            chunking: 3,
        };
    let mut seeds: Vec<(&'static str, Vec<Op>)> = vec![
        (
            "invite_new_call",
            vec![
                template(Template::Invite, Route::Udp(Peer::Server), 0, vec![]),
                Op::App(AppCommand::Answer(3)),
                Op::Advance {
                    scale: 1,
                    amount: 5,
                },
            ],
        ),
        (
            "invite_stranger",
            vec![
                template(Template::Invite, Route::Udp(Peer::Stranger), 0, vec![]),
                template(Template::Invite, Route::Tcp(Peer::Stranger), 0, vec![]),
                template(
                    Template::Options,
                    Route::Udp(Peer::ServerOtherPort),
                    0,
                    vec![],
                ),
            ],
        ),
        (
            "ack_bye_live_dialogs",
            vec![
                template(Template::Ack, Route::Natural, 1, vec![]),
                template(Template::Bye, Route::Natural, 1, vec![]),
                template(Template::Bye, Route::Natural, 2, vec![]),
            ],
        ),
        (
            "cancel_ringing",
            vec![template(Template::Cancel, Route::Natural, 3, vec![])],
        ),
        (
            "reinvite_hold",
            vec![
                template(
                    Template::ReInvite,
                    Route::Natural,
                    1,
                    vec![Mutation::Sdp(1)],
                ),
                template(
                    Template::ReInvite,
                    Route::Natural,
                    1,
                    vec![Mutation::Sdp(0)],
                ),
                template(Template::Update, Route::Natural, 2, vec![]),
            ],
        ),
        (
            "notify_message",
            vec![
                template(Template::Notify, Route::Natural, 0, vec![]),
                template(Template::Message, Route::Udp(Peer::Server), 0, vec![]),
                template(Template::Message, Route::Tcp(Peer::Server), 0, vec![]),
                template(Template::Info, Route::Natural, 1, vec![]),
            ],
        ),
        (
            "mutated_headers",
            vec![
                template(
                    Template::Invite,
                    Route::Udp(Peer::Server),
                    0,
                    vec![
                        Mutation::Compact,
                        Mutation::SetHeader {
                            header: 9,
                            value: b"100rel, timer".to_vec(),
                        },
                        Mutation::ContentLengthShift(0xf0),
                    ],
                ),
                template(
                    Template::Bye,
                    Route::Natural,
                    2,
                    vec![
                        Mutation::Tag {
                            to: true,
                            choice: 2,
                        },
                        Mutation::CSeqShift(0x80),
                    ],
                ),
            ],
        ),
        (
            "commands",
            vec![
                Op::App(AppCommand::Hold(1, true)),
                Op::App(AppCommand::Dtmf(1, b"123#".to_vec())),
                Op::App(AppCommand::Mute(2, true)),
                Op::App(AppCommand::Hold(1, false)),
                Op::App(AppCommand::Push(0, vec![])),
                Op::App(AppCommand::DeclinePushReport(0)),
                Op::App(AppCommand::SendMessage(0, b"hi".to_vec())),
                Op::App(AppCommand::Hangup(0)),
                Op::App(AppCommand::Reject(3, 23)),
            ],
        ),
        (
            "time_and_reconnect",
            vec![
                Op::Advance {
                    scale: 1,
                    amount: 200,
                },
                Op::Network(NetworkEvent::CloseTcp),
                Op::Server(ServerMode::Challenge),
                Op::Advance {
                    scale: 3,
                    amount: 0,
                },
                Op::Network(NetworkEvent::FailConnects(2)),
                Op::Network(NetworkEvent::BreakTcp),
                Op::Advance {
                    scale: 2,
                    amount: 10,
                },
            ],
        ),
        (
            "silent_server",
            vec![
                Op::Server(ServerMode::Silent),
                Op::App(AppCommand::Dial(0, 1)),
                Op::App(AppCommand::Register(1)),
                Op::Reply {
                    request: 0xff,
                    status: 1,
                    flags: 3,
                    mutations: vec![],
                },
                Op::Advance {
                    scale: 2,
                    amount: 2,
                },
            ],
        ),
        (
            "garbage",
            vec![
                Op::Datagram {
                    peer: Peer::Server,
                    bytes: b"SIP/2.0 200 OK\r\nVia: \r\n\r\n\x00\xff garbage".to_vec(),
                },
                Op::Stream {
                    peer: Peer::Server,
                    bytes: b"\r\n\r\nINVITE sip:bob SIP/2.0\r\nContent-Length: 99999999\r\n\r\n"
                        .to_vec(),
                    chunking: 1,
                },
                Op::Datagram {
                    peer: Peer::Stranger,
                    bytes: (0u8..=255).collect(),
                },
            ],
        ),
    ];

    // Raw messages the fuzzer can mutate byte by byte: built from what the set-up phone
    // (seeded, so the same in every run) sends and knows.
    let mut raw = PhoneHarness::new();
    raw.apply(Op::Server(ServerMode::Silent));
    // Only the REGISTERs these commands send (not the set-up's, already answered).
    raw.requests.clear();
    raw.apply(Op::App(AppCommand::Register(0)));
    raw.apply(Op::App(AppCommand::Register(1)));
    let mut register_ops = vec![
        Op::Server(ServerMode::Silent),
        Op::App(AppCommand::Register(0)),
        Op::App(AppCommand::Register(1)),
    ];
    for (flow, request) in raw
        .requests
        .iter()
        .filter(|(_, r)| r.method == Method::Register)
    {
        let mut ok = response_to(request, 200, Some("reg"));
        if let Some(contact) = request.headers.get(&HeaderName::Contact) {
            ok.headers
                .push(HeaderName::Contact, format!("{contact};expires=3600"));
        }
        let bytes = Message::Response(ok).to_bytes();
        register_ops.push(if flow.reliable() {
            Op::Stream {
                peer: Peer::Server,
                bytes,
                chunking: 0,
            }
        } else {
            Op::Datagram {
                peer: Peer::Server,
                bytes,
            }
        });
    }
    seeds.push(("register_200_raw", register_ops));

    let mut dialog_ops = Vec::new();
    let fresh = PhoneHarness::new();
    for (i, dialog) in fresh.dialogs.iter().enumerate() {
        let mut bye = in_dialog_draft(dialog, "BYE", dialog.server_cseq + 1, 7000 + i as u64);
        bye.header("Reason", "Q.850;cause=16");
        let bytes = bye.print(false);
        dialog_ops.push(if dialog.flow.reliable() {
            Op::Stream {
                peer: Peer::Server,
                bytes,
                chunking: 5,
            }
        } else {
            Op::Datagram {
                peer: Peer::Server,
                bytes,
            }
        });
    }
    seeds.push(("bye_raw", dialog_ops));

    seeds
        .into_iter()
        .map(|(name, ops)| (name, encode_ops(&ops)))
        .collect()
}

/// A small deterministic random source (xorshift64*) for [`pseudo_random_input`]: the same
/// seed gives the same input on every machine, without the fuzzer.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn byte(&mut self) -> u8 {
        (self.next() >> 32) as u8
    }

    fn below(&mut self, n: u64) -> u64 {
        (self.next() >> 16) % n.max(1)
    }

    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.byte()).collect()
    }

    fn mutations(&mut self) -> Vec<Mutation> {
        let count = match self.below(8) {
            0..=3 => 0,
            4..=5 => 1,
            6 => 2,
            _ => 4,
        };
        (0..count)
            .map(|_| {
                // Decoding random bytes gives every kind of mutation with random fields.
                let raw: Vec<u8> = (0..80).map(|_| self.byte()).collect();
                let mut small = raw.clone();
                // Keep values short: the length field is bytes 2..4 of a SetHeader/Body.
                if let Some(b) = small.get_mut(3) {
                    *b = 0;
                }
                Mutation::decode(&mut Reader { rest: &small })
            })
            .collect()
    }
}

/// A pseudo-random input for the `phone` target, the same for the same seed: mostly
/// well-formed operations (templates, replies, commands, time, network changes) with
/// random fields and mutations, sometimes raw random bytes, sometimes a seed with bytes
/// changed. The stable smoke test runs thousands of these.
pub fn pseudo_random_input(seed: u64) -> Vec<u8> {
    let mut rng = Xorshift(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    match rng.below(10) {
        0 => return rng.bytes(400),
        1 => {
            // Seeds take two set-ups to make: made once per process.
            static SEEDS: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
            let seeds = SEEDS.get_or_init(seeds);
            let pick = rng.below(seeds.len() as u64) as usize;
            let mut input = seeds.get(pick).map(|(_, s)| s.clone()).unwrap_or_default();
            for _ in 0..=rng.below(8) {
                let len = input.len() as u64;
                let at = rng.below(len) as usize;
                let value = rng.byte();
                if let Some(b) = input.get_mut(at) {
                    *b = value;
                }
            }
            return input;
        }
        _ => {}
    }
    let count = 1 + rng.below(24);
    let mut ops = Vec::new();
    for _ in 0..count {
        let op = match rng.below(100) {
            0..=34 => Op::Template {
                template: Template::ALL
                    .get(rng.below(Template::ALL.len() as u64) as usize)
                    .copied()
                    .unwrap_or(Template::Bye),
                route: Route::decode(if rng.below(2) == 0 { 0 } else { rng.byte() }),
                dialog: rng.byte(),
                mutations: rng.mutations(),
                chunking: rng.byte(),
            },
            35..=49 => Op::App(AppCommand::decode(&mut Reader {
                rest: &[rng.byte(), rng.byte(), rng.byte(), rng.byte() % 16, 0, 0],
            })),
            50..=61 => Op::Advance {
                scale: match rng.below(10) {
                    0..=3 => 0,
                    4..=7 => 1,
                    8 => 2,
                    _ => 3,
                },
                amount: rng.byte(),
            },
            62..=71 => Op::Reply {
                request: rng.byte(),
                status: rng.byte(),
                flags: rng.byte(),
                mutations: rng.mutations(),
            },
            72..=76 => Op::Datagram {
                peer: Peer::ALL
                    .get(rng.below(3) as usize)
                    .copied()
                    .unwrap_or(Peer::Server),
                bytes: rng.bytes(200),
            },
            77..=81 => Op::Stream {
                peer: if rng.below(4) == 0 {
                    Peer::Stranger
                } else {
                    Peer::Server
                },
                bytes: rng.bytes(200),
                chunking: rng.byte(),
            },
            82..=86 => Op::Network(match rng.below(6) {
                0 => NetworkEvent::CloseTcp,
                1 => NetworkEvent::BreakTcp,
                2 => NetworkEvent::FailConnects(rng.byte()),
                3 => NetworkEvent::FailBinds(rng.byte()),
                4 => NetworkEvent::CloseStranger,
                _ => NetworkEvent::ConnectedUnasked,
            }),
            87..=91 => Op::Media {
                call: rng.byte(),
                event: rng.byte(),
            },
            _ => Op::Server(match rng.below(5) {
                0 => ServerMode::Answer,
                1 => ServerMode::Ring,
                2 => ServerMode::Silent,
                3 => ServerMode::Reject(rng.byte()),
                _ => ServerMode::Challenge,
            }),
        };
        ops.push(op);
    }
    encode_ops(&ops)
}
