//! Contacts (local import, search, caller ID), history, blocklist, speed dial, MWI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Mutex;

use common::TempDb;
use handset_store::blocklist;
use handset_store::contacts::{
    self, CompanyContact, ContactKind, ContactsSource, ImportError, ImportReport, MatchRank,
    SourceContact, SourceError,
};
use handset_store::history::{self, CallRecord, Direction, HistoryQuery};
use handset_store::{Store, StoreError, speed_dial, voicemail};

struct FakeAddressBook(Mutex<Result<Vec<SourceContact>, SourceError>>);

impl FakeAddressBook {
    fn new(contacts: Vec<SourceContact>) -> FakeAddressBook {
        FakeAddressBook(Mutex::new(Ok(contacts)))
    }
    fn set(&self, contacts: Result<Vec<SourceContact>, SourceError>) {
        *self.0.lock().unwrap() = contacts;
    }
}

impl ContactsSource for FakeAddressBook {
    fn contacts(&self) -> Result<Vec<SourceContact>, SourceError> {
        self.0.lock().unwrap().clone()
    }
}

fn contact(id: &str, name: &str, numbers: &[(&str, &str)]) -> SourceContact {
    SourceContact {
        source_id: id.into(),
        display_name: name.into(),
        numbers: numbers
            .iter()
            .map(|(l, n)| (l.to_string(), n.to_string()))
            .collect(),
        emails: vec![],
        company: None,
    }
}

fn address_book() -> Vec<SourceContact> {
    vec![
        contact(
            "1",
            "Jürgen Müller",
            &[("mobile", "+49 170 1234567"), ("home", "030 987654")],
        ),
        contact("2", "Anna Schmidt", &[("work", "(030) 555-1234")]),
        contact("3", "Bob Smith", &[("mobile", "+1 (202) 555-0123 x 7")]),
        SourceContact {
            emails: vec!["zoe@example.com".into()],
            company: Some("ACME".into()),
            ..contact("4", "Zoë", &[])
        },
    ]
}

#[test]
fn local_import_is_a_full_sync() {
    let db = TempDb::new("import");
    let store = Store::open(db.path()).unwrap();
    let book = FakeAddressBook::new(address_book());

    let report = contacts::import_local(&store, &book).unwrap();
    assert_eq!(
        report,
        ImportReport {
            added: 4,
            updated: 0,
            deleted: 0
        }
    );
    let zoe = store
        .read(|c| contacts::local_contact(c, "4"))
        .unwrap()
        .unwrap();
    assert_eq!(zoe.contact, address_book()[3]);

    // Same again: nothing changes.
    let report = contacts::import_local(&store, &book).unwrap();
    assert_eq!(report, ImportReport::default());

    // Anna renamed, Bob deleted, Carla new, Jürgen's numbers reordered.
    let mut next = address_book();
    next[1].display_name = "Anna Schmidt-Lang".into();
    next.remove(2);
    next[0].numbers.reverse();
    next.push(contact("5", "Carla", &[("mobile", "0171 2223334")]));
    book.set(Ok(next.clone()));
    let report = contacts::import_local(&store, &book).unwrap();
    assert_eq!(
        report,
        ImportReport {
            added: 1,
            updated: 2,
            deleted: 1
        }
    );
    assert_eq!(store.read(contacts::local_count).unwrap(), 4);
    assert!(
        store
            .read(|c| contacts::local_contact(c, "3"))
            .unwrap()
            .is_none()
    );
    let jurgen = store
        .read(|c| contacts::local_contact(c, "1"))
        .unwrap()
        .unwrap();
    assert_eq!(jurgen.contact.numbers, next[0].numbers);

    // A failing address book changes nothing.
    book.set(Err(SourceError {
        message: "permission denied".into(),
    }));
    let err = contacts::import_local(&store, &book).unwrap_err();
    assert!(matches!(err, ImportError::Source(_)));
    assert_eq!(store.read(contacts::local_count).unwrap(), 4);

    // Duplicate ids are bad input; nothing changes.
    book.set(Ok(vec![contact("9", "A", &[]), contact("9", "B", &[])]));
    let err = contacts::import_local(&store, &book).unwrap_err();
    assert!(
        matches!(err, ImportError::Store(StoreError::InvalidInput(_))),
        "{err}"
    );
    assert_eq!(store.read(contacts::local_count).unwrap(), 4);

    // An empty address book deletes everything.
    book.set(Ok(vec![]));
    let report = contacts::import_local(&store, &book).unwrap();
    assert_eq!(report.deleted, 4);
    let orphans: i64 = store
        .read(|c| Ok(c.query_row("SELECT count(*) FROM local_numbers", [], |r| r.get(0))?))
        .unwrap();
    assert_eq!(
        orphans, 0,
        "numbers are deleted with their contact (foreign keys)"
    );
}

fn store_with_contacts(db: &TempDb) -> Store {
    let store = Store::open(db.path()).unwrap();
    store
        .write(|tx| contacts::apply_local_contacts(tx, &address_book()))
        .unwrap();
    store
        .write(|tx| {
            for c in [
                CompanyContact {
                    id: "e100".into(),
                    display_name: "Reception".into(),
                    numbers: vec![("extension".into(), "100".into())],
                    department: Some("Front desk".into()),
                    emails: vec![],
                },
                CompanyContact {
                    id: "e204".into(),
                    display_name: "Anna Schmidt".into(),
                    numbers: vec![
                        ("extension".into(), "204".into()),
                        ("work".into(), "+49 30 5551234".into()),
                    ],
                    department: Some("Sales".into()),
                    emails: vec![],
                },
                CompanyContact {
                    id: "e300".into(),
                    display_name: "Marie-Hélène Dubois".into(),
                    numbers: vec![("work".into(), "+33 1 23 45 67 89".into())],
                    department: None,
                    emails: vec![],
                },
            ] {
                contacts::upsert_company(tx, "https://pbx.example.com/api", &c)?;
            }
            Ok(())
        })
        .unwrap();
    store
}

#[test]
fn caller_id_uses_the_matching_rule() {
    let db = TempDb::new("callerid");
    let store = store_with_contacts(&db);
    let lookup = |n: &str, cc: &str| store.read(|c| contacts::lookup_caller(c, n, cc)).unwrap();

    // E.164 against a national form, SIP URI, 00 prefix.
    let who = lookup("sip:+491701234567@pbx.example.com", "DE").unwrap();
    assert_eq!(
        (who.display_name.as_str(), who.kind, who.label.as_str()),
        ("Jürgen Müller", ContactKind::Local, "mobile")
    );
    assert_eq!(
        lookup("0049 170 1234567", "DE").unwrap().display_name,
        "Jürgen Müller"
    );
    assert_eq!(
        lookup("01701234567", "DE").unwrap().display_name,
        "Jürgen Müller"
    );
    // NANP, the stored extension is ignored.
    assert_eq!(
        lookup("tel:+1-202-555-0123", "US").unwrap().display_name,
        "Bob Smith"
    );
    assert_eq!(
        lookup("2025550123", "US").unwrap().display_name,
        "Bob Smith"
    );
    // Short extension, company directory.
    let who = lookup("sip:100@pbx.example.com", "DE").unwrap();
    assert_eq!(
        (who.display_name.as_str(), who.kind, who.id.as_str()),
        ("Reception", ContactKind::Company, "e100")
    );
    assert!(lookup("101", "DE").is_none());
    // Both a local and a company contact have +49 30 5551234: the local one wins.
    let who = lookup("+49305551234", "DE").unwrap();
    assert_eq!(
        (who.display_name.as_str(), who.kind),
        ("Anna Schmidt", ContactKind::Local)
    );
    // Accented company name.
    assert_eq!(
        lookup("0033123456789", "DE").unwrap().display_name,
        "Marie-Hélène Dubois"
    );
    // Fallback (last 8 digits) when the country is wrong for the stored national form
    // ("030 987654" has no E.164 form in the US).
    let who = lookup("+49 30 987654", "US").unwrap();
    assert_eq!(
        (who.display_name.as_str(), who.label.as_str()),
        ("Jürgen Müller", "home")
    );
    // No false positives.
    assert!(lookup("+44 170 1234568", "DE").is_none());
    assert!(lookup("", "DE").is_none());
    assert!(lookup("sip:alice@example.com", "DE").is_none());
}

#[test]
fn search_by_name_is_ranked_and_accent_folded() {
    let db = TempDb::new("search-name");
    let store = store_with_contacts(&db);
    let search = |q: &str| store.read(|c| contacts::search(c, q, "DE")).unwrap();

    let hits = search("anna schmidt");
    assert!(hits.iter().all(|h| h.rank == MatchRank::Exact), "{hits:?}");
    // Local first, then company with both numbers.
    let kinds: Vec<_> = hits.iter().map(|h| (h.kind, h.number.as_deref())).collect();
    assert_eq!(
        kinds,
        vec![
            (ContactKind::Local, Some("(030) 555-1234")),
            (ContactKind::Company, Some("+49 30 5551234")),
            (ContactKind::Company, Some("204")),
        ]
    );

    // "muller" finds "Müller" (prefix of a word), "MÜL" too.
    let hits = search("muller");
    assert_eq!(hits.len(), 2, "one per number: {hits:?}");
    assert!(
        hits.iter()
            .all(|h| h.display_name == "Jürgen Müller" && h.rank == MatchRank::Prefix)
    );
    assert_eq!(search("MÜL").len(), 2);
    assert_eq!(search("helene")[0].display_name, "Marie-Hélène Dubois");

    // exact > prefix > substring
    let hits = search("s");
    let ranks: Vec<_> = hits
        .iter()
        .map(|h| (h.display_name.as_str(), h.rank))
        .collect();
    assert_eq!(ranks[0], ("Anna Schmidt", MatchRank::Prefix));
    assert!(
        ranks.contains(&("Bob Smith", MatchRank::Prefix)),
        "{ranks:?}"
    );
    assert!(
        ranks.contains(&("Marie-Hélène Dubois", MatchRank::Substring)),
        "{ranks:?}"
    );
    let first_substring = ranks
        .iter()
        .position(|(_, r)| *r == MatchRank::Substring)
        .unwrap();
    assert!(
        ranks[..first_substring]
            .iter()
            .all(|(_, r)| *r == MatchRank::Prefix)
    );

    // A contact without numbers is found with number None.
    let zoe = search("zoe");
    assert_eq!(zoe.len(), 1);
    assert_eq!(
        (zoe[0].number.as_ref(), zoe[0].rank),
        (None, MatchRank::Exact)
    );

    // LIKE wildcards are literal.
    assert!(search("%").is_empty());
    assert!(search("_").is_empty());
    assert!(search("   ").is_empty());
}

#[test]
fn search_by_number_is_ranked() {
    let db = TempDb::new("search-number");
    let store = store_with_contacts(&db);
    let search = |q: &str| store.read(|c| contacts::search(c, q, "DE")).unwrap();

    // Exact by the matching rule although the digits differ.
    let hits = search("+49 170 1234567");
    assert_eq!(hits[0].display_name, "Jürgen Müller");
    assert_eq!(hits[0].rank, MatchRank::Exact);

    // Partial digits: prefix before substring.
    // Typed with the trunk prefix, stored internationally: still a prefix match.
    let hits = search("0170");
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!(
        (hits[0].display_name.as_str(), hits[0].rank),
        ("Jürgen Müller", MatchRank::Prefix)
    );
    let hits = search("170");
    assert_eq!(hits[0].rank, MatchRank::Prefix, "{hits:?}");
    assert_eq!(hits[0].display_name, "Jürgen Müller");
    let hits = search("555");
    let ranked: Vec<_> = hits
        .iter()
        .map(|h| (h.display_name.as_str(), h.rank))
        .collect();
    assert!(
        ranked.contains(&("Anna Schmidt", MatchRank::Substring)),
        "{ranked:?}"
    );
    assert!(
        ranked.windows(2).all(|w| w[0].1 <= w[1].1),
        "sorted by rank: {ranked:?}"
    );

    // Short extension: exact.
    let hits = search("204");
    assert_eq!(hits[0].rank, MatchRank::Exact);
    assert_eq!(hits[0].number.as_deref(), Some("204"));

    // Fewer than 3 digits: treated as a name query (nothing).
    assert!(search("20").is_empty());
}

fn incoming(started: i64, answered: Option<i64>, ended: i64) -> CallRecord {
    CallRecord {
        direction: Direction::Incoming,
        remote_number: "+49301234567".into(),
        remote_display_name: Some("Anna".into()),
        account: "sip:me@pbx.example.com".into(),
        started_at: started,
        answered_at: answered,
        ended_at: ended,
        end_reason: if answered.is_some() {
            "remote hangup"
        } else {
            "cancelled"
        }
        .into(),
        answered_elsewhere: false,
        declined: false,
    }
}

#[test]
fn history_records_missed_and_paging() {
    let db = TempDb::new("history");
    let store = Store::open(db.path()).unwrap();
    let t0 = 1_700_000_000_000_i64;
    let ids = store
        .write(|tx| {
            Ok(vec![
                // answered: 60 s of talk
                history::record_call(tx, &incoming(t0, Some(t0 + 5_000), t0 + 65_000))?,
                // never answered: missed
                history::record_call(tx, &incoming(t0 + 100_000, None, t0 + 120_000))?,
                // answered elsewhere: not missed
                history::record_call(
                    tx,
                    &CallRecord {
                        answered_elsewhere: true,
                        declined: false,
                        end_reason: "Call completed elsewhere".into(),
                        ..incoming(t0 + 200_000, None, t0 + 203_000)
                    },
                )?,
                // outgoing, not answered: not missed
                history::record_call(
                    tx,
                    &CallRecord {
                        direction: Direction::Outgoing,
                        end_reason: "busy".into(),
                        ..incoming(t0 + 300_000, None, t0 + 301_000)
                    },
                )?,
                // another missed one
                history::record_call(tx, &incoming(t0 + 400_000, None, t0 + 410_000))?,
                // declined here by the user: not missed
                history::record_call(
                    tx,
                    &CallRecord {
                        declined: true,
                        end_reason: "declined".into(),
                        ..incoming(t0 + 500_000, None, t0 + 504_000)
                    },
                )?,
            ])
        })
        .unwrap();

    let answered = store.read(|c| history::get(c, ids[0])).unwrap().unwrap();
    assert_eq!(answered.duration_ms, 60_000);
    assert!(!answered.missed && answered.seen);
    let missed = store.read(|c| history::get(c, ids[1])).unwrap().unwrap();
    assert_eq!(missed.duration_ms, 0);
    assert!(missed.missed && !missed.seen);
    assert!(
        !store
            .read(|c| history::get(c, ids[2]))
            .unwrap()
            .unwrap()
            .missed
    );
    assert!(
        !store
            .read(|c| history::get(c, ids[3]))
            .unwrap()
            .unwrap()
            .missed
    );
    let declined = store.read(|c| history::get(c, ids[5])).unwrap().unwrap();
    assert!(!declined.missed && declined.seen);
    assert_eq!(store.read(history::missed_count).unwrap(), 2);

    // Newest first, pages of 2.
    let mut seen_ids = Vec::new();
    let mut query = HistoryQuery {
        limit: 2,
        ..HistoryQuery::default()
    };
    loop {
        let page = store.read(|c| history::list(c, &query)).unwrap();
        assert!(page.entries.len() <= 2);
        seen_ids.extend(page.entries.iter().map(|e| e.id));
        match page.next {
            Some(cursor) => query.before = Some(cursor),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen_ids, newest_first);

    let missed_only = store
        .read(|c| {
            history::list(
                c,
                &HistoryQuery {
                    missed_only: true,
                    ..HistoryQuery::default()
                },
            )
        })
        .unwrap();
    assert_eq!(
        missed_only.entries.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[4], ids[1]]
    );

    assert_eq!(store.write(history::mark_missed_seen).unwrap(), 2);
    assert_eq!(store.read(history::missed_count).unwrap(), 0);
    assert!(
        store
            .read(|c| history::get(c, ids[1]))
            .unwrap()
            .unwrap()
            .seen
    );

    assert!(store.write(|tx| history::delete(tx, ids[0])).unwrap());
    assert!(!store.write(|tx| history::delete(tx, ids[0])).unwrap());
    assert_eq!(store.write(history::delete_all).unwrap(), 5);
    assert!(
        store
            .read(|c| history::list(c, &HistoryQuery::default()))
            .unwrap()
            .entries
            .is_empty()
    );
}

#[test]
fn history_rejects_impossible_times() {
    let db = TempDb::new("history-bad");
    let store = Store::open(db.path()).unwrap();
    for bad in [
        incoming(10, None, 5),
        incoming(10, Some(5), 20),
        incoming(10, Some(30), 20),
    ] {
        let err = store
            .write(|tx| history::record_call(tx, &bad))
            .unwrap_err();
        assert!(matches!(err, StoreError::InvalidInput(_)), "{err}");
    }
}

#[test]
fn blocklist_with_allow_override_and_attempt_log() {
    let db = TempDb::new("blocklist");
    let store = Store::open(db.path()).unwrap();
    store
        .write(|tx| {
            blocklist::block(tx, "+1 (900) 555-0100")?;
            blocklist::block(tx, "+1 (900) 555-0100")?; // idempotent
            blocklist::block(tx, "030 12345678")?;
            blocklist::block(tx, "sip:666@pbx")?;
            Ok(())
        })
        .unwrap();
    assert_eq!(store.read(blocklist::rules).unwrap().len(), 3);
    let blocked = |n: &str, cc: &str| store.read(|c| blocklist::is_blocked(c, n, cc)).unwrap();
    assert!(blocked("19005550100", "US"));
    assert!(blocked("sip:+19005550100@carrier", "DE"));
    assert!(blocked("+49 30 12345678", "DE"));
    assert!(blocked("666", "DE"));
    assert!(!blocked("+19005550101", "US"));
    assert!(!blocked("667", "DE"));

    // Allowed overrides blocked.
    store
        .write(|tx| blocklist::allow(tx, "+49 30 12345678"))
        .unwrap();
    assert!(!blocked("03012345678", "DE"));
    assert_eq!(
        store
            .write(|tx| blocklist::unallow(tx, "030 12345678", "DE"))
            .unwrap(),
        1
    );
    assert!(blocked("03012345678", "DE"));

    // Unblock by any matching form.
    assert_eq!(
        store
            .write(|tx| blocklist::unblock(tx, "+19005550100", "US"))
            .unwrap(),
        1
    );
    assert!(!blocked("19005550100", "US"));

    // Bad input.
    assert!(matches!(
        store
            .write(|tx| blocklist::block(tx, "anonymous"))
            .unwrap_err(),
        StoreError::InvalidInput(_)
    ));

    // The log of rejected attempts, newest first.
    store
        .write(|tx| {
            blocklist::log_blocked_attempt(tx, "666", 1_000)?;
            blocklist::log_blocked_attempt(tx, "+49 30 12345678", 3_000)?;
            blocklist::log_blocked_attempt(tx, "666", 2_000)?;
            Ok(())
        })
        .unwrap();
    let log = store.read(blocklist::blocked_attempts).unwrap();
    assert_eq!(
        log.iter().map(|a| a.at).collect::<Vec<_>>(),
        vec![3_000, 2_000, 1_000]
    );
    assert_eq!(log[0].number, "+49 30 12345678");
    assert_eq!(store.write(blocklist::clear_blocked_attempts).unwrap(), 3);
}

#[test]
fn speed_dial_digits_1_to_9() {
    let db = TempDb::new("speed");
    let store = Store::open(db.path()).unwrap();
    store
        .write(|tx| {
            speed_dial::set(tx, 1, "*97", Some("Voicemail"))?;
            speed_dial::set(tx, 9, "+49 30 1234567", None)?;
            speed_dial::set(tx, 9, "+49 30 7654321", Some("Office"))?; // replaces
            Ok(())
        })
        .unwrap();
    let all = store.read(speed_dial::list).unwrap();
    assert_eq!(all.len(), 2);
    let nine = store.read(|c| speed_dial::get(c, 9)).unwrap().unwrap();
    assert_eq!(
        (nine.number.as_str(), nine.label.as_deref()),
        ("+49 30 7654321", Some("Office"))
    );
    for bad in [0u8, 10, 255] {
        assert!(matches!(
            store
                .write(|tx| speed_dial::set(tx, bad, "1", None))
                .unwrap_err(),
            StoreError::InvalidInput(_)
        ));
    }
    assert!(store.write(|tx| speed_dial::clear(tx, 1)).unwrap());
    assert!(store.read(|c| speed_dial::get(c, 1)).unwrap().is_none());
}

#[test]
fn mwi_counts_per_account() {
    let db = TempDb::new("mwi");
    let store = Store::open(db.path()).unwrap();
    assert_eq!(store.read(|c| voicemail::mwi(c, "a")).unwrap(), None);
    store.write(|tx| voicemail::set_mwi(tx, "a", 2, 8)).unwrap();
    store.write(|tx| voicemail::set_mwi(tx, "b", 0, 1)).unwrap();
    store.write(|tx| voicemail::set_mwi(tx, "a", 3, 8)).unwrap();
    let a = store.read(|c| voicemail::mwi(c, "a")).unwrap().unwrap();
    assert_eq!((a.new, a.old), (3, 8));
    assert_eq!(
        store.read(|c| voicemail::mwi(c, "b")).unwrap().unwrap().old,
        1
    );
    assert!(store.write(|tx| voicemail::clear_mwi(tx, "a")).unwrap());
    assert_eq!(store.read(|c| voicemail::mwi(c, "a")).unwrap(), None);
}
