package dev.handset.android.core

import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test

class DefaultNetworkChangesTest {
    private val wifi = 100L
    private val cellular = 200L

    @Test
    fun theFirstNetworkIsWhereThePhoneStarts() {
        val changes = DefaultNetworkChanges()
        assertFalse(changes.update(wifi, listOf("192.168.1.2/24")))
        // The same properties again (DNS servers changed, say): nothing to do.
        assertFalse(changes.update(wifi, listOf("192.168.1.2/24")))
    }

    @Test
    fun anotherDefaultNetworkOrNewAddressesAreAChange() {
        val changes = DefaultNetworkChanges()
        changes.update(wifi, listOf("192.168.1.2/24"))
        assertTrue(changes.update(cellular, listOf("10.64.0.2/24")))
        assertFalse(changes.update(cellular, listOf("10.64.0.2/24")))
        // A new lease on the same network.
        assertTrue(changes.update(cellular, listOf("10.64.0.9/24")))
        // An IPv6 address added to it.
        assertTrue(changes.update(cellular, listOf("10.64.0.9/24", "2001:db8::9/64")))
    }

    @Test
    fun losingTheNetworkWaitsForTheNextOne() {
        val changes = DefaultNetworkChanges()
        changes.update(wifi, listOf("192.168.1.2/24"))
        changes.lost(cellular) // not the default: nothing
        assertFalse(changes.update(wifi, listOf("192.168.1.2/24")))
        changes.lost(wifi)
        // Back on the same network with the same address: the NAT in front may have forgotten us.
        assertTrue(changes.update(wifi, listOf("192.168.1.2/24")))
    }

    @Test
    fun aNetworkWithoutAddressesIsNotUsableYet() {
        val changes = DefaultNetworkChanges()
        changes.update(wifi, listOf("192.168.1.2/24"))
        assertFalse(changes.update(cellular, emptyList()))
        assertTrue(changes.update(cellular, listOf("10.64.0.2/24")))
    }

    @Test
    fun losingTheNetworkBeforeAnyWasSeenStillStartsQuietly() {
        val changes = DefaultNetworkChanges()
        changes.lost(wifi)
        assertFalse(changes.update(wifi, listOf("192.168.1.2/24")))
    }
}
