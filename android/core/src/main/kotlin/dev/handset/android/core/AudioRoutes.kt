package dev.handset.android.core

import dev.handset.AudioRoute

/**
 * The `android.media.AudioDeviceInfo.TYPE_*` values the route mapping reads, copied from the
 * SDK so the mapping is tested without Android (the glue's `PlatformConstantsTest` checks,
 * against android-all, that each equals the platform's).
 */
object AudioDeviceTypes {
    /** `TYPE_BUILTIN_EARPIECE`. */
    const val BUILTIN_EARPIECE = 1

    /** `TYPE_BUILTIN_SPEAKER`. */
    const val BUILTIN_SPEAKER = 2

    /** `TYPE_WIRED_HEADSET`. */
    const val WIRED_HEADSET = 3

    /** `TYPE_WIRED_HEADPHONES`. */
    const val WIRED_HEADPHONES = 4

    /** `TYPE_BLUETOOTH_SCO`. */
    const val BLUETOOTH_SCO = 7

    /** `TYPE_USB_HEADSET`. */
    const val USB_HEADSET = 22

    /** `TYPE_HEARING_AID`. */
    const val HEARING_AID = 23

    /** `TYPE_BLE_HEADSET`. */
    const val BLE_HEADSET = 26

    /** `TYPE_BLE_SPEAKER`. */
    const val BLE_SPEAKER = 27
}

/**
 * The speakerphone and Bluetooth SCO switches that select a route before API 31 (no
 * communication device API there).
 */
data class LegacyRouteSwitches(
    /** `AudioManager.isSpeakerphoneOn`. */
    val speakerphone: Boolean,
    /** Bluetooth SCO started and on. */
    val bluetoothSco: Boolean,
)

/**
 * Android's audio devices ↔ the core's four call audio routes. Which route a call uses is the
 * core's decision (its route rules); this only says what the devices are and how to reach one.
 */
object AndroidAudioRoutes {
    /** The route of an `AudioDeviceInfo` type; null for devices that carry no call audio. */
    fun routeOf(type: Int): AudioRoute? = when (type) {
        AudioDeviceTypes.BUILTIN_EARPIECE -> AudioRoute.EARPIECE
        AudioDeviceTypes.BUILTIN_SPEAKER -> AudioRoute.SPEAKER
        AudioDeviceTypes.BLUETOOTH_SCO, AudioDeviceTypes.BLE_HEADSET,
        AudioDeviceTypes.BLE_SPEAKER, AudioDeviceTypes.HEARING_AID,
        -> AudioRoute.BLUETOOTH
        AudioDeviceTypes.WIRED_HEADSET, AudioDeviceTypes.WIRED_HEADPHONES,
        AudioDeviceTypes.USB_HEADSET,
        -> AudioRoute.WIRED_HEADSET
        else -> null
    }

    /**
     * The routes a call could use, in the core's order, from the device types present: the
     * communication devices (API 31+) or the outputs ([legacy], before API 31, where the
     * speaker is not always listed as a device yet is always there).
     */
    fun available(deviceTypes: Collection<Int>, legacy: Boolean): List<AudioRoute> {
        val routes = deviceTypes.mapNotNull(::routeOf).toMutableSet()
        if (legacy) routes += AudioRoute.SPEAKER
        return AudioRoute.entries.filter { it in routes }
    }

    /**
     * The switches for [route] before API 31. The earpiece and a wired headset share one
     * path: the headset wins when plugged, so both turn the speaker and SCO off.
     */
    fun legacySwitches(route: AudioRoute): LegacyRouteSwitches = when (route) {
        AudioRoute.SPEAKER -> LegacyRouteSwitches(speakerphone = true, bluetoothSco = false)
        AudioRoute.BLUETOOTH -> LegacyRouteSwitches(speakerphone = false, bluetoothSco = true)
        AudioRoute.EARPIECE, AudioRoute.WIRED_HEADSET -> LegacyRouteSwitches(speakerphone = false, bluetoothSco = false)
    }

    /** The route in use before API 31, from the switches and the output device types. */
    fun legacyCurrent(switches: LegacyRouteSwitches, outputTypes: Collection<Int>): AudioRoute = when {
        switches.bluetoothSco -> AudioRoute.BLUETOOTH
        switches.speakerphone -> AudioRoute.SPEAKER
        outputTypes.any { routeOf(it) == AudioRoute.WIRED_HEADSET } -> AudioRoute.WIRED_HEADSET
        else -> AudioRoute.EARPIECE
    }
}
