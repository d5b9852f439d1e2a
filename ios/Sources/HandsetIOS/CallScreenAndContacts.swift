import Foundation
import Handset
import HandsetIOSCore

#if canImport(UIKit) && os(iOS)
    import AVFoundation
    import UIKit

    /// The call screen on iOS: applies the core's decisions (`CallScreenDriver`) to
    /// `UIDevice.current.isProximityMonitoringEnabled` (`screenOffByProximity`) and
    /// `UIApplication.shared.isIdleTimerDisabled` (`keepScreenOn`), and reports the inputs iOS
    /// knows back to the core: proximity readings, device orientation, foreground/background
    /// and the audio route in use. The app reports the rest (`keypadShown`, `deviceLocked`) with
    /// `phone.updateCallScreen(input:)`, and applies `rotationAllowed`, `showInCallUi` and
    /// `showIncomingUi` itself from `onDecision` or `phone.callScreenUpdates()`.
    public final class CallScreenMonitor {
        private let driver = CallScreenDriver()
        private var observers: [NSObjectProtocol] = []
        private var generatingOrientation = false
        private weak var phone: HandsetPhone?

        /// A monitor that follows nothing yet.
        public init() {}

        /// Starts applying `phone`'s decisions and reporting the inputs; `onDecision` gets every
        /// decision (for rotation and the call UI).
        @MainActor
        public func start(phone: HandsetPhone, onDecision: (@MainActor (CoreScreenDecision) -> Void)? = nil) {
            stopObserving()
            self.phone = phone
            driver.start(
                phone: phone,
                apply: { effect in
                    switch effect {
                    case .proximityMonitoring(let on): UIDevice.current.isProximityMonitoringEnabled = on
                    case .idleTimerDisabled(let on): UIApplication.shared.isIdleTimerDisabled = on
                    case .proximityUnknown: break  // the driver tells the core itself
                    }
                }, onDecision: onDecision)
            let center = NotificationCenter.default
            func observe(_ name: Notification.Name, _ report: @escaping @MainActor () -> CallScreenInput?) {
                observers.append(
                    center.addObserver(forName: name, object: nil, queue: .main) { _ in
                        // Delivered on the main queue.
                        if let input = MainActor.assumeIsolated(report) { phone.updateCallScreen(input: input) }
                    })
            }
            observe(UIDevice.proximityStateDidChangeNotification) {
                .proximity(proximity: Proximity(near: UIDevice.current.proximityState))
            }
            observe(UIDevice.orientationDidChangeNotification) {
                Orientation(UIDevice.current.orientation).map { .orientation(orientation: $0) }
            }
            observe(UIApplication.willEnterForegroundNotification) { .foreground(foreground: true) }
            observe(UIApplication.didEnterBackgroundNotification) { .foreground(foreground: false) }
            observe(AVAudioSession.routeChangeNotification) {
                AudioRoute(inUse: AVAudioSession.sharedInstance().currentRoute).map { .route(route: $0) }
            }
            if !UIDevice.current.isGeneratingDeviceOrientationNotifications {
                UIDevice.current.beginGeneratingDeviceOrientationNotifications()
                generatingOrientation = true
            }
            // The inputs as they are now.
            phone.updateCallScreen(
                input: .foreground(foreground: UIApplication.shared.applicationState != .background))
            if let orientation = Orientation(UIDevice.current.orientation) {
                phone.updateCallScreen(input: .orientation(orientation: orientation))
            }
            if let route = AudioRoute(inUse: AVAudioSession.sharedInstance().currentRoute) {
                phone.updateCallScreen(input: .route(route: route))
            }
        }

        /// Stops following the core, stops reporting (the core is told the proximity sensor
        /// reads nothing), and turns proximity monitoring and the disabled idle timer off.
        @MainActor
        public func stop() {
            driver.stop()
            stopObserving()
            phone?.updateCallScreen(input: .proximity(proximity: .unknown))
            phone = nil
            UIDevice.current.isProximityMonitoringEnabled = false
            UIApplication.shared.isIdleTimerDisabled = false
        }

        @MainActor
        private func stopObserving() {
            for observer in observers { NotificationCenter.default.removeObserver(observer) }
            observers = []
            if generatingOrientation {
                UIDevice.current.endGeneratingDeviceOrientationNotifications()
                generatingOrientation = false
            }
        }
    }

    extension Orientation {
        /// The core's orientation for a device orientation; nil when unknown.
        init?(_ o: UIDeviceOrientation) {
            switch o {
            case .portrait, .portraitUpsideDown: self = .portrait
            case .landscapeLeft, .landscapeRight: self = .landscape
            case .faceUp: self = .faceUp
            case .faceDown: self = .faceDown
            case .unknown: return nil
            @unknown default: return nil
            }
        }
    }

    extension AudioRoute {
        /// The core's route for the audio session's current output
        /// (`AudioRoutePlan.currentRoute`); nil when there is none or it is none of the four
        /// (AirPlay, HDMI, USB...).
        init?(inUse route: AVAudioSessionRouteDescription) {
            guard let inUse = AudioRoutePlan.currentRoute(route.outputs.map(AudioPort.init)) else { return nil }
            self.init(inUse)
        }
    }
#endif

#if canImport(Contacts)
    import Contacts

    extension ContactRecord {
        /// The keys `CNContactStoreReader` fetches.
        public static let contactKeys =
            [
                CNContactIdentifierKey, CNContactGivenNameKey, CNContactFamilyNameKey,
                CNContactOrganizationNameKey, CNContactPhoneNumbersKey, CNContactEmailAddressesKey,
                CNContactUrlAddressesKey, CNContactInstantMessageAddressesKey,
            ] as [CNKeyDescriptor]

        /// The fields the import reads from `c` (fetched with `contactKeys`).
        public init(_ c: CNContact) {
            self.init(
                identifier: c.identifier, givenName: c.givenName, familyName: c.familyName,
                organizationName: c.organizationName,
                phoneNumbers: c.phoneNumbers.map { $0.value.stringValue },
                phoneLabels: c.phoneNumbers.map { number in
                    number.label.map { CNLabeledValue<CNPhoneNumber>.localizedString(forLabel: $0) } ?? ""
                },
                emailAddresses: c.emailAddresses.map { $0.value as String },
                urlAddresses: c.urlAddresses.map { $0.value as String },
                instantMessages: c.instantMessageAddresses.map { (service: $0.value.service, username: $0.value.username) })
        }
    }

    /// Reads the address book for the core's `ContactsSource` (`ImportedContactsSource`).
    /// Returns nothing unless the user granted access (ask with `requestAccess` first).
    public enum CNContactStoreReader {
        /// Every contact the app may read, as records (empty without access).
        public static func records(store: CNContactStore = CNContactStore()) -> [ContactRecord] {
            guard CNContactStore.authorizationStatus(for: .contacts) == .authorized else { return [] }
            var records: [ContactRecord] = []
            let request = CNContactFetchRequest(keysToFetch: ContactRecord.contactKeys)
            try? store.enumerateContacts(with: request) { contact, _ in
                records.append(ContactRecord(contact))
            }
            return records
        }

        /// The phone's `ContactsSource` over CNContactStore.
        public static func contactsSource(store: CNContactStore = CNContactStore()) -> ImportedContactsSource {
            ImportedContactsSource { records(store: store) }
        }
    }
#endif
