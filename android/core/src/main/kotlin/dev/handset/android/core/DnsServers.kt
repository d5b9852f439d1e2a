package dev.handset.android.core

import java.net.Inet6Address
import java.net.InetAddress

/**
 * The network's DNS servers as the core takes them (`HandsetPhone.setDnsServers`). Android has
 * no /etc/resolv.conf: the glue hands over `LinkProperties.getDnsServers()` of the default
 * network whenever it changes.
 */
object DnsServers {
    /** The DNS port: `LinkProperties` lists addresses only. */
    const val PORT = 53

    /**
     * [addresses] as entries in their order: duplicates and unusable addresses (wildcard,
     * multicast) left out. An empty list makes the core fall back to the system's
     * configuration, which Android lacks: host names then fail until servers come.
     */
    fun entries(addresses: List<InetAddress>): List<String> {
        val out = LinkedHashSet<String>()
        for (address in addresses) {
            if (address.isAnyLocalAddress || address.isMulticastAddress) continue
            out += entry(address)
        }
        return out.toList()
    }

    /**
     * One server: `192.0.2.53:53`, `[2001:db8:0:0:0:0:0:53]:53`, or `[fe80:0:0:0:0:0:0:1%3]:53`
     * for a link-local server, whose numeric scope id (the interface index) the core needs to
     * reach it; an interface name (`%wlan0`) is not understood there.
     */
    fun entry(address: InetAddress): String {
        val host = address.hostAddress.substringBefore('%')
        return when (address) {
            is Inet6Address ->
                if (address.scopeId > 0) "[$host%${address.scopeId}]:$PORT" else "[$host]:$PORT"
            else -> "$host:$PORT"
        }
    }
}
