package dev.handset.android

import android.media.AudioDeviceInfo
import android.telecom.DisconnectCause
import android.telecom.PhoneAccount
import dev.handset.android.core.AudioDeviceTypes
import dev.handset.android.core.DisconnectCode
import dev.handset.android.core.TelecomAddress
import org.junit.Assert.assertEquals
import org.junit.Test

/**
 * The pure module (`dev.handset.android.core`) names platform values without android.*: these
 * checks, compiled against android-all (the framework of the module's compileSdk), fail when a
 * copy differs from the platform's. The constants are compile-time constants: nothing of the
 * framework runs.
 */
class PlatformConstantsTest {
    @Test
    fun audioDeviceTypesAreThePlatformsValues() {
        val pairs = listOf(
            AudioDeviceTypes.BUILTIN_EARPIECE to AudioDeviceInfo.TYPE_BUILTIN_EARPIECE,
            AudioDeviceTypes.BUILTIN_SPEAKER to AudioDeviceInfo.TYPE_BUILTIN_SPEAKER,
            AudioDeviceTypes.WIRED_HEADSET to AudioDeviceInfo.TYPE_WIRED_HEADSET,
            AudioDeviceTypes.WIRED_HEADPHONES to AudioDeviceInfo.TYPE_WIRED_HEADPHONES,
            AudioDeviceTypes.BLUETOOTH_SCO to AudioDeviceInfo.TYPE_BLUETOOTH_SCO,
            AudioDeviceTypes.USB_HEADSET to AudioDeviceInfo.TYPE_USB_HEADSET,
            AudioDeviceTypes.HEARING_AID to AudioDeviceInfo.TYPE_HEARING_AID,
            AudioDeviceTypes.BLE_HEADSET to AudioDeviceInfo.TYPE_BLE_HEADSET,
            AudioDeviceTypes.BLE_SPEAKER to AudioDeviceInfo.TYPE_BLE_SPEAKER,
        )
        for ((ours, platform) in pairs) assertEquals(platform, ours)
    }

    /** Each code becomes the platform constant of the same name, and no two share one. */
    @Test
    fun disconnectCodesBecomeThePlatformConstantOfTheirName() {
        val platform = mapOf(
            "LOCAL" to DisconnectCause.LOCAL,
            "REMOTE" to DisconnectCause.REMOTE,
            "CANCELED" to DisconnectCause.CANCELED,
            "MISSED" to DisconnectCause.MISSED,
            "REJECTED" to DisconnectCause.REJECTED,
            "BUSY" to DisconnectCause.BUSY,
            "ERROR" to DisconnectCause.ERROR,
            "ANSWERED_ELSEWHERE" to DisconnectCause.ANSWERED_ELSEWHERE,
        )
        for (code in DisconnectCode.entries) assertEquals(code.name, platform[code.name], platformCode(code))
        assertEquals(DisconnectCode.entries.size, DisconnectCode.entries.map(::platformCode).toSet().size)
    }

    @Test
    fun telecomSchemesAreThePhoneAccountSchemes() {
        assertEquals(PhoneAccount.SCHEME_SIP, TelecomAddress.SIP)
        assertEquals(PhoneAccount.SCHEME_TEL, TelecomAddress.TEL)
    }
}
