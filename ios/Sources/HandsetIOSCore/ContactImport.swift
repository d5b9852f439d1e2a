import Foundation

/// The fields of a `CNContact` the import reads (Contacts-free, so it is tested on Linux).
public struct ContactRecord: Equatable, Sendable {
    /// `CNContact.identifier`.
    public var identifier: String
    /// `givenName`.
    public var givenName: String
    /// `familyName`.
    public var familyName: String
    /// `organizationName`.
    public var organizationName: String
    /// `phoneNumbers[].value.stringValue`.
    public var phoneNumbers: [String]
    /// `phoneNumbers[].label` as `CNLabeledValue.localizedString(forLabel:)` shows it
    /// ("mobile", "work", a custom label), parallel to `phoneNumbers`; "" for a number
    /// without label. Missing trailing labels count as "".
    public var phoneLabels: [String]
    /// `emailAddresses[].value`.
    public var emailAddresses: [String]
    /// `urlAddresses[].value`.
    public var urlAddresses: [String]
    /// `instantMessageAddresses[].value`: (service, username).
    public var instantMessages: [(service: String, username: String)]

    /// A record with the fields read from one contact.
    public init(
        identifier: String, givenName: String = "", familyName: String = "",
        organizationName: String = "", phoneNumbers: [String] = [], phoneLabels: [String] = [],
        emailAddresses: [String] = [], urlAddresses: [String] = [],
        instantMessages: [(service: String, username: String)] = []
    ) {
        self.identifier = identifier
        self.givenName = givenName
        self.familyName = familyName
        self.organizationName = organizationName
        self.phoneNumbers = phoneNumbers
        self.phoneLabels = phoneLabels
        self.emailAddresses = emailAddresses
        self.urlAddresses = urlAddresses
        self.instantMessages = instantMessages
    }

    /// Field by field (the instant-message tuples compared as pairs).
    public static func == (a: ContactRecord, b: ContactRecord) -> Bool {
        a.identifier == b.identifier && a.givenName == b.givenName && a.familyName == b.familyName
            && a.organizationName == b.organizationName && a.phoneNumbers == b.phoneNumbers
            && a.phoneLabels == b.phoneLabels && a.emailAddresses == b.emailAddresses
            && a.urlAddresses == b.urlAddresses
            && a.instantMessages.map { [$0.service, $0.username] }
                == b.instantMessages.map { [$0.service, $0.username] }
    }
}

/// One contact as the core's contacts source takes it (the FFI `Contact` record).
public struct ImportedContact: Equatable, Sendable {
    /// The address book's id of the contact.
    public var id: String
    /// The name to show.
    public var displayName: String
    /// Numbers as written, without duplicates.
    public var phoneNumbers: [String]
    /// `sip:`/`sips:` addresses.
    public var sipAddresses: [String]
    /// The labels of `phoneNumbers`, in the same order ("" where a number has none).
    public var phoneLabels: [String]
    /// E-mail addresses, without duplicates.
    public var emails: [String]
    /// The company (`organizationName`), if any.
    public var company: String?

    /// A contact for the core.
    public init(
        id: String, displayName: String, phoneNumbers: [String], sipAddresses: [String],
        phoneLabels: [String] = [], emails: [String] = [], company: String? = nil
    ) {
        self.id = id
        self.displayName = displayName
        self.phoneNumbers = phoneNumbers
        self.sipAddresses = sipAddresses
        self.phoneLabels = phoneLabels
        self.emails = emails
        self.company = company
    }
}

/// `CNContact` → the core's contact. Numbers stay as written (the core normalizes them when it
/// matches callers), each with its label; SIP addresses come from URL fields with a
/// `sip:`/`sips:` scheme and from instant-message fields whose service is "SIP"; e-mail
/// addresses and the company come along. Contacts with neither a number nor a SIP address are
/// left out: the core can never match them to a call.
public enum ContactImport {
    /// The core's contact for `r`; nil when it has neither a number nor a SIP address.
    public static func contact(from r: ContactRecord) -> ImportedContact? {
        // Numbers with their labels: blank ones dropped, a repeated number keeps its first label.
        var numbers: [String] = []
        var labels: [String] = []
        for (i, raw) in r.phoneNumbers.enumerated() {
            let number = raw.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !number.isEmpty, !numbers.contains(number) else { continue }
            numbers.append(number)
            labels.append(i < r.phoneLabels.count ? r.phoneLabels[i].trimmingCharacters(in: .whitespaces) : "")
        }
        let emails = unique(r.emailAddresses.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        var sip = r.urlAddresses.compactMap(sipAddress)
        sip += r.instantMessages.compactMap { im in
            guard im.service.caseInsensitiveCompare("SIP") == .orderedSame else { return nil }
            let user = im.username.trimmingCharacters(in: .whitespaces)
            guard !user.isEmpty else { return nil }
            return sipAddress(user) ?? "sip:" + user
        }
        sip = unique(sip)
        guard !numbers.isEmpty || !sip.isEmpty else { return nil }
        let name = [r.givenName, r.familyName]
            .map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty }
            .joined(separator: " ")
        let org = r.organizationName.trimmingCharacters(in: .whitespaces)
        let display = !name.isEmpty ? name : !org.isEmpty ? org : (numbers.first ?? sip[0])
        return ImportedContact(
            id: r.identifier, displayName: display, phoneNumbers: numbers, sipAddresses: sip,
            phoneLabels: labels, emails: emails, company: org.isEmpty ? nil : org)
    }

    /// The core's contacts for `records`, leaving out those it could never match.
    public static func contacts(from records: [ContactRecord]) -> [ImportedContact] {
        records.compactMap(contact(from:))
    }

    private static func sipAddress(_ s: String) -> String? {
        let t = s.trimmingCharacters(in: .whitespaces)
        let lower = t.lowercased()
        guard lower.hasPrefix("sip:") || lower.hasPrefix("sips:") else { return nil }
        // The scheme in lower case, the rest as written.
        let colon = t.firstIndex(of: ":")!
        let rest = String(t[t.index(after: colon)...])
        return rest.isEmpty ? nil : String(t[...colon]).lowercased() + rest
    }

    private static func unique(_ xs: [String]) -> [String] {
        var seen = Set<String>()
        return xs.filter { !$0.isEmpty && seen.insert($0).inserted }
    }
}
