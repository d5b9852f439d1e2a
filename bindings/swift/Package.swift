// swift-tools-version:5.9
// Handset's Swift package: uniffi's generated bindings of libhandset_ffi plus hand-written
// async/await and AsyncStream adapters.
//
//   handsetFFI         C module: uniffi's generated header + a module map that links handset_ffi
//   Handset            uniffi's generated handset.swift
//   HandsetAsync       hand-written adapters (async/await, AsyncStream of listener updates)
//   HandsetAudioCheck  WAV reading/writing + Goertzel tone detection, used by the tests (no FFI)
//
// The generated files are not committed: `scripts/swift.sh test` runs scripts/bindings.sh and
// copies them into Sources/Handset and Sources/handsetFFI. Until they are there, only the
// FFI-free targets exist, so the package still builds and its helper tests still run.
import Foundation
import PackageDescription

// Our own code compiles warning-free; uniffi's generated code is left to its own warnings.
// Warnings are errors in the Linux test runs (scripts/swift.sh sets HANDSET_SWIFT_STRICT=1);
// elsewhere no unsafe flags, so the package also works as a remote dependency and a newer SDK's
// warnings do not break an app's build.
let strict: [SwiftSetting] =
    ProcessInfo.processInfo.environment["HANDSET_SWIFT_STRICT"] == "1"
    ? [.unsafeFlags(["-warnings-as-errors"])] : []

let root = Context.packageDirectory
let generated = FileManager.default.fileExists(atPath: root + "/Sources/Handset/handset.swift")
    && FileManager.default.fileExists(atPath: root + "/Sources/handsetFFI/module.modulemap")

var products: [Product] = [
    .library(name: "HandsetAudioCheck", targets: ["HandsetAudioCheck"])
]
var targets: [Target] = [
    .target(name: "HandsetAudioCheck", swiftSettings: strict),
    .testTarget(
        name: "HandsetAudioCheckTests", dependencies: ["HandsetAudioCheck"], swiftSettings: strict),
]
if generated {
    products.append(.library(name: "Handset", targets: ["Handset", "HandsetAsync"]))
    targets += [
        .systemLibrary(name: "handsetFFI"),
        .target(name: "Handset", dependencies: ["handsetFFI"]),
        .target(name: "HandsetAsync", dependencies: ["Handset"], swiftSettings: strict),
        .testTarget(
            name: "HandsetTests",
            dependencies: ["Handset", "HandsetAsync", "HandsetAudioCheck"],
            swiftSettings: strict
        ),
    ]
}

let package = Package(
    name: "Handset",
    platforms: [.macOS(.v12), .iOS(.v15)],
    products: products,
    targets: targets
)
