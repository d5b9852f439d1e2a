import Foundation
import Handset
import HandsetAsync
import HandsetIOSCore

// The generated FFI types → the glue's platform-neutral model. One table each; the compiler
// checks they stay exhaustive when the core adds a case.

extension CoreEndReason {
    public init(_ reason: EndReason) {
        switch reason {
        case .localHangup: self = .localHangup
        case .remoteHangup: self = .remoteHangup
        case .cancelled: self = .cancelled
        case .rejected(let status, _): self = .rejected(status: status)
        case .rejectedLocally(let status): self = .rejectedLocally(status: status)
        case .failed: self = .failed
        }
    }
}

extension CoreCallState {
    public init(_ state: CallState) {
        switch state {
        case .incoming: self = .incoming
        case .calling: self = .calling
        case .ringing: self = .ringing
        case .earlyMedia: self = .earlyMedia
        case .active(_, _, let onHold): self = .active(onHold: onHold)
        case .ended(let reason, _): self = .ended(CoreEndReason(reason))
        }
    }
}

extension CoreCallDirection {
    public init(_ direction: CallDirection) {
        switch direction {
        case .incoming: self = .incoming
        case .outgoing: self = .outgoing
        }
    }
}

extension CoreCallEvent {
    /// The glue's view of one item of the phone's call subscription.
    public init(_ event: CallEvent) {
        var displayName: String?
        if case .incoming(_, _, let name) = event.update { displayName = name }
        self.init(
            callId: event.call.id(), direction: CoreCallDirection(event.call.direction()),
            remote: event.call.remote(), displayName: displayName, hasVideo: false,
            state: CoreCallState(event.state),
            // The FFI does not say yet which push report an incoming call answers (the core's
            // PushWake binds them); until it does, push-reported calls get a second UUID.
            reportId: nil)
    }
}

extension CoreAudioRoute {
    public init(_ route: AudioRoute) {
        switch route {
        case .earpiece: self = .earpiece
        case .speaker: self = .speaker
        case .wiredHeadset: self = .wiredHeadset
        case .bluetooth: self = .bluetooth
        }
    }
}

extension AudioRoute {
    public init(_ route: CoreAudioRoute) {
        switch route {
        case .earpiece: self = .earpiece
        case .speaker: self = .speaker
        case .wiredHeadset: self = .wiredHeadset
        case .bluetooth: self = .bluetooth
        }
    }
}

extension CoreScreenState {
    public init(_ s: CallScreenState) {
        self.init(
            inCall: s.inCall, route: CoreAudioRoute(s.route), proximityNear: s.proximityNear,
            screenOff: s.screenOff)
    }
}

extension Contact {
    public init(_ c: ImportedContact) {
        self.init(id: c.id, displayName: c.displayName, phoneNumbers: c.phoneNumbers, sipAddresses: c.sipAddresses)
    }
}
