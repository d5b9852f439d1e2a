import Foundation

/// The iOS defaults of the phone's settings where the app leaves them unset.
public enum PhoneDefaults {
    /// The country national numbers are dialled in (`PhoneConfig.defaultCountry`): the app's
    /// `configured` value when it set one, else the locale's `region` (`Locale.current.region`)
    /// when it is an ISO 3166 alpha-2 code (upper-cased; not a UN M.49 area like "001"), else
    /// nil (the core then takes its own default).
    public static func defaultCountry(configured: String?, region: String?) -> String? {
        if let configured, !configured.trimmingCharacters(in: .whitespaces).isEmpty {
            return configured
        }
        guard let code = region?.trimmingCharacters(in: .whitespaces).uppercased(),
            code.count == 2, code.unicodeScalars.allSatisfy({ ("A"..."Z").contains($0) })
        else { return nil }
        return code
    }
}
