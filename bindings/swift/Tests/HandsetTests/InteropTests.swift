import Foundation
import Handset
import HandsetAsync
import HandsetAudioCheck
import XCTest

/// Swift → libhandset_ffi → real peers on loopback: Kamailio (127.0.0.1:25060) and a baresip
/// peer that answers with a 600 Hz tone. `scripts/swift.sh test` starts both on the host and
/// writes their addresses into $HANDSET_SWIFT_ENV; without that file these tests skip.
final class InteropTests: XCTestCase {
    private struct Env {
        var proxy: String
        var domain: String
        var user: String
        var password: String
        var peerURI: String
        var toneHz: Double
        var wavDir: URL
    }

    private func env() throws -> Env {
        guard let path = ProcessInfo.processInfo.environment["HANDSET_SWIFT_ENV"],
            let text = try? String(contentsOfFile: path, encoding: .utf8)
        else {
            throw XCTSkip("no interop env (run through scripts/swift.sh test)")
        }
        var values: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let kv = line.split(separator: "=", maxSplits: 1).map(String.init)
            if kv.count == 2 { values[kv[0]] = kv[1] }
        }
        func value(_ key: String) throws -> String {
            guard let v = values[key], !v.isEmpty else { throw XCTSkip("interop env lacks \(key)") }
            return v
        }
        return Env(
            proxy: try value("HANDSET_PROXY"), domain: try value("HANDSET_DOMAIN"),
            user: try value("HANDSET_USER"), password: try value("HANDSET_PASSWORD"),
            peerURI: try value("HANDSET_PEER_URI"), toneHz: Double(try value("HANDSET_PEER_TONE_HZ")) ?? 600,
            wavDir: URL(fileURLWithPath: try value("HANDSET_WAV_DIR")))
    }

    private func phone(secrets: [String: StoredSecret], databasePath: String? = nil) throws -> HandsetPhone {
        try HandsetPhone(
            config: PhoneConfig(bindAddress: "127.0.0.1:0", databasePath: databasePath), audio: NoPlatformAudio(),
            secrets: MemorySecretStore(secrets), contacts: StaticContactsSource(),
            push: StaticPushTokenProvider())
    }

    /// Register, call the baresip peer with WAV audio, hear its 600 Hz tone for ≥ 2 s, hang up;
    /// the peer hears our 1 kHz tone too, and the phone's history holds the call.
    func testRegisterCallPeerHearToneHangUp() async throws {
        let env = try env()
        let database = env.wavDir.appendingPathComponent("swift-history.sqlite")
        for suffix in ["", "-wal", "-shm"] {
            try? FileManager.default.removeItem(atPath: database.path + suffix)
        }
        let phone = try phone(secrets: [env.user: .password(password: env.password)], databasePath: database.path)
        let account = try await phone.addAccount(
            config: AccountConfig(
                accountId: env.user, server: "sip:\(env.proxy)", user: env.user, domain: env.domain,
                transport: .udp, expiresSecs: 300))

        let registered = try await account.registered(within: 10)
        guard case .registered(let expires) = registered else { return XCTFail("\(registered)") }
        XCTAssertGreaterThan(expires, 0)

        // Our microphone: 6 s of 1 kHz. The speaker is recorded to a WAV.
        let mic = env.wavDir.appendingPathComponent("swift-mic-1000hz.wav")
        let heard = env.wavDir.appendingPathComponent("swift-heard.wav")
        try? FileManager.default.removeItem(at: heard)
        try WavAudio.tone(frequency: 1000, seconds: 6, sampleRate: 8000, amplitude: 0.3).write(to: mic)

        let peerRecordingsBefore = peerRecordings()
        let call = try await account.call(
            target: env.peerURI, audio: .wav(play: mic.path, record: heard.path), media: nil)
        XCTAssertEqual(call.direction(), .outgoing)

        // Every state the call goes through, from our own stream (current value first).
        let seen = Task { () -> [CallState] in
            var states: [CallState] = []
            for await event in try call.updates() { states.append(event.state) }
            return states
        }
        let active = try await call.active(within: 15)
        guard case .active(let codec, _, let onHold) = active else { return XCTFail("\(active)") }
        XCTAssertEqual(codec.uppercased(), "PCMU")
        XCTAssertFalse(onHold)
        XCTAssertEqual(phone.calls().map { $0.id() }, [call.id()])

        try await Task.sleep(nanoseconds: 4_000_000_000)
        try await call.hangup()
        let final = try await call.ended(within: 10)
        guard case .ended(let reason, let quality) = final else { return XCTFail("\(final)") }
        XCTAssertEqual(reason, .localHangup)
        if let q = quality { XCTAssertGreaterThan(q.packetsReceived, 100, "\(q)") }
        let states = try await seen.value
        XCTAssertTrue(states.last?.isEnded ?? false, "the call stream finishes after Ended: \(states)")
        XCTAssertTrue(states.contains { $0.isActive }, "\(states)")

        // What we heard: the peer's 600 Hz tone for at least 2 s.
        let audio = try WavAudio.read(contentsOf: heard)
        let tone = Goertzel.detect(audio, frequency: env.toneHz)
        print("swift interop: heard \(tone) in \(heard.path) (\(audio.sampleRate) Hz, \(audio.duration) s)")
        XCTAssertGreaterThanOrEqual(tone.seconds, 2, "\(tone)")

        // What the peer heard (its recording is complete once the call ended): our 1 kHz.
        if let rec = try await newPeerRecording(besides: peerRecordingsBefore) {
            let peerTone = Goertzel.detect(try WavAudio.read(contentsOf: rec), frequency: 1000)
            print("swift interop: peer heard \(peerTone) in \(rec.path)")
            XCTAssertGreaterThanOrEqual(peerTone.seconds, 2, "\(peerTone)")
        }

        // The call, read back from the history in the phone's database.
        let history = try XCTUnwrap(phone.store(), "a phone with databasePath has a store").allHistory()
        XCTAssertEqual(history.count, 1, "\(history)")
        if let entry = history.first {
            XCTAssertEqual(entry.direction, .outgoing)
            XCTAssertEqual(entry.remoteNumber, peerUser(env.peerURI), "\(entry)")
            XCTAssertNotNil(entry.answeredAtMs, "\(entry)")
            XCTAssertGreaterThanOrEqual(entry.durationMs, 3000, "\(entry)")
            XCTAssertFalse(entry.missed, "\(entry)")
        }

        try await account.unregister()
        _ = try await account.registrationState(within: 10) { $0 == .unregistered }
        try await phone.shutdown()
    }

    /// The user part of a SIP URI (`sip:peer8@127.0.0.1` → `peer8`): the number the history
    /// records for a call to it.
    private func peerUser(_ uri: String) -> String {
        var s = Substring(uri)
        if let colon = s.firstIndex(of: ":") { s = s[s.index(after: colon)...] }
        return String(s.prefix { $0 != "@" && $0 != ";" })
    }

    /// A wrong password ends in `failed(authenticationFailed)` with no retry, which
    /// `registered()` turns into an error.
    func testWrongPasswordFailsRegistration() async throws {
        let env = try env()
        let phone = try phone(secrets: ["bad": .password(password: "not-the-secret")])
        let account = try await phone.addAccount(
            config: AccountConfig(
                accountId: "bad", server: "sip:\(env.proxy)", user: env.user, domain: env.domain,
                transport: .udp, expiresSecs: 300))
        do {
            try await account.registered(within: 10)
            XCTFail("registered with a wrong password")
        } catch HandsetAsyncError.registrationFailed(let reason, _) {
            guard case .authenticationFailed = reason else { return XCTFail("\(reason)") }
        }
        try await phone.shutdown()
    }

    // MARK: - the peer's recordings

    private let peerRecDir = URL(fileURLWithPath: "/tmp/handset-peers/peer8/rec")

    private func peerRecordings() -> Set<String> {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: peerRecDir.path)) ?? []
        return Set(names.filter { $0.hasSuffix("-dec.wav") })
    }

    /// The recording of the call just made (baresip closes it shortly after the BYE).
    private func newPeerRecording(besides before: Set<String>) async throws -> URL? {
        for _ in 0..<20 {
            if let name = peerRecordings().subtracting(before).sorted().last {
                try await Task.sleep(nanoseconds: 500_000_000)  // let baresip finish the file
                return peerRecDir.appendingPathComponent(name)
            }
            try await Task.sleep(nanoseconds: 250_000_000)
        }
        return nil
    }
}
