package dev.handset.android.core

import dev.handset.AudioRoute
import dev.handset.CallScreenDecision
import dev.handset.IncomingUi
import dev.handset.Proximity
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Test

class PlatformPiecesTest {
    @Test
    fun deviceTypesMapOntoTheFourRoutes() {
        assertEquals(AudioRoute.EARPIECE, AndroidAudioRoutes.routeOf(AudioDeviceTypes.BUILTIN_EARPIECE))
        assertEquals(AudioRoute.SPEAKER, AndroidAudioRoutes.routeOf(AudioDeviceTypes.BUILTIN_SPEAKER))
        for (t in listOf(AudioDeviceTypes.BLUETOOTH_SCO, AudioDeviceTypes.BLE_HEADSET, AudioDeviceTypes.BLE_SPEAKER, AudioDeviceTypes.HEARING_AID)) {
            assertEquals("$t", AudioRoute.BLUETOOTH, AndroidAudioRoutes.routeOf(t))
        }
        for (t in listOf(AudioDeviceTypes.WIRED_HEADSET, AudioDeviceTypes.WIRED_HEADPHONES, AudioDeviceTypes.USB_HEADSET)) {
            assertEquals("$t", AudioRoute.WIRED_HEADSET, AndroidAudioRoutes.routeOf(t))
        }
        // TYPE_BLUETOOTH_A2DP (8): media only, no call audio.
        assertNull(AndroidAudioRoutes.routeOf(8))
    }

    @Test
    fun availableRoutesComeInTheCoresOrderWithTheSpeakerAlwaysThereBeforeApi31() {
        val types = listOf(AudioDeviceTypes.USB_HEADSET, AudioDeviceTypes.BUILTIN_EARPIECE, 8, AudioDeviceTypes.WIRED_HEADSET)
        assertEquals(listOf(AudioRoute.EARPIECE, AudioRoute.WIRED_HEADSET), AndroidAudioRoutes.available(types, legacy = false))
        assertEquals(
            listOf(AudioRoute.EARPIECE, AudioRoute.SPEAKER, AudioRoute.WIRED_HEADSET),
            AndroidAudioRoutes.available(types, legacy = true),
        )
    }

    @Test
    fun legacySwitchesSelectAndReadBackEachRoute() {
        val outputsWithHeadset = listOf(AudioDeviceTypes.BUILTIN_SPEAKER, AudioDeviceTypes.WIRED_HEADSET)
        for (route in AudioRoute.entries) {
            val switches = AndroidAudioRoutes.legacySwitches(route)
            val outputs = if (route == AudioRoute.WIRED_HEADSET) outputsWithHeadset else listOf(AudioDeviceTypes.BUILTIN_SPEAKER)
            assertEquals("$route", route, AndroidAudioRoutes.legacyCurrent(switches, outputs))
        }
    }

    private fun decision(
        proximity: Boolean = false,
        keepOn: Boolean = false,
        rotation: Boolean = false,
        inCall: Boolean = false,
        incoming: IncomingUi = IncomingUi.HIDDEN,
    ) = CallScreenDecision(proximity, false, keepOn, rotation, inCall, incoming)

    @Test
    fun theWindowFollowsTheDecision() {
        assertEquals(WindowPlan(false, false, false, false), WindowPlan.of(decision(rotation = true)))
        assertEquals(WindowPlan(true, true, true, true), WindowPlan.of(decision(keepOn = true, incoming = IncomingUi.FULL_SCREEN)))
        assertEquals(WindowPlan(false, true, false, true), WindowPlan.of(decision(inCall = true)))
        assertEquals(WindowPlan(false, false, false, true), WindowPlan.of(decision(incoming = IncomingUi.NOTIFICATION)))
    }

    /** The lock and the sensor follow the core's proximity decision, each change once. */
    @Test
    fun proximityLockAndSensorFollowTheDecision() {
        val plan = ProximityPlan(hasLock = true, hasSensor = true)
        assertEquals(emptyList<ProximityEffect>(), plan.update(decision()))
        assertEquals(listOf(ProximityEffect.ACQUIRE_LOCK, ProximityEffect.START_SENSOR), plan.update(decision(proximity = true)))
        assertEquals(emptyList<ProximityEffect>(), plan.update(decision(proximity = true, inCall = true)))
        assertEquals(listOf(ProximityEffect.RELEASE_LOCK_WHEN_FAR, ProximityEffect.STOP_SENSOR), plan.update(decision()))
        plan.update(decision(proximity = true))
        assertEquals(listOf(ProximityEffect.STOP_SENSOR, ProximityEffect.RELEASE_LOCK_NOW), plan.close())
        assertEquals(emptyList<ProximityEffect>(), plan.close())
    }

    /** A tablet without the lock level still listens (the app blanks the screen itself). */
    @Test
    fun withoutTheLockOnlyTheSensorFollows() {
        val plan = ProximityPlan(hasLock = false, hasSensor = true)
        assertEquals(listOf(ProximityEffect.START_SENSOR), plan.update(decision(proximity = true)))
        assertEquals(emptyList<ProximityEffect>(), ProximityPlan(hasLock = false, hasSensor = false).update(decision(proximity = true)))
    }

    @Test
    fun binarySensorsReadNearBelowTheirRange() {
        assertEquals(Proximity.NEAR, ProximityPlan.reading(0f, 5f))
        assertEquals(Proximity.FAR, ProximityPlan.reading(5f, 5f))
    }

    @Test
    fun telecomAddressesUseSipOrTel() {
        assertEquals(TelecomAddress("tel", "+4930123"), TelecomAddress.of("tel:+4930123"))
        assertEquals(TelecomAddress("sip", "alice@pbx;transport=tls"), TelecomAddress.of("sips:alice@pbx;transport=tls"))
        assertEquals(TelecomAddress("sip", "bob@pbx"), TelecomAddress.of("sip:bob@pbx"))
        assertEquals(TelecomAddress("sip", "2002"), TelecomAddress.of("2002"))
    }

    @Test
    fun theDefaultCountryIsTheFirstKnownOne() {
        val noTelephony: () -> String? = { throw UnsupportedOperationException("no telephony") }
        assertEquals("DE", DefaultCountry.choose(sequenceOf(noTelephony, { " " }, { "de " }, { "FR" })))
        assertNull(DefaultCountry.choose(sequenceOf({ null }, { "" })))
    }

    /** A rotation stops and restarts the activity: not a trip to the background. */
    @Test
    fun foregroundIsReportedOnChangesOnly() {
        val tracker = ForegroundTracker()
        assertEquals(false, tracker.initially(false))
        assertEquals(true, tracker.activityStarted())
        assertNull(tracker.activityStarted())
        assertNull(tracker.activityStopped(changingConfigurations = false))
        assertNull(tracker.activityStopped(changingConfigurations = true))
        assertNull(tracker.activityStarted())
        assertEquals(false, tracker.activityStopped(changingConfigurations = false))
    }

    @Test
    fun fcmDataBecomesTheCoresJson() {
        val json = PushPayload.json(mapOf("type" to "incoming_call", "from_name" to "Zoë \"Z\"\n\u0001", "call_id" to "a\\b"))
        assertEquals("{\"call_id\":\"a\\\\b\",\"from_name\":\"Zoë \\\"Z\\\"\\n\\u0001\",\"type\":\"incoming_call\"}", json)
        assertEquals("{}", PushPayload.json(emptyMap()))
    }
}
