#if canImport(AVFoundation) && os(iOS)
    import AVFoundation
    import Foundation
    import Handset
    import HandsetIOSCore

    /// The call's AVAudioSession configuration (`AudioSessionPlan.call`): playAndRecord +
    /// voiceChat. Only configured here: CallKit activates the session and reports it through
    /// `provider(_:didActivate:)`, where `GatedAudioDeviceFactory.sessionActivated()` starts media.
    public enum CallAudioSession {
        /// Sets the shared session's category, mode, rate and buffer from `plan` (does not
        /// activate it).
        public static func configure(_ plan: AudioSessionPlan = .call) throws {
            let session = AVAudioSession.sharedInstance()
            let category: AVAudioSession.Category
            switch plan.category {
            case .playAndRecord: category = .playAndRecord
            }
            let mode: AVAudioSession.Mode
            switch plan.mode {
            case .voiceChat: mode = .voiceChat
            }
            try session.setCategory(category, mode: mode, options: plan.allowBluetooth ? [.allowBluetooth] : [])
            try session.setPreferredSampleRate(plan.preferredSampleRate)
            try session.setPreferredIOBufferDuration(plan.preferredIOBufferDuration)
        }
    }

    /// `CallAudioIO` on AVAudioEngine: the microphone (voice processing on) is converted to
    /// 48 kHz mono s16le and pushed to the core; playout is pulled from the core in the source
    /// node's render callback. One call at a time.
    public final class CallAudioEngine: CallAudioIO {
        private let engine = AVAudioEngine()
        private let lock = NSLock()
        private var current: (id: UInt64, audio: ForeignAudio)?
        private var muted = false
        private var source: AVAudioSourceNode?
        private let coreFormat = AVAudioFormat(
            commonFormat: .pcmFormatInt16, sampleRate: 48_000, channels: 1, interleaved: true)!
        private let playFormat = AVAudioFormat(standardFormatWithSampleRate: 48_000, channels: 1)!

        /// An engine that moves no audio yet.
        public init() {}

        /// Starts capture and playout for `callId` (the session is active).
        public func start(callId: UInt64, audio: ForeignAudio) {
            lock.lock()
            current = (callId, audio)
            lock.unlock()
            let input = engine.inputNode
            try? input.setVoiceProcessingEnabled(true)
            let inputFormat = input.outputFormat(forBus: 0)
            guard let converter = AVAudioConverter(from: inputFormat, to: coreFormat) else { return }
            input.installTap(onBus: 0, bufferSize: 960, format: inputFormat) { [weak self] buffer, _ in
                self?.capture(buffer, converter: converter)
            }
            let source = AVAudioSourceNode(format: playFormat) { [weak self] _, _, frames, list -> OSStatus in
                self?.render(frames: frames, into: list)
                return noErr
            }
            self.source = source
            engine.attach(source)
            engine.connect(source, to: engine.mainMixerNode, format: playFormat)
            try? engine.start()
        }

        /// Stops the engine if `callId` is the call it serves.
        public func stop(callId: UInt64) {
            lock.lock()
            let mine = current?.id == callId
            if mine { current = nil }
            lock.unlock()
            guard mine else { return }
            engine.stop()
            engine.inputNode.removeTap(onBus: 0)
            if let source {
                engine.detach(source)
                self.source = nil
            }
        }

        /// Sends silence instead of the microphone while `muted`.
        public func setMuted(_ muted: Bool, callId: UInt64) {
            lock.lock()
            self.muted = muted
            lock.unlock()
        }

        private func target() -> (ForeignAudio, Bool)? {
            lock.lock()
            defer { lock.unlock() }
            return current.map { ($0.audio, muted) }
        }

        private func capture(_ buffer: AVAudioPCMBuffer, converter: AVAudioConverter) {
            guard let (audio, muted) = target() else { return }
            let ratio = coreFormat.sampleRate / buffer.format.sampleRate
            let capacity = AVAudioFrameCount(Double(buffer.frameLength) * ratio) + 16
            guard let out = AVAudioPCMBuffer(pcmFormat: coreFormat, frameCapacity: capacity) else { return }
            var fed = false
            var error: NSError?
            converter.convert(to: out, error: &error) { _, status in
                if fed {
                    status.pointee = .noDataNow
                    return nil
                }
                fed = true
                status.pointee = .haveData
                return buffer
            }
            guard error == nil, let samples = out.int16ChannelData?[0] else { return }
            let count = Int(out.frameLength)
            var pcm = Data(count: count * 2)
            if !muted {
                pcm.withUnsafeMutableBytes { raw in
                    for i in 0..<count { raw.storeBytes(of: samples[i].littleEndian, toByteOffset: i * 2, as: Int16.self) }
                }
            }
            // Muted: silence keeps the media clock running.
            audio.pushCapture(pcm: pcm)
        }

        private func render(frames: AVAudioFrameCount, into list: UnsafeMutablePointer<AudioBufferList>) {
            let buffers = UnsafeMutableAudioBufferListPointer(list)
            guard let data = buffers.first?.mData?.assumingMemoryBound(to: Float.self) else { return }
            guard let (audio, _) = target() else {
                for i in 0..<Int(frames) { data[i] = 0 }
                return
            }
            let pcm = audio.pullPlayout(samples: UInt32(frames))
            pcm.withUnsafeBytes { raw in
                let n = min(Int(frames), raw.count / 2)
                for i in 0..<n {
                    let s = Int16(littleEndian: raw.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))
                    data[i] = Float(s) / 32768
                }
                for i in n..<Int(frames) { data[i] = 0 }
            }
        }
    }
#endif
