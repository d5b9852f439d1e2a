import Foundation
import XCTest

@testable import HandsetAudioCheck

final class WavGoertzelTests: XCTestCase {
    func testToneRoundTripsThroughAWavFileAndIsDetected() throws {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("handset-swift-tone-\(UUID().uuidString).wav")
        defer { try? FileManager.default.removeItem(at: url) }
        try WavAudio.tone(frequency: 600, seconds: 3).write(to: url)

        let audio = try WavAudio.read(contentsOf: url)
        XCTAssertEqual(audio.sampleRate, 8000)
        XCTAssertEqual(audio.samples.count, 24000)
        XCTAssertEqual(audio.duration, 3, accuracy: 0.001)

        let hit = Goertzel.detect(audio, frequency: 600)
        XCTAssertEqual(hit.windows, 150)
        XCTAssertEqual(hit.hits, 150, "\(hit)")
        XCTAssertEqual(hit.longestRunSeconds, 3, accuracy: 0.001)
        XCTAssertEqual(Goertzel.detect(audio, frequency: 1000).hits, 0)
        XCTAssertEqual(Goertzel.detect(audio, frequency: 440).hits, 0)
    }

    func testSilenceAndNoiseHoldNoTone() {
        let silence = WavAudio(sampleRate: 8000, samples: [Float](repeating: 0, count: 16000))
        XCTAssertEqual(Goertzel.detect(silence, frequency: 600).hits, 0)

        var rng = SystemRandomNumberGenerator()
        let noise = WavAudio(
            sampleRate: 8000, samples: (0..<16000).map { _ in Float.random(in: -0.5...0.5, using: &rng) })
        XCTAssertLessThan(Goertzel.detect(noise, frequency: 600).seconds, 0.2)

        // A tone too quiet to count (-60 dBFS) is below the -45 dBFS floor.
        let quiet = WavAudio.tone(frequency: 600, seconds: 1, amplitude: 0.001)
        XCTAssertEqual(Goertzel.detect(quiet, frequency: 600).hits, 0)
    }

    func testToneAfterSilenceCountsOnlyTheToneWindows() {
        var audio = WavAudio(sampleRate: 8000, samples: [Float](repeating: 0, count: 8000))
        audio.samples += WavAudio.tone(frequency: 600, seconds: 2.5).samples
        let r = Goertzel.detect(audio, frequency: 600)
        XCTAssertEqual(r.seconds, 2.5, accuracy: 0.05)
        XCTAssertGreaterThanOrEqual(r.longestRunSeconds, 2.4)
    }

    /// A recorder stopped before it patched its header leaves data size 0 (or one counting the
    /// header): the reader takes the bytes the file holds and drops a trailing partial frame.
    func testStreamingHeaderWithoutSizesAndOddTail() throws {
        var data = WavAudio.tone(frequency: 600, seconds: 1).wavData()
        data.replaceSubrange(40..<44, with: [0, 0, 0, 0])
        data.append(0x7F)
        XCTAssertEqual(try WavAudio.parse(data).samples.count, 8000)

        var oversize = WavAudio.tone(frequency: 600, seconds: 1).wavData()
        oversize.replaceSubrange(40..<44, with: [0xFF, 0xFF, 0xFF, 0xFF])
        XCTAssertEqual(try WavAudio.parse(oversize).samples.count, 8000)
    }

    func testStereoFloatWithExtraChunksIsMixedDown() throws {
        // 48 kHz stereo float, a LIST chunk before data: the left channel carries the tone,
        // the right one is silent, so the mix is the tone at half amplitude.
        let tone = WavAudio.tone(frequency: 600, seconds: 0.5, sampleRate: 48000).samples
        var d = Data()
        func put32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func put16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        d.append(contentsOf: Array("RIFF".utf8))
        put32(0)
        d.append(contentsOf: Array("WAVEfmt ".utf8))
        put32(16)
        put16(3)
        put16(2)
        put32(48000)
        put32(48000 * 8)
        put16(8)
        put16(32)
        d.append(contentsOf: Array("LIST".utf8))
        put32(3)
        d.append(contentsOf: [1, 2, 3, 0])  // odd size + pad byte
        d.append(contentsOf: Array("data".utf8))
        put32(UInt32(tone.count * 8))
        for s in tone {
            put32(s.bitPattern)
            put32(Float(0).bitPattern)
        }
        let audio = try WavAudio.parse(d)
        XCTAssertEqual(audio.channels, 2)
        XCTAssertEqual(audio.sampleRate, 48000)
        XCTAssertEqual(audio.samples.count, tone.count)
        XCTAssertEqual(audio.samples[100], tone[100] / 2, accuracy: 1e-6)
        XCTAssertEqual(Goertzel.detect(audio, frequency: 600).seconds, 0.5, accuracy: 0.001)
    }

    func testBadInputIsAnErrorNotACrash() {
        XCTAssertThrowsError(try WavAudio.parse(Data())) { XCTAssertEqual($0 as? WavError, .notRiffWave) }
        XCTAssertThrowsError(try WavAudio.parse(Data("RIFF\0\0\0\0WAVE".utf8))) {
            XCTAssertEqual($0 as? WavError, .missingChunk("fmt "))
        }
        var eightBit = WavAudio.tone(frequency: 600, seconds: 0.1).wavData()
        eightBit[34] = 8
        XCTAssertThrowsError(try WavAudio.parse(eightBit)) {
            XCTAssertEqual($0 as? WavError, .unsupportedFormat(formatTag: 1, bitsPerSample: 8))
        }
        // A data chunk before any fmt chunk; a truncated fmt chunk.
        XCTAssertThrowsError(try WavAudio.parse(Data("RIFF\0\0\0\0WAVEdata\0\0\0\0".utf8)))
        XCTAssertThrowsError(try WavAudio.parse(Data("RIFF\0\0\0\0WAVEfmt \u{10}\0\0\0\u{1}\0".utf8)))
    }
}
