import Foundation

// The core's call model as the iOS glue needs it, free of the FFI types so the decisions below
// build and are tested on Linux without libhandset_ffi. HandsetIOS converts the generated
// `CallState` / `EndReason` into these (FfiConversions.swift).

/// Who started a call.
public enum CoreCallDirection: Equatable, Sendable {
    /// The peer called us.
    case incoming
    /// We called.
    case outgoing
}

/// Why a call, or a push report that never became a call, ended: the core's one `EndReason`,
/// case for case. The core has classified every SIP status, timeout and push outcome into it;
/// the glue maps it (with the call's direction) to CallKit and never sees a SIP status.
public enum CoreEndReason: Equatable, Sendable {
    /// The user hung up an answered call here.
    case localHangup
    /// The other party hung up an answered call.
    case remoteHangup
    /// The callee was busy; or an incoming call was refused because the phone was full.
    case busy
    /// The callee refused our call, or the user refused an incoming call (or its push report).
    case declined
    /// Nobody answered: the callee's side gave up, an incoming call rang out, or a pushed
    /// call's INVITE never came.
    case unanswered
    /// Cancelled before it was answered: by us (outgoing), or by the caller (incoming).
    case cancelled
    /// Another device of the user answered the incoming call.
    case answeredElsewhere
    /// Another device of the user declined the incoming call.
    case declinedElsewhere
    /// The call failed (a refusal the core classed as a failure, authentication, protocol,
    /// media).
    case failed
    /// The network lost the call.
    case networkLost
}

/// A call's state (the core's `CallState`).
public enum CoreCallState: Equatable, Sendable {
    /// Ringing here: answer or reject it.
    case incoming
    /// Our INVITE is on its way.
    case calling
    /// The callee is being alerted.
    case ringing
    /// Early media flows.
    case earlyMedia
    /// Answered (and held or not).
    case active(onHold: Bool)
    /// Over, and why.
    case ended(CoreEndReason)

    /// Whether the call is over.
    public var isEnded: Bool {
        if case .ended = self { return true }
        return false
    }
}

/// One item of the core's call subscription.
public struct CoreCallEvent: Equatable, Sendable {
    /// The core's call id.
    public var callId: UInt64
    /// Who called.
    public var direction: CoreCallDirection
    /// The dialled target or the caller's address (`sip:`/`sips:`/`tel:` URI or a number).
    public var remote: String
    /// The caller's name to show, if known.
    public var displayName: String?
    /// The call offers video.
    public var hasVideo: Bool
    /// The call's state after this update.
    public var state: CoreCallState
    /// The call's CallKit UUID, as the core gave it (`Call.reportId`): for a call a VoIP push
    /// announced, that push report's id, so CallKit sees one call, not two.
    public var reportId: UUID

    /// An item of the call subscription.
    public init(
        callId: UInt64, direction: CoreCallDirection, remote: String, displayName: String? = nil,
        hasVideo: Bool = false, state: CoreCallState, reportId: UUID
    ) {
        self.callId = callId
        self.direction = direction
        self.remote = remote
        self.displayName = displayName
        self.hasVideo = hasVideo
        self.state = state
        self.reportId = reportId
    }
}

/// What a CallKit `CXHandle` shows: its type and value.
public struct CallHandle: Equatable, Sendable {
    /// `CXHandle.HandleType`.
    public enum Kind: Equatable, Sendable {
        /// A phone number (matched against the user's contacts and recents).
        case phoneNumber
        /// Anything else, e.g. a SIP address.
        case generic
    }

    /// The handle's type.
    public var kind: Kind
    /// What it shows.
    public var value: String

    /// A handle of `kind` showing `value`.
    public init(kind: Kind, value: String) {
        self.kind = kind
        self.value = value
    }

    /// The handle of a SIP/tel address: a number (`sip:+4930123@pbx;user=phone`, `tel:+49-30`,
    /// `"Alice" <sip:0301234@pbx>`) becomes a phone number handle of its user part, so the
    /// phone app's recents and contacts match it; anything else (`sip:alice@example.com`) a
    /// generic handle without the scheme and parameters.
    public static func from(address: String) -> CallHandle {
        var s = address.trimmingCharacters(in: .whitespaces)
        if let open = s.firstIndex(of: "<"), let close = s[open...].firstIndex(of: ">") {
            s = String(s[s.index(after: open)..<close])
        }
        for scheme in ["sips:", "sip:", "tel:"] where s.lowercased().hasPrefix(scheme) {
            s = String(s.dropFirst(scheme.count))
            break
        }
        if let cut = s.firstIndex(where: { $0 == ";" || $0 == "?" }) {
            s = String(s[..<cut])
        }
        let user = s.split(separator: "@", maxSplits: 1).first.map(String.init) ?? s
        let dialChars = CharacterSet(charactersIn: "+0123456789-(). ")
        let digits = user.unicodeScalars.filter { CharacterSet.decimalDigits.contains($0) }
        if !digits.isEmpty, user.unicodeScalars.allSatisfy({ dialChars.contains($0) }) {
            return CallHandle(kind: .phoneNumber, value: user)
        }
        return CallHandle(kind: .generic, value: s.isEmpty ? address : s)
    }
}
