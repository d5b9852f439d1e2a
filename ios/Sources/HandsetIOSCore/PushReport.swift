import Foundation

/// What the core's `handle_push(payload)` returns: the incoming call to report to CallKit
/// inside the PushKit handler, before any network.
public struct PushCallReport: Equatable, Sendable {
    /// The CallKit UUID (derived from the Call-ID by the core: a push delivered again gives
    /// the same UUID).
    public var reportId: UUID
    /// Call-ID of the INVITE the PBX will send.
    public var callId: String
    /// Number or user to show; empty when only a cancel was seen.
    public var callerNumber: String
    /// The caller's name to show, if known.
    public var callerName: String?
    /// The call offers video.
    public var video: Bool
    /// Already over (a cancel push), and why: still reported, then ended at once.
    public var alreadyEnded: CoreEndReason?

    /// A push report.
    public init(
        reportId: UUID, callId: String, callerNumber: String, callerName: String? = nil,
        video: Bool = false, alreadyEnded: CoreEndReason? = nil
    ) {
        self.reportId = reportId
        self.callId = callId
        self.callerNumber = callerNumber
        self.callerName = callerName
        self.video = video
        self.alreadyEnded = alreadyEnded
    }
}

/// The core's push entry points: `HandsetIOS` makes the FFI's `HandsetPhone` conform (its
/// `handle_push` and `Account.refresh_push_token`); tests and apps may plug in their own.
public protocol PushCallHandling: AnyObject {
    /// Parses `payload` (the VoIP push's JSON) and returns at once, without network; the core
    /// re-registers in the background so the PBX can deliver the INVITE.
    func handlePush(payload: Data) throws -> PushCallReport
    /// The push token changed: the accounts `accountIds` register again with the current
    /// token (or without push when there is none). Returns at once.
    func refreshPushToken(accountIds: [String])
}

/// Which accounts register with the VoIP push token, and which of them must register again
/// when PushKit's credentials change (`pushRegistry(_:didUpdate:for:)`, or the token is
/// invalidated). Thread-safe.
public final class PushAccounts: @unchecked Sendable {
    private let lock = NSLock()
    private var ids: Set<String> = []
    private var token: String?

    /// No push accounts, no token seen.
    public init() {}

    /// The ids of the accounts that use push.
    public var accountIds: Set<String> {
        lock.lock()
        defer { lock.unlock() }
        return ids
    }

    /// An account was added (or added again) with `push` on or off.
    public func added(accountId: String, push: Bool) {
        lock.lock()
        defer { lock.unlock() }
        if push { ids.insert(accountId) } else { ids.remove(accountId) }
    }

    /// An account was removed.
    public func removed(accountId: String) {
        lock.lock()
        defer { lock.unlock() }
        ids.remove(accountId)
    }

    /// PushKit reports `token` (nil: invalidated). Returns the push accounts to register
    /// again, sorted: all of them when the token differs from the last one seen (the first
    /// token of a launch counts: accounts added before it registered without push), none
    /// when PushKit repeats the same token.
    public func tokenChanged(to token: String?) -> [String] {
        lock.lock()
        defer { lock.unlock() }
        guard token != self.token else { return [] }
        self.token = token
        return ids.sorted()
    }
}

/// The PushKit side: what to report to CallKit for one VoIP push. iOS terminates an app that
/// returns from a VoIP push without reporting a call, so every push yields a report, even an
/// unreadable one (reported, then ended as failed).
public enum PushPlan {
    /// The handle shown for a push that could not be read.
    public static let unknownCaller = CallHandle(kind: .generic, value: "Unknown")

    /// The CallKit reports for one push's outcome: the report, then its end when the push
    /// already says the call is over; an unreadable push is reported and failed at once.
    public static func actions(
        for result: Result<PushCallReport, Error>, makeUUID: () -> UUID = UUID.init
    ) -> [CallKitAction] {
        switch result {
        case .success(let report):
            let handle =
                report.callerNumber.isEmpty ? unknownCaller : CallHandle.from(address: report.callerNumber)
            var actions: [CallKitAction] = [
                .reportIncoming(
                    uuid: report.reportId, handle: handle, displayName: report.callerName,
                    hasVideo: report.video)
            ]
            if let ended = report.alreadyEnded {
                actions.append(.ended(uuid: report.reportId, reason: CallKitCoordinator.reportEndedReason(ended)))
            }
            return actions
        case .failure:
            let uuid = makeUUID()
            return [
                .reportIncoming(uuid: uuid, handle: unknownCaller, displayName: nil, hasVideo: false),
                .ended(uuid: uuid, reason: .failed),
            ]
        }
    }

    /// The VoIP push's dictionary (`PKPushPayload.dictionaryPayload`) as the JSON the core
    /// parses. Values JSON cannot hold are an error (and so a failed report).
    public static func jsonPayload(_ dictionary: [AnyHashable: Any]) throws -> Data {
        var object: [String: Any] = [:]
        for (key, value) in dictionary {
            guard let key = key as? String else { throw PushPayloadError.nonStringKey }
            object[key] = value
        }
        guard JSONSerialization.isValidJSONObject(object) else { throw PushPayloadError.notJSON }
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
    }
}

/// Why a PushKit dictionary cannot become the core's JSON.
public enum PushPayloadError: Error, Equatable {
    /// A key is not a string.
    case nonStringKey
    /// A value JSON cannot hold.
    case notJSON
}
