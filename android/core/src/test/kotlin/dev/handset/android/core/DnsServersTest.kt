package dev.handset.android.core

import java.net.Inet6Address
import java.net.InetAddress
import org.junit.Assert.assertEquals
import org.junit.Test

class DnsServersTest {
    // Literals only: getByName parses them without a lookup.
    private fun ip(literal: String): InetAddress = InetAddress.getByName(literal)

    @Test
    fun addressesBecomeIpPortEntriesInOrderWithoutDuplicates() {
        val servers = listOf(ip("192.0.2.53"), ip("2001:db8::53"), ip("192.0.2.53"), ip("192.0.2.54"))
        assertEquals(
            listOf("192.0.2.53:53", "[2001:db8:0:0:0:0:0:53]:53", "192.0.2.54:53"),
            DnsServers.entries(servers),
        )
    }

    @Test
    fun linkLocalServersKeepTheirNumericScope() {
        val linkLocal = ip("fe80::1").address
        val scoped = Inet6Address.getByAddress(null, linkLocal, 3)
        assertEquals("[fe80:0:0:0:0:0:0:1%3]:53", DnsServers.entry(scoped))
        // Unscoped, it goes as it is (the core may still reach it on a single link).
        assertEquals("[fe80:0:0:0:0:0:0:1]:53", DnsServers.entry(ip("fe80::1")))
    }

    @Test
    fun unusableAddressesAreLeftOut() {
        val servers = listOf(ip("0.0.0.0"), ip("::"), ip("224.0.0.251"), ip("ff02::fb"), ip("198.51.100.1"))
        assertEquals(listOf("198.51.100.1:53"), DnsServers.entries(servers))
        assertEquals(emptyList<String>(), DnsServers.entries(emptyList()))
    }

    @Test
    fun ipv4MappedAddressesAreIpv4() {
        // Java turns ::ffff:a.b.c.d into an Inet4Address already.
        assertEquals("192.0.2.7:53", DnsServers.entry(ip("::ffff:192.0.2.7")))
    }
}
