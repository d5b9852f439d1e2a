import XCTest

@testable import HandsetIOSCore

final class DnsServersTests: XCTestCase {
    func testServersBecomeEntriesInOrderWithoutDuplicates() {
        let servers = [
            DnsServerAddress(host: "192.0.2.53"), DnsServerAddress(host: "2001:db8::53"),
            DnsServerAddress(host: "192.0.2.53", port: 53), DnsServerAddress(host: "192.0.2.54", port: 5353),
        ]
        XCTAssertEqual(
            DnsServers.entries(servers), ["192.0.2.53:53", "[2001:db8::53]:53", "192.0.2.54:5353"])
    }

    func testLinkLocalServersKeepANumericScope() {
        XCTAssertEqual(DnsServers.entry(DnsServerAddress(host: "fe80::1%en0", scopeId: 4)), "[fe80::1%4]:53")
        XCTAssertEqual(DnsServers.entry(DnsServerAddress(host: "fe80::1%en0")), "[fe80::1]:53")
    }

    func testUnusableServersAreLeftOutAndPortZeroIsTheDnsPort() {
        let servers = [
            DnsServerAddress(host: ""), DnsServerAddress(host: "0.0.0.0"), DnsServerAddress(host: "::"),
            DnsServerAddress(host: "198.51.100.1", port: 0),
        ]
        XCTAssertEqual(DnsServers.entries(servers), ["198.51.100.1:53"])
        XCTAssertEqual(DnsServers.entries([]), [])
    }
}
