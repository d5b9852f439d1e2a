import Foundation
import Handset
import HandsetIOSCore

#if canImport(UIKit) && os(iOS)
    import UIKit

    /// Proximity on iOS: `ProximityDriver` switches `UIDevice.current.isProximityMonitoringEnabled`
    /// from the core's call screen state; the sensor's readings go back to the core.
    public final class ProximityMonitor {
        private let driver = ProximityDriver()
        private var observer: NSObjectProtocol?

        public init() {}

        @MainActor
        public func start(phone: HandsetPhone) {
            driver.start(phone: phone) { on in UIDevice.current.isProximityMonitoringEnabled = on }
            observer = NotificationCenter.default.addObserver(
                forName: UIDevice.proximityStateDidChangeNotification, object: nil, queue: .main
            ) { _ in
                phone.setProximity(near: UIDevice.current.proximityState)
            }
        }

        @MainActor
        public func stop() {
            driver.stop()
            if let observer { NotificationCenter.default.removeObserver(observer) }
            observer = nil
            UIDevice.current.isProximityMonitoringEnabled = false
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
                CNContactOrganizationNameKey, CNContactPhoneNumbersKey, CNContactUrlAddressesKey,
                CNContactInstantMessageAddressesKey,
            ] as [CNKeyDescriptor]

        public init(_ c: CNContact) {
            self.init(
                identifier: c.identifier, givenName: c.givenName, familyName: c.familyName,
                organizationName: c.organizationName,
                phoneNumbers: c.phoneNumbers.map { $0.value.stringValue },
                urlAddresses: c.urlAddresses.map { $0.value as String },
                instantMessages: c.instantMessageAddresses.map { (service: $0.value.service, username: $0.value.username) })
        }
    }

    /// Reads the address book for the core's `ContactsSource` (`ImportedContactsSource`).
    /// Returns nothing unless the user granted access (ask with `requestAccess` first).
    public enum CNContactStoreReader {
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
