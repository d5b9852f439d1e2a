package dev.handset.android

import android.Manifest
import android.content.Context
import android.content.pm.PackageManager
import android.media.AudioAttributes
import android.media.AudioFormat
import android.media.AudioRecord
import android.media.AudioTrack
import android.media.MediaRecorder
import android.media.audiofx.AcousticEchoCanceler
import android.media.audiofx.NoiseSuppressor
import android.os.Process
import android.util.Log
import dev.handset.AudioDeviceFactory
import dev.handset.ForeignAudio
import dev.handset.PlatformException
import dev.handset.pullPlayout
import dev.handset.pushCapture
import java.util.concurrent.ConcurrentHashMap

/**
 * The phone's platform audio on Android: an [AudioRecord] on the VOICE_COMMUNICATION source
 * (the platform's echo canceller and noise suppressor) and an [AudioTrack] with
 * USAGE_VOICE_COMMUNICATION (routed like a call, volume on the call stream), moving 48 kHz mono
 * 16-bit PCM through the call's [ForeignAudio].
 *
 * Each call gets two threads at audio priority, one per direction, each paced by its blocking
 * read or write: the capture thread clocks the media pipeline (the FFI contract), the playout
 * thread pulls what the jitter buffer has. Without a microphone (RECORD_AUDIO refused, or the
 * recorder failed) the playout thread pushes silence in its place so the call's media still runs
 * and the far end is still heard.
 */
class AndroidAudio(context: Context) : AudioDeviceFactory {
    private val context = context.applicationContext
    private val calls = ConcurrentHashMap<ULong, CallAudio>()

    /** Opens the devices and starts both threads; the core calls this when the call needs audio. */
    override fun startAudio(callId: ULong, audio: ForeignAudio) {
        val track = try {
            newTrack(audio.sampleRate().toInt())
        } catch (e: Exception) {
            audio.close()
            throw PlatformException.Failed("AudioTrack: $e")
        }
        val record = if (context.checkSelfPermission(Manifest.permission.RECORD_AUDIO) ==
            PackageManager.PERMISSION_GRANTED
        ) {
            try {
                newRecord(audio.sampleRate().toInt())
            } catch (e: Exception) {
                Log.w(TAG, "call $callId: no microphone ($e); sending silence")
                null
            }
        } else {
            Log.w(TAG, "call $callId: RECORD_AUDIO not granted; sending silence")
            null
        }
        val call = CallAudio(callId, audio, record, track)
        calls.put(callId, call)?.stop()
        call.start()
    }

    /** Stops the threads and releases the devices of [callId] (the call ended). */
    override fun stopAudio(callId: ULong) {
        calls.remove(callId)?.stop()
    }

    private fun newTrack(rate: Int): AudioTrack {
        val min = AudioTrack.getMinBufferSize(rate, AudioFormat.CHANNEL_OUT_MONO, AudioFormat.ENCODING_PCM_16BIT)
        val track = AudioTrack.Builder()
            .setAudioAttributes(
                AudioAttributes.Builder()
                    .setUsage(AudioAttributes.USAGE_VOICE_COMMUNICATION)
                    .setContentType(AudioAttributes.CONTENT_TYPE_SPEECH)
                    .build(),
            )
            .setAudioFormat(
                AudioFormat.Builder()
                    .setSampleRate(rate)
                    .setChannelMask(AudioFormat.CHANNEL_OUT_MONO)
                    .setEncoding(AudioFormat.ENCODING_PCM_16BIT)
                    .build(),
            )
            // Two 20 ms frames at least: a smaller buffer underruns on a scheduling hiccup.
            .setBufferSizeInBytes(maxOf(min, 2 * FRAME_BYTES))
            .setTransferMode(AudioTrack.MODE_STREAM)
            .setPerformanceMode(AudioTrack.PERFORMANCE_MODE_LOW_LATENCY)
            .build()
        if (track.state != AudioTrack.STATE_INITIALIZED) {
            track.release()
            throw IllegalStateException("AudioTrack did not initialize")
        }
        return track
    }

    // Called only after the RECORD_AUDIO check above.
    @Suppress("MissingPermission")
    private fun newRecord(rate: Int): AudioRecord {
        val min = AudioRecord.getMinBufferSize(rate, AudioFormat.CHANNEL_IN_MONO, AudioFormat.ENCODING_PCM_16BIT)
        val record = AudioRecord(
            MediaRecorder.AudioSource.VOICE_COMMUNICATION,
            rate,
            AudioFormat.CHANNEL_IN_MONO,
            AudioFormat.ENCODING_PCM_16BIT,
            maxOf(min, 4 * FRAME_BYTES),
        )
        if (record.state != AudioRecord.STATE_INITIALIZED) {
            record.release()
            throw IllegalStateException("AudioRecord did not initialize")
        }
        // VOICE_COMMUNICATION usually brings these already; asking again is harmless and helps
        // devices whose audio HAL leaves them off.
        if (AcousticEchoCanceler.isAvailable()) {
            AcousticEchoCanceler.create(record.audioSessionId)?.enabled = true
        }
        if (NoiseSuppressor.isAvailable()) NoiseSuppressor.create(record.audioSessionId)?.enabled = true
        return record
    }

    /** The two threads and devices of one call. */
    private class CallAudio(
        private val callId: ULong,
        private val audio: ForeignAudio,
        private val record: AudioRecord?,
        private val track: AudioTrack,
    ) {
        @Volatile private var running = true
        private val frame = audio.frameSamples().toInt()
        private val capture = record?.let { rec ->
            thread("handset-capture-$callId") {
                val buffer = ShortArray(frame)
                rec.startRecording()
                while (running) {
                    val n = rec.read(buffer, 0, buffer.size)
                    if (n < 0) {
                        Log.w(TAG, "call $callId: AudioRecord.read failed ($n)")
                        break
                    }
                    if (n > 0) audio.pushCapture(if (n == buffer.size) buffer else buffer.copyOf(n))
                }
            }
        }
        private val playout = thread("handset-playout-$callId") {
            val buffer = ShortArray(frame)
            val silence = ShortArray(frame)
            track.play()
            while (running) {
                if (record == null) audio.pushCapture(silence)
                audio.pullPlayout(buffer)
                if (track.write(buffer, 0, buffer.size) < 0) {
                    Log.w(TAG, "call $callId: AudioTrack.write failed")
                    break
                }
            }
        }

        fun start() {
            capture?.start()
            playout.start()
        }

        /** Stops both threads, then releases the devices and the FFI handle. */
        fun stop() {
            running = false
            // stop() unblocks a read or write in progress.
            runCatching { record?.stop() }
            runCatching { track.pause(); track.flush() }
            capture?.join(JOIN_MS)
            playout.join(JOIN_MS)
            record?.release()
            track.release()
            audio.close()
        }

        private fun thread(name: String, body: () -> Unit) = Thread({
            Process.setThreadPriority(Process.THREAD_PRIORITY_URGENT_AUDIO)
            try {
                body()
            } catch (e: Exception) {
                Log.w(TAG, "$name: $e")
            }
        }, name)
    }

    private companion object {
        const val TAG = "HandsetAudio"
        const val FRAME_BYTES = 960 * 2
        const val JOIN_MS = 500L
    }
}
