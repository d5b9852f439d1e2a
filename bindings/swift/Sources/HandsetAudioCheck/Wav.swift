import Foundation

/// Errors from reading a WAV file.
public enum WavError: Error, Equatable, CustomStringConvertible {
    /// The file does not start with a RIFF/WAVE header.
    case notRiffWave
    /// A required chunk (`fmt ` or `data`) is missing.
    case missingChunk(String)
    /// Neither 16-bit PCM nor 32-bit float.
    case unsupportedFormat(formatTag: UInt16, bitsPerSample: UInt16)
    /// The header is inconsistent (says why).
    case invalidHeader(String)

    /// The error in words.
    public var description: String {
        switch self {
        case .notRiffWave: return "not a RIFF/WAVE file"
        case .missingChunk(let id): return "no '\(id)' chunk"
        case .unsupportedFormat(let tag, let bits):
            return "unsupported WAV format (tag \(tag), \(bits) bits): need 16-bit PCM or 32-bit float"
        case .invalidHeader(let why): return "invalid WAV header: \(why)"
        }
    }
}

/// Mono audio decoded from a WAV file: channels are averaged, samples scaled to -1...1.
public struct WavAudio: Equatable {
    /// Samples per second.
    public var sampleRate: Int
    /// Channels of the file the samples were mixed down from.
    public var channels: Int
    /// Mono samples, -1...1.
    public var samples: [Float]

    /// Audio from mono samples.
    public init(sampleRate: Int, channels: Int = 1, samples: [Float]) {
        self.sampleRate = sampleRate
        self.channels = channels
        self.samples = samples
    }

    /// Length in seconds.
    public var duration: Double { sampleRate > 0 ? Double(samples.count) / Double(sampleRate) : 0 }

    /// Reads 16-bit PCM (format 1 or WAVE_FORMAT_EXTENSIBLE) or 32-bit IEEE float WAV.
    ///
    /// Writers that stream (and are stopped before they patch the header) leave a data size of
    /// 0 or 0xFFFFFFFF, and some count the header in it: the data chunk is therefore clamped to
    /// the bytes the file actually holds, and a trailing partial frame is dropped.
    public static func read(contentsOf url: URL) throws -> WavAudio {
        try parse(Data(contentsOf: url))
    }

    /// Decodes a WAV file's bytes (see `read(contentsOf:)`).
    public static func parse(_ data: Data) throws -> WavAudio {
        let bytes = [UInt8](data)
        func u16(_ at: Int) -> UInt16 { UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8 }
        func u32(_ at: Int) -> UInt32 {
            UInt32(u16(at)) | UInt32(u16(at + 2)) << 16
        }
        func tag(_ at: Int) -> String { String(decoding: bytes[at..<at + 4], as: UTF8.self) }

        guard bytes.count >= 12, tag(0) == "RIFF", tag(8) == "WAVE" else { throw WavError.notRiffWave }
        var pos = 12
        var format: (tag: UInt16, channels: Int, rate: Int, bits: UInt16)?
        while pos + 8 <= bytes.count {
            let id = tag(pos)
            let declared = Int(u32(pos + 4))
            let body = pos + 8
            if id == "fmt " {
                guard declared >= 16, body + 16 <= bytes.count else {
                    throw WavError.invalidHeader("fmt chunk of \(declared) bytes")
                }
                var formatTag = u16(body)
                if formatTag == 0xFFFE, declared >= 40, body + 26 <= bytes.count {
                    formatTag = u16(body + 24)  // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID
                }
                format = (formatTag, Int(u16(body + 2)), Int(u32(body + 4)), u16(body + 14))
            } else if id == "data" {
                guard let f = format else { throw WavError.missingChunk("fmt ") }
                guard f.channels > 0, f.rate > 0 else {
                    throw WavError.invalidHeader("\(f.channels) channels at \(f.rate) Hz")
                }
                let available = bytes.count - body
                let size = (declared == 0 || declared > available) ? available : declared
                return try decode(Array(bytes[body..<body + size]), format: f)
            }
            pos = body + declared + (declared & 1)  // chunks are padded to even sizes
        }
        throw WavError.missingChunk(format == nil ? "fmt " : "data")
    }

    private static func decode(
        _ raw: [UInt8], format f: (tag: UInt16, channels: Int, rate: Int, bits: UInt16)
    ) throws -> WavAudio {
        let bytesPerSample: Int
        let sample: (Int) -> Float
        switch (f.tag, f.bits) {
        case (1, 16):
            bytesPerSample = 2
            sample = { at in Float(Int16(bitPattern: UInt16(raw[at]) | UInt16(raw[at + 1]) << 8)) / 32768 }
        case (3, 32):
            bytesPerSample = 4
            sample = { at in
                let bits = UInt32(raw[at]) | UInt32(raw[at + 1]) << 8 | UInt32(raw[at + 2]) << 16
                    | UInt32(raw[at + 3]) << 24
                return Float(bitPattern: bits)
            }
        default:
            throw WavError.unsupportedFormat(formatTag: f.tag, bitsPerSample: f.bits)
        }
        let frameBytes = bytesPerSample * f.channels
        let frames = raw.count / frameBytes
        var out = [Float](repeating: 0, count: frames)
        for i in 0..<frames {
            var sum: Float = 0
            for c in 0..<f.channels { sum += sample(i * frameBytes + c * bytesPerSample) }
            out[i] = sum / Float(f.channels)
        }
        return WavAudio(sampleRate: f.rate, channels: f.channels, samples: out)
    }

    /// 16-bit PCM mono WAV bytes (samples clipped to -1...1).
    public func wavData() -> Data {
        var d = Data()
        func put32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        func put16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { d.append(contentsOf: $0) } }
        let dataBytes = UInt32(samples.count * 2)
        d.append(contentsOf: Array("RIFF".utf8))
        put32(36 + dataBytes)
        d.append(contentsOf: Array("WAVEfmt ".utf8))
        put32(16)
        put16(1)  // PCM
        put16(1)  // mono
        put32(UInt32(sampleRate))
        put32(UInt32(sampleRate * 2))
        put16(2)
        put16(16)
        d.append(contentsOf: Array("data".utf8))
        put32(dataBytes)
        for s in samples {
            let clipped = max(-1, min(1, s))
            put16(UInt16(bitPattern: Int16((clipped * 32767).rounded())))
        }
        return d
    }

    /// Writes the samples as a 16-bit PCM mono WAV file (atomically).
    public func write(to url: URL) throws {
        try wavData().write(to: url, options: .atomic)
    }

    /// A sine tone, e.g. for the far end or our own microphone.
    public static func tone(
        frequency: Double, seconds: Double, sampleRate: Int = 8000, amplitude: Float = 0.5
    ) -> WavAudio {
        let n = Int(seconds * Double(sampleRate))
        let w = 2 * Double.pi * frequency / Double(sampleRate)
        return WavAudio(
            sampleRate: sampleRate,
            samples: (0..<n).map { amplitude * Float(sin(w * Double($0))) })
    }
}
