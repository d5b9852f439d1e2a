#if canImport(PushKit) && canImport(CallKit) && os(iOS)
    import Foundation
    import Handset
    import HandsetIOSCore
    import PushKit

    /// VoIP pushes → the core's push report → CallKit, all inside the PushKit handler: iOS
    /// terminates an app that returns from a VoIP push without reporting a call, so the report
    /// is issued before the handler returns, without waiting for the network (the core
    /// re-registers in the background so the PBX can send the INVITE). New or invalidated
    /// credentials make every push account register again (`Account.refreshPushToken`): add
    /// accounts with `phone.addAccount(config:pushAccounts:)` and this delegate's
    /// `pushAccounts`.
    public final class HandsetPushKitDelegate: NSObject, PKPushRegistryDelegate {
        private let registry: PKPushRegistry
        private let handler: PushCallHandling
        private let callKit: HandsetCallKitProvider
        private let pushParam: String
        private let lock = NSLock()
        private var currentToken: PushToken?

        /// The accounts that use push: they register again when the credentials change.
        public let pushAccounts: PushAccounts

        /// The APNs `pn-param` of this app's VoIP pushes: `TEAMID.<bundle id>.voip`.
        public static func apnsParam(teamId: String, bundleId: String = Bundle.main.bundleIdentifier ?? "") -> String {
            "\(teamId).\(bundleId).voip"
        }

        /// The token as the phone's `PushTokenProvider` gives it to the core.
        public var token: PushToken? {
            lock.lock()
            defer { lock.unlock() }
            return currentToken
        }

        /// Called with each new token (nil when invalidated), after the push accounts were
        /// asked to register again.
        public var onTokenChange: ((PushToken?) -> Void)?

        /// Registers for VoIP pushes on `queue`; pushes go through `handler` (the phone) to
        /// `callKit`. `pushParam` is the RFC 8599 `pn-param` the PBX needs to address APNs:
        /// `TEAMID.topic`, see `apnsParam(teamId:)`. `pushAccounts` lists the accounts using
        /// push.
        public init(
            handler: PushCallHandling, callKit: HandsetCallKitProvider, pushParam: String,
            pushAccounts: PushAccounts = PushAccounts(), queue: DispatchQueue = .main
        ) {
            self.handler = handler
            self.callKit = callKit
            self.pushParam = pushParam
            self.pushAccounts = pushAccounts
            registry = PKPushRegistry(queue: queue)
            super.init()
            registry.delegate = self
            registry.desiredPushTypes = [.voIP]
        }

        /// PushKit gave a token: kept for the core (`token`); when it changed, every push
        /// account registers again with it; then `onTokenChange`.
        public func pushRegistry(
            _ registry: PKPushRegistry, didUpdate pushCredentials: PKPushCredentials, for type: PKPushType
        ) {
            guard type == .voIP else { return }
            let hex = pushCredentials.token.map { String(format: "%02x", $0) }.joined()
            let token = PushToken(service: .apns, token: hex, param: pushParam)
            lock.lock()
            currentToken = token
            lock.unlock()
            handler.refreshPushToken(accountIds: pushAccounts.tokenChanged(to: hex))
            onTokenChange?(token)
        }

        /// PushKit dropped the token: the push accounts register again without push.
        public func pushRegistry(_ registry: PKPushRegistry, didInvalidatePushTokenFor type: PKPushType) {
            guard type == .voIP else { return }
            lock.lock()
            currentToken = nil
            lock.unlock()
            handler.refreshPushToken(accountIds: pushAccounts.tokenChanged(to: nil))
            onTokenChange?(nil)
        }

        /// A VoIP push: reported to CallKit before this returns (see the type's doc).
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
        /// Where the token comes from; set it once the delegate exists.
        public weak var delegate: HandsetPushKitDelegate?
        /// A provider without a delegate yet (no token).
        public init() {}
        /// The delegate's current token, if any.
        public func pushToken() -> PushToken? { delegate?.token }
    }
#endif
