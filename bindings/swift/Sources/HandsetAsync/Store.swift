import Foundation
import Handset

// Conveniences over the phone's on-device data (`phone.store()`).

extension PhoneStore {
    /// The whole call history (only missed calls when `missedOnly`), newest first, read page
    /// by page (`pageSize` calls each, 1...1000) with the store's keyset cursor.
    public func allHistory(pageSize: UInt32 = 100, missedOnly: Bool = false) throws -> [HistoryEntry] {
        var entries: [HistoryEntry] = []
        var cursor: HistoryCursor?
        repeat {
            let page = try history(limit: pageSize, before: cursor, missedOnly: missedOnly)
            entries += page.entries
            cursor = page.next
        } while cursor != nil
        return entries
    }
}
