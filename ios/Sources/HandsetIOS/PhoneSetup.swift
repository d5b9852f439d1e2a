import Foundation
import Handset
import HandsetIOSCore

// Building the phone on iOS: the app's settings with the iOS defaults filled in, and accounts
// added so that new PushKit credentials reach the ones using push.

extension PhoneConfig {
    /// These settings with the iOS defaults where the app left them unset: `defaultCountry`
    /// from `locale`'s region (`PhoneDefaults.defaultCountry`).
    public func withIOSDefaults(locale: Locale = .current) -> PhoneConfig {
        var config = self
        config.defaultCountry = PhoneDefaults.defaultCountry(configured: defaultCountry, region: locale.regionIdentifier)
        return config
    }
}

extension Locale {
    /// The region's identifier ("DE", "US", or a UN M.49 area like "001"), if the locale has one.
    var regionIdentifier: String? {
        if #available(iOS 16, macOS 13, *) {
            return region?.identifier
        } else {
            return regionCode
        }
    }
}

extension HandsetPhone {
    /// Starts a phone (`HandsetPhone(config:...)`) with `config.withIOSDefaults(locale:)`.
    /// `audioRoutes` (on iOS `AudioSessionRoutes`) lets the core pick the call audio route;
    /// start it with the phone so it reports route changes.
    public static func start(
        config: PhoneConfig = PhoneConfig(), audio: AudioDeviceFactory, secrets: SecretStore,
        contacts: ContactsSource, push: PushTokenProvider, audioRoutes: AudioRoutePlatform? = nil,
        locale: Locale = .current
    ) throws -> HandsetPhone {
        try HandsetPhone(
            config: config.withIOSDefaults(locale: locale), audio: audio, secrets: secrets, contacts: contacts,
            push: push, audioRoutes: audioRoutes)
    }

    /// Adds an account (`addAccount(config:)`) and records in `pushAccounts` (the PushKit
    /// delegate's) whether it uses push, so it registers again when PushKit's credentials
    /// change. Accounts added directly keep the token they registered with.
    public func addAccount(config: AccountConfig, pushAccounts: PushAccounts) async throws -> Account {
        let account = try await addAccount(config: config)
        pushAccounts.added(accountId: config.accountId, push: config.push)
        return account
    }
}
