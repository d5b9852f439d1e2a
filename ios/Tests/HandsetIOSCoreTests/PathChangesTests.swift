import HandsetIOSCore
import XCTest

final class PathChangesTests: XCTestCase {
    private let wifi = NetworkPath(satisfied: true, interfaces: ["en0", "pdp_ip0"], gateways: ["192.168.1.1"])
    private let cellular = NetworkPath(satisfied: true, interfaces: ["pdp_ip0"], gateways: ["10.64.0.1"])
    private let none = NetworkPath(satisfied: false, interfaces: [], gateways: [])

    func testTheFirstUsablePathIsWhereThePhoneStarts() {
        var changes = PathChanges()
        XCTAssertFalse(changes.update(none))
        XCTAssertFalse(changes.update(wifi))
        XCTAssertFalse(changes.update(wifi))
    }

    func testAnotherInterfaceOrOtherGatewaysAreAChange() {
        var changes = PathChanges()
        _ = changes.update(wifi)
        XCTAssertTrue(changes.update(cellular))
        XCTAssertFalse(changes.update(cellular))
        var otherWifi = wifi
        otherWifi.gateways = ["172.16.0.1"]
        XCTAssertTrue(changes.update(wifi))
        XCTAssertTrue(changes.update(otherWifi))
        // Cellular appearing behind the preferred Wi-Fi changes nothing.
        var wifiOnly = otherWifi
        wifiOnly.interfaces = ["en0"]
        XCTAssertFalse(changes.update(wifiOnly))
    }

    func testLosingThePathWaitsForTheNextOne() {
        var changes = PathChanges()
        _ = changes.update(wifi)
        XCTAssertFalse(changes.update(none))
        // Back on the same Wi-Fi: the NAT in front may have forgotten us.
        XCTAssertTrue(changes.update(wifi))
    }
}
