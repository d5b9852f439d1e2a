// iOS only: the provider delegate's audio-session callbacks take an AVAudioSession.
#if canImport(CallKit) && os(iOS)
    import AVFoundation
    import CallKit
    import Foundation
    import Handset
    import HandsetAsync
    import HandsetIOSCore

    extension CXCallEndedReason {
        init(_ kind: CallEndedReasonKind) {
            switch kind {
            case .failed: self = .failed
            case .remoteEnded: self = .remoteEnded
            case .unanswered: self = .unanswered
            case .answeredElsewhere: self = .answeredElsewhere
            case .declinedElsewhere: self = .declinedElsewhere
            }
        }
    }

    extension CXCallUpdate {
        convenience init(handle: CallHandle, displayName: String?, hasVideo: Bool) {
            self.init()
            remoteHandle = CXHandle(
                type: handle.kind == .phoneNumber ? .phoneNumber : .generic, value: handle.value)
            localizedCallerName = displayName
            self.hasVideo = hasVideo
        }
    }

    /// The CallKit side of the phone: reports the core's calls to CallKit under the core's
    /// report ids and performs CallKit's actions on the core. Media starts only in
    /// `provider(_:didActivate:)`. A push report the core ends before its INVITE
    /// (`PhoneEvent.pushReportEnded`) ends on CallKit with the mapped reason, and declining it
    /// on CallKit before its INVITE declines the report (`phone.declinePushReport`).
    ///
    /// Place outgoing calls with `startCall(account:target:)`: the core places the call, then
    /// a `CXStartCallAction` under its report id hands it to CallKit, which activates the
    /// audio session.
    public final class HandsetCallKitProvider: NSObject, CXProviderDelegate {
        /// The provider the calls are reported to.
        public let provider: CXProvider
        /// Requests the app's own call actions (`startCall`).
        public let controller = CXCallController()
        private let phone: HandsetPhone
        private let audio: GatedAudioDeviceFactory
        private let coordinator = CallKitCoordinator()
        /// The delegate queue; the coordinator is used only on it.
        private let queue = DispatchQueue(label: "dev.handset.callkit")
        private var callsTask: Task<Void, Never>?
        private var eventsTask: Task<Void, Never>?

        /// Audio only, one call at a time, phone-number and generic handles, calls in Recents.
        public static func defaultConfiguration() -> CXProviderConfiguration {
            let c = CXProviderConfiguration()
            c.supportsVideo = false
            c.maximumCallGroups = 1
            c.maximumCallsPerCallGroup = 1
            c.supportedHandleTypes = [.phoneNumber, .generic]
            c.includesCallsInRecents = true
            return c
        }

        /// Reports `phone`'s calls to a new `CXProvider` and starts `audio` when CallKit
        /// activates the session.
        public init(
            phone: HandsetPhone, audio: GatedAudioDeviceFactory,
            configuration: CXProviderConfiguration = HandsetCallKitProvider.defaultConfiguration()
        ) {
            self.phone = phone
            self.audio = audio
            provider = CXProvider(configuration: configuration)
            super.init()
            provider.setDelegate(self, queue: queue)
            let updates = phone.callUpdates()
            callsTask = Task { [weak self] in
                for await event in updates {
                    guard let self else { return }
                    guard let core = CoreCallEvent(event) else { continue }
                    self.queue.async { self.apply(self.coordinator.handle(core)) }
                }
            }
            let events = phone.phoneEvents()
            eventsTask = Task { [weak self] in
                for await event in events {
                    guard let self else { return }
                    guard case .pushReportEnded(let reportId, let reason) = event,
                        let uuid = UUID(uuidString: reportId)
                    else { continue }
                    let core = CoreEndReason(reason)
                    self.queue.async { self.apply(self.coordinator.pushReportEnded(uuid, reason: core)) }
                }
            }
        }

        deinit {
            callsTask?.cancel()
            eventsTask?.cancel()
        }

        /// Places a call and hands it to CallKit: the core places it (its report id is its
        /// CallKit UUID), then a `CXStartCallAction` under that UUID; if CallKit refuses (an
        /// emergency call, a call limit), the call is hung up. `completion` gets the call, or
        /// the error.
        public func startCall(
            account: Account, target: String, completion: ((Result<Call, Error>) -> Void)? = nil
        ) {
            Task { [weak self] in
                do {
                    let call = try await account.call(target: target, audio: .foreign, media: nil)
                    guard let self, let uuid = UUID(uuidString: call.reportId()) else {
                        try? await call.hangup()
                        completion?(.failure(HandsetError.Internal(message: "no CallKit id for the call")))
                        return
                    }
                    let handle = CallHandle.from(address: target)
                    let action = CXStartCallAction(
                        call: uuid,
                        handle: CXHandle(type: handle.kind == .phoneNumber ? .phoneNumber : .generic, value: handle.value))
                    // On the delegate queue: the coordinator knows the call before CallKit
                    // performs the action there.
                    self.queue.async {
                        self.coordinator.outgoingPlaced(callId: call.id(), uuid: uuid)
                        self.controller.request(CXTransaction(action: action)) { error in
                            if let error {
                                Task { try? await call.hangup() }
                                completion?(.failure(error))
                            } else {
                                completion?(.success(call))
                            }
                        }
                    }
                } catch {
                    completion?(.failure(error))
                }
            }
        }

        /// Reports a VoIP push's call. Call it inside the PushKit handler: `reportNewIncomingCall`
        /// is issued before this returns; `completion` (PushKit's) runs once CallKit answered.
        public func reportPush(_ actions: [CallKitAction], completion: @escaping () -> Void) {
            queue.sync { coordinator.pushReported(actions) }
            apply(actions, completion: completion)
        }

        /// Issues CallKit reports (any thread: CXProvider's report methods are thread-safe).
        func apply(_ actions: [CallKitAction], completion: (() -> Void)? = nil) {
            let group = DispatchGroup()
            for action in actions {
                switch action {
                case .reportIncoming(let uuid, let handle, let name, let video):
                    group.enter()
                    provider.reportNewIncomingCall(
                        with: uuid, update: CXCallUpdate(handle: handle, displayName: name, hasVideo: video)
                    ) { _ in
                        // An error (do-not-disturb, blocked, duplicate UUID) means CallKit
                        // will not ring; the core's call is left to time out or be cancelled.
                        group.leave()
                    }
                case .update(let uuid, let handle, let name):
                    provider.reportCall(with: uuid, updated: CXCallUpdate(handle: handle, displayName: name, hasVideo: false))
                case .outgoingStartedConnecting(let uuid):
                    provider.reportOutgoingCall(with: uuid, startedConnectingAt: nil)
                case .outgoingConnected(let uuid):
                    provider.reportOutgoingCall(with: uuid, connectedAt: nil)
                case .ended(let uuid, let reason):
                    provider.reportCall(with: uuid, endedAt: nil, reason: CXCallEndedReason(reason))
                }
            }
            if let completion { group.notify(queue: .main, execute: completion) }
        }

        /// Runs the core command of a CallKit action, then fulfills or fails it.
        private func run(_ userAction: CallKitUserAction, _ action: CXAction) {
            guard let command = coordinator.command(for: userAction) else {
                action.fail()
                return
            }
            perform(command, action)
        }

        /// Performs `command` on the core, then fulfills or fails `action`. A declined push
        /// report goes back to the coordinator: its INVITE may have arrived meanwhile.
        private func perform(_ command: CoreCommand, _ action: CXAction) {
            let phone = self.phone
            Task { [weak self] in
                do {
                    let done = try await CoreCommandRunner.perform(command, on: phone)
                    guard case .declinePushReport(let reportId) = command, let self else {
                        done ? action.fulfill() : action.fail()
                        return
                    }
                    self.queue.async {
                        switch self.coordinator.declineAnswered(reportId: reportId, wasWaiting: done) {
                        case .fulfill: action.fulfill()
                        case .run(let next): self.perform(next, action)
                        }
                    }
                } catch {
                    action.fail()
                }
            }
        }

        // MARK: CXProviderDelegate

        /// CallKit dropped every call: media stops and the core's calls are hung up.
        public func providerDidReset(_ provider: CXProvider) {
            audio.sessionDeactivated()
            let live = coordinator.liveCalls
            coordinator.reset()
            let phone = self.phone
            Task {
                for call in phone.calls() where live.contains(call.id()) {
                    try? await call.hangup()
                }
            }
        }

        /// CallKit takes the call `startCall(account:target:)` placed: it is reported from where
        /// it stands.
        public func provider(_ provider: CXProvider, perform action: CXStartCallAction) {
            guard let catchUp = coordinator.outgoingStarted(uuid: action.callUUID) else {
                action.fail()
                return
            }
            try? CallAudioSession.configure()
            action.fulfill()
            apply(catchUp)
        }

        /// Answers the core's call (media waits for `didActivate`).
        public func provider(_ provider: CXProvider, perform action: CXAnswerCallAction) {
            // Configure (not activate) the session now; CallKit activates it and then calls
            // didActivate, where the media starts.
            try? CallAudioSession.configure()
            run(.answer(action.callUUID), action)
        }

        /// Hangs up, or declines a ringing call (a push-reported one before its INVITE too).
        public func provider(_ provider: CXProvider, perform action: CXEndCallAction) {
            run(.end(action.callUUID), action)
        }

        /// Puts the call on hold or resumes it.
        public func provider(_ provider: CXProvider, perform action: CXSetHeldCallAction) {
            run(.setHeld(action.callUUID, action.isOnHold), action)
        }

        /// Sends DTMF digits.
        public func provider(_ provider: CXProvider, perform action: CXPlayDTMFCallAction) {
            run(.playDTMF(action.callUUID, action.digits), action)
        }

        /// Mutes or unmutes the microphone (`Call.setMuted`: the core sends silence).
        public func provider(_ provider: CXProvider, perform action: CXSetMutedCallAction) {
            run(.setMuted(action.callUUID, action.isMuted), action)
        }

        /// The session is active: waiting call media starts.
        public func provider(_ provider: CXProvider, didActivate audioSession: AVAudioSession) {
            audio.sessionActivated()
        }

        /// The session is gone: call media stops until the next activation.
        public func provider(_ provider: CXProvider, didDeactivate audioSession: AVAudioSession) {
            audio.sessionDeactivated()
        }
    }
#endif
