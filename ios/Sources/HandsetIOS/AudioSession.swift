#if canImport(AVFoundation) && os(iOS)
    import AVFoundation
    import Foundation
    import Handset
    import HandsetIOSCore
    import UIKit

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
    /// node's render callback. One call at a time. Muting is the core's (`Call.setMuted`).
    public final class CallAudioEngine: CallAudioIO {
        private let engine = AVAudioEngine()
        private let lock = NSLock()
        private var current: (id: UInt64, audio: ForeignAudio)?
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

        private func target() -> ForeignAudio? {
            lock.lock()
            defer { lock.unlock() }
            return current?.audio
        }

        private func capture(_ buffer: AVAudioPCMBuffer, converter: AVAudioConverter) {
            guard let audio = target() else { return }
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
            pcm.withUnsafeMutableBytes { raw in
                for i in 0..<count { raw.storeBytes(of: samples[i].littleEndian, toByteOffset: i * 2, as: Int16.self) }
            }
            // Muted or not: the core sends silence while the call is muted (`Call.setMuted`).
            audio.pushCapture(pcm: pcm)
        }

        private func render(frames: AVAudioFrameCount, into list: UnsafeMutablePointer<AudioBufferList>) {
            let buffers = UnsafeMutableAudioBufferListPointer(list)
            guard let data = buffers.first?.mData?.assumingMemoryBound(to: Float.self) else { return }
            guard let audio = target() else {
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
    /// The phone's `AudioRoutePlatform` on AVAudioSession: the routes are read from the shared
    /// session's current outputs and available inputs (`AudioRoutePlan`), and the core's
    /// choice is executed with `overrideOutputAudioPort` (speaker) and `setPreferredInput`
    /// (earpiece, wired headset, Bluetooth hands-free). Pass it to the phone
    /// (`HandsetPhone.start(..., audioRoutes:)`), then `start(phone:)`: route changes (a headset
    /// plugged, Bluetooth connecting) make the core read the routes again
    /// (`phone.audioRoutesChanged()`) and switch when its rules say so. Keep it while the
    /// phone runs: releasing it stops the reports.
    public final class AudioSessionRoutes: @unchecked Sendable {
        /// The platform to give the phone.
        public let platform: PlannedAudioRoutes
        private let lock = NSLock()
        private var observer: NSObjectProtocol?

        /// Routes over the shared session, on a device with an earpiece or without.
        public init(hasEarpiece: Bool) {
            platform = PlannedAudioRoutes(
                read: { AudioSessionRoutes.state(hasEarpiece: hasEarpiece) },
                execute: AudioSessionRoutes.apply)
        }

        /// Routes over the shared session of this device (an iPhone has an earpiece).
        @MainActor
        public convenience init() {
            self.init(hasEarpiece: UIDevice.current.userInterfaceIdiom == .phone)
        }

        /// Starts reporting route changes to `phone` (created with `platform`), and tells it the
        /// routes available now. Ends a previous start.
        public func start(phone: HandsetPhone) {
            stop()
            let observer = NotificationCenter.default.addObserver(
                forName: AVAudioSession.routeChangeNotification, object: nil, queue: nil
            ) { [weak phone] note in
                let raw = note.userInfo?[AVAudioSessionRouteChangeReasonKey] as? UInt
                let reason = raw.flatMap(AVAudioSession.RouteChangeReason.init(rawValue:))
                guard AudioRoutePlan.availabilityMayHaveChanged(AudioRouteChangeReason(reason)) else { return }
                try? phone?.audioRoutesChanged()
            }
            lock.lock()
            self.observer = observer
            lock.unlock()
            try? phone.audioRoutesChanged()
        }

        /// Stops reporting route changes.
        public func stop() {
            lock.lock()
            let observer = self.observer
            self.observer = nil
            lock.unlock()
            if let observer { NotificationCenter.default.removeObserver(observer) }
        }

        deinit { stop() }

        /// The shared session's routes now.
        public static func state(hasEarpiece: Bool) -> AudioSessionRouteState {
            let session = AVAudioSession.sharedInstance()
            return AudioSessionRouteState(
                outputs: session.currentRoute.outputs.map(AudioPort.init),
                availableInputs: (session.availableInputs ?? []).map(AudioPort.init),
                hasEarpiece: hasEarpiece)
        }

        /// Applies `selection` to the shared session.
        public static func apply(_ selection: AudioRouteSelection) throws {
            let session = AVAudioSession.sharedInstance()
            let input = selection.preferredInputUID.flatMap { uid in
                session.availableInputs?.first { $0.uid == uid }
            }
            try session.setPreferredInput(input)
            try session.overrideOutputAudioPort(selection.speakerOverride ? .speaker : .none)
        }
    }

    extension AudioPortKind {
        /// The kind of an AVAudioSession port.
        public init(_ port: AVAudioSession.Port) {
            switch port {
            case .builtInReceiver: self = .builtInReceiver
            case .builtInSpeaker: self = .builtInSpeaker
            case .builtInMic: self = .builtInMic
            case .headphones: self = .headphones
            case .headsetMic: self = .headsetMic
            case .lineOut: self = .lineOut
            case .bluetoothHFP: self = .bluetoothHFP
            case .bluetoothA2DP: self = .bluetoothA2DP
            case .bluetoothLE: self = .bluetoothLE
            case .carAudio: self = .carAudio
            default: self = .other
            }
        }
    }

    extension AudioPort {
        /// A session port's kind and uid.
        public init(_ port: AVAudioSessionPortDescription) {
            self.init(kind: AudioPortKind(port.portType), uid: port.uid)
        }
    }

    extension AudioRouteChangeReason {
        /// The glue's view of a route change reason (nil: unknown).
        public init(_ reason: AVAudioSession.RouteChangeReason?) {
            switch reason ?? .unknown {
            case .newDeviceAvailable: self = .newDeviceAvailable
            case .oldDeviceUnavailable: self = .oldDeviceUnavailable
            case .categoryChange: self = .categoryChange
            case .override: self = .override
            case .wakeFromSleep: self = .wakeFromSleep
            case .noSuitableRouteForCategory: self = .noSuitableRouteForCategory
            case .routeConfigurationChange: self = .routeConfigurationChange
            default: self = .unknown
            }
        }
    }
#endif
