// JVM tests of the Kotlin bindings: they load the Linux build of libhandset_ffi.so through JNA
// (-Djna.library.path) and drive it from Kotlin only, against the loopback harness that
// bindings/kotlin/test.sh starts: Kamailio on 127.0.0.1:25060 and a baresip peer that answers
// by itself and plays a tone. Every packet stays on 127.0.0.1.
//
// System properties (set by test.sh): handset.proxy, handset.user, handset.password,
// handset.peer, handset.peerTone, handset.repo, handset.work. Without handset.proxy the
// interop tests are skipped (assumption failures) and only the local ones run.
package dev.handset

import java.io.File
import java.util.Collections
import java.util.UUID
import java.util.concurrent.LinkedBlockingQueue
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Assume.assumeTrue
import org.junit.Test

class HandsetTest {
    private val proxy: String? = System.getProperty("handset.proxy")
    private val user = System.getProperty("handset.user", "ic10")
    private val password = System.getProperty("handset.password", "$user-secret")
    private val peer = System.getProperty("handset.peer", "peer7")
    private val peerTone = System.getProperty("handset.peerTone", "600").toDouble()
    private val repo = File(System.getProperty("handset.repo", "."))
    private val work = File(System.getProperty("handset.work", System.getProperty("java.io.tmpdir")))
        .also { it.mkdirs() }

    private val loopback = PhoneConfig(bindAddress = "127.0.0.1:0")

    private fun account(id: String = user) = AccountConfig(
        accountId = id,
        server = "sip:$proxy",
        user = user,
        transport = Transport.UDP,
        expiresSecs = 300u,
    )

    private val pcmuPlain = defaultMediaConfig().copy(codecs = listOf(Codec.Pcmu), srtp = Srtp.OFF)

    private fun needsHarness() = assumeTrue("no Kamailio harness (handset.proxy unset)", proxy != null)

    private suspend fun registered(phone: HandsetPhone): Account {
        phone.storeSecret(user, StoredSecret.Password(password))
        val account = phone.addAccount(account())
        val state = account.awaitRegistration()
        assertTrue("registration: $state", state is RegistrationState.Registered)
        return account
    }

    /** Polls [condition] every 50 ms for up to 5 s (what other subscriptions deliver is asynchronous). */
    private suspend fun eventually(what: () -> String, condition: () -> Boolean) {
        withTimeout(5000) { while (!condition()) delay(50) }.also { assertTrue(what(), condition()) }
    }

    /** Runs baresip.sh (the peers harness) and returns its output. */
    private fun baresip(vararg args: String): String {
        val p = ProcessBuilder(listOf("bash", File(repo, "tests/peers/baresip.sh").path) + args)
            .redirectErrorStream(true).start()
        val out = p.inputStream.bufferedReader().readText()
        check(p.waitFor(30, TimeUnit.SECONDS) && p.exitValue() == 0) { "baresip.sh ${args.toList()}: $out" }
        return out.trim()
    }

    // --- local: no server needed -----------------------------------------------------------------

    @Test
    fun errorsArePublicExceptionsAndPlatformServicesAreCalled() = runBlocking {
        assertTrue(handsetVersion().startsWith("Handset/"))
        try {
            startPhone(PhoneConfig(bindAddress = "not an address"))
            fail("a bad bind address must throw")
        } catch (e: HandsetException.InvalidArgument) {
            assertTrue(e.message!!, e.message!!.contains("not an address"))
        }
        val contacts = object : ContactsSource {
            override fun contacts(): List<Contact> = throw SecurityException("READ_CONTACTS denied")
        }
        val push = object : PushTokenProvider {
            override fun pushToken() = PushToken(PushService.FCM, "token-1", "project-1")
        }
        startPhone(loopback, contacts = contacts, push = push).use { phone ->
            try {
                phone.addAccount(account("nobody"))
                fail("an account without a stored secret must throw")
            } catch (e: HandsetException.MissingSecret) {
                assertTrue(e.message!!.contains("nobody"))
            }
            // ICE settings are checked when the account is added; the TURN password never
            // shows in the error.
            phone.storeSecret("ice", StoredSecret.Password("pw"))
            val relayOnly = IceSettings(
                stunServers = listOf("127.0.0.1:3478"),
                turnServer = null,
                turnUser = "user",
                turnPassword = "turn-secret-5e1",
                relayOnly = true,
            )
            try {
                phone.addAccount(account("ice").copy(ice = relayOnly))
                fail("relay-only ICE without a TURN server must throw")
            } catch (e: HandsetException.InvalidArgument) {
                assertTrue(e.message!!, e.message!!.contains("needs a TURN server"))
                assertFalse(e.message!!.contains("turn-secret-5e1"))
            }
            val withTurn = relayOnly.copy(turnServer = "turn:127.0.0.1:3478;transport=tcp")
            assertEquals("ice", phone.addAccount(account("ice").copy(ice = withTurn, register = false)).accountId())
            try {
                phone.loadContacts()
                fail("a throwing contacts source must throw")
            } catch (e: HandsetException.Platform) {
                assertTrue(e.message!!, e.message!!.contains("contacts"))
            }
            assertEquals("token-1", phone.pushToken()?.token)
            // The call screen: the current decision first. Idle: the SDK only allows rotation.
            val idle = phone.callScreenDecisions().first()
            assertEquals(CallScreenDecision(false, false, false, true, false, IncomingUi.HIDDEN), idle)
            phone.updateCallScreen(CallScreenInput.Foreground(false))
            assertEquals(idle, phone.callScreen())
        }
    }

    // --- Kamailio --------------------------------------------------------------------------------

    @Test
    fun aPushIsReportedAtOnceAndADeclineEndsItInTheHistory() = runBlocking {
        val database = File(work, "kotlin-push.sqlite")
        listOf("", "-wal", "-shm").forEach { File(database.path + it).delete() }
        startPhone(loopback.copy(databasePath = database.path)).use { phone ->
            val events = Collections.synchronizedList(mutableListOf<PhoneEvent>())
            // The listener itself (not the Flow): subscribed before the push is handled, as
            // events carry no current value.
            val subscription = phone.subscribeEvents(object : PhoneEventListener {
                override fun onEvent(event: PhoneEvent) {
                    events += event
                }
            })
            val payload = """{"type":"incoming_call","call_id":"kotlin-1@pbx","from":"sip:+4930123456@pbx","from_name":"Carol"}"""
            val report = phone.handlePush(payload)
            assertEquals("+4930123456", report.callerNumber)
            assertEquals("Carol", report.callerName)
            assertEquals(report, phone.handlePush(payload))
            // The audio route state comes first on its Flow (no route platform: nothing).
            assertEquals(AudioRouteState(emptyList(), null), phone.audioRouteStates().first())
            assertTrue(phone.declinePushReport(report.reportId))
            eventually({ "$events" }) { events.isNotEmpty() }
            // One end reason for calls and push reports alike.
            assertEquals(PhoneEvent.PushReportEnded(report.reportId, EndReason.Declined), events.first())
            val history = phone.store()?.allHistory() ?: error("no store")
            assertEquals("+4930123456", history.single().remoteNumber)
            assertTrue(!history.single().missed)
            try {
                phone.handlePush("{not json")
                fail("a malformed payload must throw")
            } catch (e: HandsetException.InvalidPush) {
                assertTrue("${e.message}", e.message?.contains("push payload") == true)
            }
            subscription.close()
            phone.shutdown()
        }
    }

    @Test
    fun registersUnregistersAndSendsTheCurrentStateFirst() = runBlocking {
        needsHarness()
        withTimeout(30_000) {
            startPhone(loopback).use { phone ->
                val account = registered(phone)
                // A new subscriber gets the current state at once.
                assertTrue(account.registrationStates().first() is RegistrationState.Registered)
                assertTrue(account.registrationState() is RegistrationState.Registered)

                // A raw subscription, cancelled: nothing is delivered after cancel().
                val seen = LinkedBlockingQueue<RegistrationState>()
                val handle = account.subscribeRegistration(object : RegistrationListener {
                    override fun onRegistration(accountId: String, state: RegistrationState) {
                        seen.add(state)
                    }
                })
                assertTrue(seen.poll(5, TimeUnit.SECONDS) is RegistrationState.Registered)
                handle.cancel()
                assertTrue(handle.isFinished())
                handle.close()

                val collected = Collections.synchronizedList(mutableListOf<RegistrationState>())
                val collector = launch { account.registrationStates().collect { collected += it } }
                // A Flow subscribes when its producer first runs: wait for the current value.
                eventually({ "$collected" }) { collected.isNotEmpty() }
                account.unregister()
                account.awaitRegistrationState { it is RegistrationState.Unregistered }
                eventually({ "$collected" }) { collected.lastOrNull() is RegistrationState.Unregistered }
                collector.cancel()
                assertNull("cancelled subscription got ${seen.peek()}", seen.poll(300, TimeUnit.MILLISECONDS))
                assertTrue("$collected", collected.first() is RegistrationState.Registered)
                phone.shutdown()
            }
        }
    }

    @Test
    fun aWrongPasswordFailsWithoutRetry() = runBlocking {
        needsHarness()
        withTimeout(30_000) {
            startPhone(loopback).use { phone ->
                phone.storeSecret(user, StoredSecret.Password("wrong-password"))
                val account = phone.addAccount(account())
                val state = account.awaitRegistration()
                assertTrue("$state", state is RegistrationState.Failed)
                state as RegistrationState.Failed
                assertTrue("$state", state.reason is RegistrationFailure.AuthenticationFailed)
                assertNull(state.retryInMs)
                phone.shutdown()
            }
        }
    }

    // --- calls to baresip --------------------------------------------------------------------------

    /** The newest recording baresip made of what it received, once the call is closed there. */
    private fun baresipHeard(freqHz: Double): Double {
        baresip("wait", peer, "closed", "10")
        val wav = File(baresip("rec", peer, "dec").lines().last())
        return toneSeconds(awaitWav(wav), freqHz)
    }

    @Test
    fun callsBaresipWithWavAudioBothWays() = runBlocking {
        needsHarness()
        withTimeout(60_000) {
            val database = File(work, "kotlin-history.sqlite")
            listOf("", "-wal", "-shm").forEach { File(database.path + it).delete() }
            startPhone(loopback.copy(databasePath = database.path)).use { phone ->
                val account = registered(phone)
                val play = File(work, "kotlin-tone-440.wav").also { writeWav(it, Pcm(tone(440.0, 8.0), 48_000)) }
                val record = File(work, "kotlin-heard-wav.wav").also { it.delete() }
                val events = Collections.synchronizedList(mutableListOf<CallEvent>())
                val call = account.call(peer, AudioConfig.Wav(play.path, record.path), pcmuPlain)
                assertEquals(CallDirection.OUTGOING, call.direction())
                // The call's CallKit / Telecom id, made up by the core for an outgoing call.
                assertEquals(call.reportId(), UUID.fromString(call.reportId()).toString())
                // Subscribes before this coroutine goes on: the current state, then every update.
                val collector = launch(start = CoroutineStart.UNDISPATCHED) { call.events().collect { events += it } }
                val active = call.awaitAnswered()
                assertEquals("PCMU", active.codec)
                assertEquals(false, active.srtp)
                assertEquals(listOf(call), phone.calls())
                delay(4000)
                call.hangup()
                val ended = call.awaitEnded()
                eventually({ "$events" }) { events.lastOrNull()?.state is CallState.Ended }
                collector.cancel()
                assertEquals(EndReason.LocalHangup, ended.reason)
                val quality = ended.quality ?: error("no call quality")
                assertTrue("$quality", quality.packetsReceived > 150u && quality.packetsSent > 150u)
                assertTrue("$quality", quality.mos > 3.5)
                assertNull("the current state comes first: $events", events.first().update)
                assertTrue("$events", events.any { it.state is CallState.Active })
                assertTrue("$events", events.last().update is CallUpdate.Ended)
                assertTrue("$events", events.drop(1).all { it.update != null })
                assertTrue(phone.calls().isEmpty())

                val heard = toneSeconds(awaitWav(record), peerTone)
                assertTrue("Handset heard $heard s of baresip's $peerTone Hz", heard >= 2.0)
                val theirs = baresipHeard(440.0)
                assertTrue("baresip heard $theirs s of our 440 Hz", theirs >= 2.0)

                // The call, read back from the history in the phone's database.
                val history = phone.store()?.allHistory() ?: error("no store")
                assertEquals("$history", 1, history.size)
                val entry = history.single()
                assertEquals(CallDirection.OUTGOING, entry.direction)
                assertEquals(peer, entry.remoteNumber)
                assertTrue("$entry", entry.answeredAtMs != null && entry.durationMs >= 3000)
                assertTrue("$entry", !entry.missed)
                account.unregister()
                phone.shutdown()
            }
        }
    }

    @Test
    fun callsBaresipWithPlatformAudioThroughTheForeignTrait() = runBlocking {
        needsHarness()
        withTimeout(60_000) {
            val source = tone(520.0, 1.0)
            var pos = 0
            val heard = Collections.synchronizedList(mutableListOf<Short>())
            PacedPcmAudio(
                capture = { _, frame ->
                    for (i in frame.indices) frame[i] = source[(pos + i) % source.size]
                    pos = (pos + frame.size) % source.size
                },
                playout = { _, frame -> heard.addAll(frame.toList()) },
            ).use { platform ->
                startPhone(loopback, audio = platform).use { phone ->
                    val account = registered(phone)
                    // The raw subscription (registered when subscribeCalls returns, unlike a Flow's):
                    // it sees the call from its first update on.
                    val events = Collections.synchronizedList(mutableListOf<CallEvent>())
                    val subscription = phone.subscribeCalls(object : CallListener {
                        override fun onCall(call: Call, state: CallState, update: CallUpdate?) {
                            events += CallEvent(call, state, update)
                        }
                    })
                    val call = account.call(peer, AudioConfig.Foreign, pcmuPlain)
                    call.awaitAnswered()
                    // The call screen rules of handset-phone, fed by the call and the platform.
                    val screens = LinkedBlockingQueue<CallScreenDecision>()
                    phone.subscribeCallScreen(object : CallScreenListener {
                        override fun onCallScreen(decision: CallScreenDecision) {
                            screens.add(decision)
                        }
                    }).use {
                        val active = screens.poll(5, TimeUnit.SECONDS)!!
                        assertTrue("$active", active.showInCallUi && active.screenOffByProximity && !active.blankScreen)
                        phone.updateCallScreen(CallScreenInput.Proximity(Proximity.NEAR))
                        assertTrue(screens.poll(5, TimeUnit.SECONDS)!!.blankScreen)
                        phone.updateCallScreen(CallScreenInput.Route(AudioRoute.SPEAKER))
                        val speaker = screens.poll(5, TimeUnit.SECONDS)!!
                        assertTrue("$speaker", !speaker.screenOffByProximity && speaker.keepScreenOn)
                    }
                    call.sendDtmf("1#")
                    try {
                        call.sendDtmf("x")
                        fail("bad DTMF must throw")
                    } catch (e: HandsetException.InvalidArgument) {
                    }
                    delay(4000)
                    call.hangup()
                    val ended = call.awaitEnded()
                    eventually({ "$events" }) { events.lastOrNull()?.state is CallState.Ended }
                    subscription.close()
                    assertEquals(EndReason.LocalHangup, ended.reason)
                    eventually({ "${platform.log}" }) { platform.log.size == 2 }
                    assertEquals(listOf("start ${call.id()}", "stop ${call.id()}"), platform.log.toList())
                    assertTrue("$events", events.any { it.call == call && it.update is CallUpdate.Answered })
                    assertTrue("$events", events.last().state is CallState.Ended)

                    val ours = toneSeconds(Pcm(heard.toShortArray(), 48_000), peerTone)
                    assertTrue("platform audio heard $ours s of baresip's $peerTone Hz", ours >= 2.0)
                    val theirs = baresipHeard(520.0)
                    assertTrue("baresip heard $theirs s of the platform's 520 Hz", theirs >= 2.0)
                    account.unregister()
                    phone.shutdown()
                }
            }
        }
    }
}
