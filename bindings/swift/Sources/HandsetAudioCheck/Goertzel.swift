import Foundation

/// Tone detection with the Goertzel algorithm, the same criterion as tests/peers/tone_check.py:
/// a 20 ms window holds the tone when the power at `frequency` is at least `ratio` of the
/// window's energy and the window is louder than `minDbfs`.
public enum Goertzel {
    /// Power at `frequency` as a fraction of the window's energy (1.0 = a pure tone), and the
    /// window's mean square.
    public static func ratio(_ x: ArraySlice<Float>, sampleRate: Int, frequency: Double)
        -> (ratio: Double, meanSquare: Double)
    {
        guard !x.isEmpty else { return (0, 0) }
        let c = 2 * cos(2 * Double.pi * frequency / Double(sampleRate))
        var s1 = 0.0
        var s2 = 0.0
        var energy = 0.0
        for v in x {
            let d = Double(v)
            (s1, s2) = (d + c * s1 - s2, s1)
            energy += d * d
        }
        let power = s1 * s1 + s2 * s2 - c * s1 * s2
        let n = Double(x.count)
        return (energy > 0 ? 2 * power / (n * energy) : 0, energy / n)
    }

    /// How much of a recording holds one tone.
    public struct Report: Equatable, CustomStringConvertible {
        /// The tone looked for, Hz.
        public var frequency: Double
        /// 20 ms windows examined.
        public var windows: Int
        /// Windows in which the tone dominates.
        public var hits: Int
        /// Seconds of audio (20 ms windows) in which the tone dominates.
        public var seconds: Double { Double(hits) * 0.02 }
        /// The longest run of consecutive windows holding the tone, in seconds.
        public var longestRunSeconds: Double

        /// The report in words.
        public var description: String {
            String(
                format: "%.2f s of %g Hz (%d/%d windows, longest run %.2f s)", seconds, frequency,
                hits, windows, longestRunSeconds)
        }
    }

    /// The 20 ms windows of `audio` that hold `frequency` (power ratio at least `minRatio`,
    /// window louder than `minDbfs`).
    public static func detect(
        _ audio: WavAudio, frequency: Double, ratio minRatio: Double = 0.5, minDbfs: Double = -45
    ) -> Report {
        let n = audio.sampleRate / 50  // 20 ms
        let floor = pow(10, minDbfs / 10)
        var report = Report(frequency: frequency, windows: 0, hits: 0, longestRunSeconds: 0)
        guard n > 0 else { return report }
        var run = 0
        var start = 0
        while start + n <= audio.samples.count {
            let (r, ms) = ratio(audio.samples[start..<start + n], sampleRate: audio.sampleRate, frequency: frequency)
            report.windows += 1
            if r >= minRatio && ms >= floor {
                report.hits += 1
                run += 1
                report.longestRunSeconds = max(report.longestRunSeconds, Double(run) * 0.02)
            } else {
                run = 0
            }
            start += n
        }
        return report
    }
}
