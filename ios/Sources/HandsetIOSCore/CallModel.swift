import Foundation

// The core's call model as the iOS glue needs it, free of the FFI types so the decisions below
// build and are tested on Linux without libhandset_ffi. HandsetIOS converts the generated
// `CallState` / `EndReason` into these (FfiConversions.swift).

/// Who started a call.
public enum CoreCallDirection: Equatable, Sendable {
    case incoming, outgoing
}

/// Why a call ended (the core's `EndReason`).
public enum CoreEndReason: Equatable, Sendable {
    case localHangup
    case remoteHangup
    /// Cancelled before it was answered, by us (outgoing) or by the caller (incoming).
    case cancelled
    /// The peer or a proxy refused our call.
    case rejected(status: UInt16)
    /// We refused the incoming call.
    case rejectedLocally(status: UInt16)
    case failed
}

/// A call's state (the core's `CallState`).
public enum CoreCallState: Equatable, Sendable {
    case incoming
    case calling
    case ringing
    case earlyMedia
    case active(onHold: Bool)
    case ended(CoreEndReason)

    public var isEnded: Bool {
        if case .ended = self { return true }
        return false
    }
}

/// One item of the core's call subscription.
public struct CoreCallEvent: Equatable, Sendable {
    public var callId: UInt64
    public var direction: CoreCallDirection
    /// The dialled target or the caller's address (`sip:`/`sips:`/`tel:` URI or a number).
    public var remote: String
    public var displayName: String?
    public var hasVideo: Bool
    public var state: CoreCallState
    /// The CallKit UUID the core gave the call, when it came in through a push report (the
    /// report's id), so CallKit sees one call, not two.
    public var reportId: UUID?

    public init(
        callId: UInt64, direction: CoreCallDirection, remote: String, displayName: String? = nil,
        hasVideo: Bool = false, state: CoreCallState, reportId: UUID? = nil
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
    public enum Kind: Equatable, Sendable {
        case phoneNumber, generic
    }

    public var kind: Kind
    public var value: String

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
