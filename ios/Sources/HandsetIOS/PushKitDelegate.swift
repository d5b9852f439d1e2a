#if canImport(PushKit) && canImport(CallKit) && os(iOS)
    import Foundation
    import Handset
    import HandsetIOSCore
    import PushKit

    /// VoIP pushes → the core's push report → CallKit, all inside the PushKit handler: iOS
    /// terminates an app that returns from a VoIP push without reporting a call, so the report
    /// is issued before the handler returns, without waiting for the network (the core
    /// re-registers in the background so the PBX can send the INVITE).
    public final class HandsetPushKitDelegate: NSObject, PKPushRegistryDelegate {
        private let registry: PKPushRegistry
        private let handler: PushCallHandling
        private let callKit: HandsetCallKitProvider
        private let lock = NSLock()
        private var currentToken: PushToken?

        /// The token as the phone's `PushTokenProvider` gives it to the core.
        public var token: PushToken? {
            lock.lock()
            defer { lock.unlock() }
            return currentToken
        }

        /// Called with each new token (nil when invalidated): re-register so the PBX has it.
        public var onTokenChange: ((PushToken?) -> Void)?

        public init(handler: PushCallHandling, callKit: HandsetCallKitProvider, queue: DispatchQueue = .main) {
            self.handler = handler
            self.callKit = callKit
            registry = PKPushRegistry(queue: queue)
            super.init()
            registry.delegate = self
            registry.desiredPushTypes = [.voIP]
        }

        public func pushRegistry(
            _ registry: PKPushRegistry, didUpdate pushCredentials: PKPushCredentials, for type: PKPushType
        ) {
            guard type == .voIP else { return }
            let hex = pushCredentials.token.map { String(format: "%02x", $0) }.joined()
            let token = PushToken(service: .apnsVoip, token: hex)
            lock.lock()
            currentToken = token
            lock.unlock()
            onTokenChange?(token)
        }

        public func pushRegistry(_ registry: PKPushRegistry, didInvalidatePushTokenFor type: PKPushType) {
            guard type == .voIP else { return }
            lock.lock()
            currentToken = nil
            lock.unlock()
            onTokenChange?(nil)
        }

        public func pushRegistry(
            _ registry: PKPushRegistry, didReceiveIncomingPushWith payload: PKPushPayload,
            for type: PKPushType, completion: @escaping () -> Void
        ) {
            guard type == .voIP else {
                completion()
                return
            }
            let result = Result {
                try handler.handlePush(payload: try PushPlan.jsonPayload(payload.dictionaryPayload))
            }
            // Even an unreadable push is reported (and ended as failed): see PushPlan.
            callKit.reportPush(PushPlan.actions(for: result), completion: completion)
        }
    }

    /// The phone's `PushTokenProvider`, fed by the PushKit delegate.
    public final class PushKitTokenProvider: PushTokenProvider, @unchecked Sendable {
        public weak var delegate: HandsetPushKitDelegate?
        public init() {}
        public func pushToken() -> PushToken? { delegate?.token }
    }
#endif
