// WAV files and tone measurement for the JVM tests: write a 16-bit tone, read 16-bit PCM WAVs
// (any rate, channels mixed to mono), and a Goertzel detector over 20 ms windows (the same
// rule as the Rust core's tone_seconds and tests/peers/tone_check.py).
package dev.handset

import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import kotlin.math.PI
import kotlin.math.cos
import kotlin.math.sin
import kotlin.math.sqrt

class Pcm(val samples: ShortArray, val sampleRate: Int)

fun tone(freqHz: Double, seconds: Double, sampleRate: Int = 48_000, amplitude: Int = 8000): ShortArray =
    ShortArray((seconds * sampleRate).toInt()) { i ->
        (amplitude * sin(2 * PI * freqHz * i / sampleRate)).toInt().toShort()
    }

fun writeWav(file: File, pcm: Pcm) {
    val data = pcm.samples.toPcmBytes()
    val header = ByteBuffer.allocate(44).order(ByteOrder.LITTLE_ENDIAN)
    header.put("RIFF".toByteArray()).putInt(36 + data.size).put("WAVE".toByteArray())
    header.put("fmt ".toByteArray()).putInt(16).putShort(1).putShort(1)
        .putInt(pcm.sampleRate).putInt(pcm.sampleRate * 2).putShort(2).putShort(16)
    header.put("data".toByteArray()).putInt(data.size)
    file.writeBytes(header.array() + data)
}

/** Reads a 16-bit PCM WAV; null while it is not finalized (no data yet in its header). */
fun readWav(file: File): Pcm? {
    if (!file.isFile) return null
    val buf = ByteBuffer.wrap(file.readBytes()).order(ByteOrder.LITTLE_ENDIAN)
    if (buf.remaining() < 12) return null
    buf.position(12)
    var channels = 1
    var rate = 0
    var bits = 16
    while (buf.remaining() >= 8) {
        val id = ByteArray(4).also { buf.get(it) }.toString(Charsets.US_ASCII)
        val size = buf.int
        val start = buf.position()
        when (id) {
            "fmt " -> {
                buf.short
                channels = buf.short.toInt()
                rate = buf.int
                buf.int
                buf.short
                bits = buf.short.toInt()
            }
            "data" -> {
                require(bits == 16) { "$file: $bits-bit WAV" }
                val frames = minOf(size, buf.remaining()) / (2 * channels)
                if (frames == 0 || rate == 0) return null
                val mono = ShortArray(frames) {
                    var sum = 0
                    repeat(channels) { sum += buf.short }
                    (sum / channels).toShort()
                }
                return Pcm(mono, rate)
            }
        }
        buf.position(minOf(buf.limit(), start + size + (size and 1)))
    }
    return null
}

/** Waits (up to [timeoutMs]) for a WAV to be finalized, then reads it. */
fun awaitWav(file: File, timeoutMs: Long = 5000): Pcm {
    val deadline = System.currentTimeMillis() + timeoutMs
    while (true) {
        readWav(file)?.let { return it }
        check(System.currentTimeMillis() < deadline) { "$file was not written" }
        Thread.sleep(100)
    }
}

/**
 * Seconds of [pcm] in which [freqHz] dominates: 20 ms windows above -60 dBFS whose energy is
 * more than half at [freqHz] (Goertzel).
 */
fun toneSeconds(pcm: Pcm, freqHz: Double): Double {
    val n = pcm.sampleRate / 50
    val coeff = 2 * cos(2 * PI * freqHz / pcm.sampleRate)
    var windows = 0
    var w = 0
    while ((w + 1) * n <= pcm.samples.size) {
        var s1 = 0.0
        var s2 = 0.0
        var energy = 0.0
        for (i in w * n until (w + 1) * n) {
            val x = pcm.samples[i] / 32768.0
            energy += x * x
            val s0 = x + coeff * s1 - s2
            s2 = s1
            s1 = s0
        }
        val power = s1 * s1 + s2 * s2 - coeff * s1 * s2
        val rms = sqrt(energy / n)
        if (rms > 0.001 && energy > 0 && 2 * power / (n * energy) > 0.5) windows++
        w++
    }
    return windows * 0.02
}
