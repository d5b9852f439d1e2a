package dev.handset.android.core

/**
 * Decides when the default network changed enough that the core must register again from its
 * new address (`HandsetPhone.networkChanged`): another network became the default (Wi-Fi ↔
 * cellular, another Wi-Fi), the default network's own addresses changed (a new DHCP lease, IPv6
 * renumbering), or a network came back after none was left. The first network seen is where the
 * phone starts (it registers anyway), and losing the network tells the core nothing: there is
 * nowhere to register from until one is back. Not thread-safe: feed it from the network
 * callback's one thread.
 */
class DefaultNetworkChanges {
    private var network: Long? = null
    private var addresses: Set<String> = emptySet()
    private var lost = false

    /**
     * The default network, [network] (`Network.getNetworkHandle()`), now has [addresses]
     * (`LinkProperties.getLinkAddresses()`, as text). True when the core must be told. A network
     * without addresses yet is not usable and changes nothing.
     */
    fun update(network: Long, addresses: Collection<String>): Boolean {
        if (addresses.isEmpty()) return false
        val now = addresses.toSet()
        val first = this.network == null && !lost
        val changed = lost || this.network != network || this.addresses != now
        this.network = network
        this.addresses = now
        lost = false
        return changed && !first
    }

    /** The network [network] is gone; if it was the default, the next one counts as a change. */
    fun lost(network: Long) {
        if (this.network == network) lost = true
    }
}
