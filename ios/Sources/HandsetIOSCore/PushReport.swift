import Foundation

/// Why a push report ended before (or without) its INVITE (the core's push `EndReason`).
public enum PushEndReason: Equatable, Sendable {
    case missed, timedOut, answeredElsewhere, declinedElsewhere, declinedByUser

    /// The `CXCallEndedReason` to report, or nil when CallKit ended it itself (the user
    /// declined on the ringing screen).
    public var callKitReason: CallEndedReasonKind? {
        switch self {
        case .missed: return .unanswered
        case .timedOut: return .failed
        case .answeredElsewhere: return .answeredElsewhere
        case .declinedElsewhere: return .declinedElsewhere
        case .declinedByUser: return nil
        }
    }
}

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
    public var callerName: String?
    public var video: Bool
    /// Already over (a cancel push): still reported, then ended at once.
    public var alreadyEnded: PushEndReason?

    public init(
        reportId: UUID, callId: String, callerNumber: String, callerName: String? = nil,
        video: Bool = false, alreadyEnded: PushEndReason? = nil
    ) {
        self.reportId = reportId
        self.callId = callId
        self.callerNumber = callerNumber
        self.callerName = callerName
        self.video = video
        self.alreadyEnded = alreadyEnded
    }
}

/// The core's push entry point. `HandsetIOS` makes the FFI phone conform once it exports
/// `handle_push`; until then an app can plug in its own.
public protocol PushCallHandling: AnyObject {
    /// Parses `payload` (the VoIP push's JSON) and returns at once, without network; the core
    /// re-registers in the background so the PBX can deliver the INVITE.
    func handlePush(payload: Data) throws -> PushCallReport
}

/// The PushKit side: what to report to CallKit for one VoIP push. iOS terminates an app that
/// returns from a VoIP push without reporting a call, so every push yields a report, even an
/// unreadable one (reported, then ended as failed).
public enum PushPlan {
    /// The handle shown for a push that could not be read.
    public static let unknownCaller = CallHandle(kind: .generic, value: "Unknown")

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
                actions.append(.ended(uuid: report.reportId, reason: ended.callKitReason ?? .remoteEnded))
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

public enum PushPayloadError: Error, Equatable {
    case nonStringKey, notJSON
}
