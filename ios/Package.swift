// swift-tools-version:5.9
// HandsetIOS: the iOS shell's glue around the Handset core. Glue only: call decisions live in
// the core (core/phone), the glue maps them onto Apple's APIs.
//
//   HandsetIOSCore  platform-neutral decisions of the glue, plain Swift, no FFI: core call
//                   updates → CallKit reports, CallKit actions → core commands, push report →
//                   CallKit report (and its decline or end before the INVITE), push accounts to
//                   refresh on new credentials, audio-session gating of call media, AVAudioSession
//                   ports ↔ the core's audio routes, call screen decision → proximity monitoring
//                   and idle timer, CNContact fields → core contacts, the default country. Built
//                   and unit-tested on Linux.
//   HandsetIOS      the FFI bridge (generated types → HandsetIOSCore, platform services for the
//                   phone) plus the Apple-only parts behind `#if canImport(CallKit)`,
//                   `canImport(PushKit)`, `canImport(UIKit)`, `canImport(Contacts)`,
//                   `canImport(AVFoundation)`. Needs ../bindings/swift with its generated files
//                   (scripts/swift.sh copies them); without them only HandsetIOSCore exists.
import Foundation
import PackageDescription

// Warnings are errors in the Linux test runs (scripts/swift.sh sets HANDSET_SWIFT_STRICT=1);
// elsewhere no unsafe flags, so the package also works as a remote dependency and a newer SDK's
// warnings do not break an app's build.
let strict: [SwiftSetting] =
    ProcessInfo.processInfo.environment["HANDSET_SWIFT_STRICT"] == "1"
    ? [.unsafeFlags(["-warnings-as-errors"])] : []

let bindings = Context.packageDirectory + "/../bindings/swift"
let generated = FileManager.default.fileExists(atPath: bindings + "/Sources/Handset/handset.swift")
    && FileManager.default.fileExists(atPath: bindings + "/Sources/handsetFFI/module.modulemap")

var dependencies: [Package.Dependency] = []
var products: [Product] = [.library(name: "HandsetIOSCore", targets: ["HandsetIOSCore"])]
var targets: [Target] = [
    .target(name: "HandsetIOSCore", swiftSettings: strict),
    .testTarget(name: "HandsetIOSCoreTests", dependencies: ["HandsetIOSCore"], swiftSettings: strict),
]
if generated {
    // A path dependency's identity is its folder's name: "swift".
    dependencies.append(.package(path: "../bindings/swift"))
    products.append(.library(name: "HandsetIOS", targets: ["HandsetIOS", "HandsetIOSCore"]))
    targets += [
        .target(
            name: "HandsetIOS",
            dependencies: ["HandsetIOSCore", .product(name: "Handset", package: "swift")],
            swiftSettings: strict,
            // NetworkFollower reads the system's DNS servers with res_9_getservers.
            linkerSettings: [.linkedLibrary("resolv", .when(platforms: [.iOS, .macOS]))]
        ),
        .testTarget(name: "HandsetIOSTests", dependencies: ["HandsetIOS"], swiftSettings: strict),
    ]
}

let package = Package(
    name: "HandsetIOS",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: products,
    dependencies: dependencies,
    targets: targets
)
