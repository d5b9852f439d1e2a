use super::*;

/// The one clock read of these tests: an arbitrary origin for virtual time.
#[allow(clippy::disallowed_methods)]
fn t0() -> Instant {
    Instant::now()
}

const WAIT: Duration = Duration::from_secs(20);

fn incoming(call_id: &str, from: &str) -> Vec<u8> {
    format!(
        r#"{{"type":"incoming_call","call_id":"{call_id}","from":"{from}","from_name":"Alice Example","pbx":"PBX-0042","sent_at":1767225600000}}"#
    )
    .into_bytes()
}

fn cancel(call_id: &str) -> Vec<u8> {
    format!(r#"{{"type":"cancel","call_id":"{call_id}"}}"#).into_bytes()
}

fn drain(w: &mut PushWake) -> Vec<PushAction> {
    std::iter::from_fn(|| w.poll_action()).collect()
}

#[test]
fn contact_params_follow_rfc8599() {
    let apns = PushConfig::new(
        PushProvider::Apns,
        "a3f1c0de9b8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a",
        "ABCDE12345.com.example.handset.voip",
        WAIT,
    )
    .unwrap();
    assert_eq!(
        apns.contact_params(),
        vec![
            ("pn-provider".to_string(), Some("apns".to_string())),
            (
                "pn-prid".to_string(),
                Some(
                    "a3f1c0de9b8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a".to_string()
                )
            ),
            (
                "pn-param".to_string(),
                Some("ABCDE12345.com.example.handset.voip".to_string())
            ),
        ]
    );
    // FCM tokens carry ':' (allowed) and may carry characters a URI parameter may not.
    let fcm = PushConfig::new(
        PushProvider::Fcm,
        "dQw4w9WgXcQ:APA91b%H=x",
        "handset-12345",
        WAIT,
    )
    .unwrap();
    let params = fcm.contact_params();
    assert_eq!(params[0].1.as_deref(), Some("fcm"));
    assert_eq!(params[1].1.as_deref(), Some("dQw4w9WgXcQ:APA91b%25H%3Dx"));
    assert_eq!(params[2].1.as_deref(), Some("handset-12345"));
    // Without a project id there is no pn-param.
    let fcm = PushConfig::new(PushProvider::Fcm, "tok", "", WAIT).unwrap();
    assert_eq!(fcm.contact_params().len(), 2);
}

#[test]
fn push_config_is_checked_and_redacted() {
    let bad = [
        PushConfig::new(PushProvider::Apns, "", "T.topic", WAIT),
        PushConfig::new(PushProvider::Apns, "tok en", "T.topic", WAIT),
        PushConfig::new(PushProvider::Apns, "x".repeat(1025), "T.topic", WAIT),
        PushConfig::new(PushProvider::Apns, "tok", "no-team", WAIT),
        PushConfig::new(PushProvider::Apns, "tok", ".topic", WAIT),
        PushConfig::new(PushProvider::Fcm, "tok", "p", Duration::ZERO),
        PushConfig::new(PushProvider::Fcm, "tok", "a\nb", WAIT),
    ];
    for b in bad {
        assert!(matches!(b, Err(PushError::InvalidConfig(_))), "{b:?}");
    }
    let c = PushConfig::new(PushProvider::Fcm, "SECRET-TOKEN", "proj", WAIT).unwrap();
    assert!(!format!("{c:?}").contains("SECRET-TOKEN"));
    assert_eq!(PushProvider::parse("APNS"), Some(PushProvider::Apns));
    assert_eq!(PushProvider::parse("fcm"), Some(PushProvider::Fcm));
    assert_eq!(PushProvider::parse("webpush"), None);
}

#[test]
fn keepalive_policy_table() {
    let on = KeepAlivePolicy {
        run_keepalive_timers: true,
        register_expires: FOREGROUND_REGISTER_EXPIRES,
    };
    assert_eq!(keepalive_policy(true, false), on);
    assert_eq!(keepalive_policy(true, true), on);
    assert_eq!(keepalive_policy(false, false), on);
    assert_eq!(
        keepalive_policy(false, true),
        KeepAlivePolicy {
            run_keepalive_timers: false,
            register_expires: PUSH_REGISTER_EXPIRES,
        }
    );
}

#[test]
fn push_reports_at_once_and_asks_to_reregister() {
    let now = t0();
    let mut w = PushWake::new(WAIT);
    let r = w
        .handle_push(
            now,
            &incoming("a84b4c76e66710@pbx", "sip:+4930123456@pbx.example.com"),
        )
        .unwrap();
    assert_eq!(r.report_id, ReportId::for_call_id("a84b4c76e66710@pbx"));
    assert_eq!(r.call_id, "a84b4c76e66710@pbx");
    assert_eq!(r.caller_number, "+4930123456");
    assert_eq!(r.caller_name.as_deref(), Some("Alice Example"));
    assert_eq!(r.pbx.as_deref(), Some("PBX-0042"));
    assert_eq!(r.sent_at_unix_ms, Some(1_767_225_600_000));
    assert_eq!(r.already_ended, None);
    assert_eq!(drain(&mut w), vec![PushAction::Reregister]);
    assert_eq!(w.poll_timeout(), Some(now + WAIT));
    assert_eq!(w.status(r.report_id), Some(ReportStatus::Pending));

    // INVITE by Call-ID.
    let id = w.bind_invite(
        now + Duration::from_secs(2),
        "a84b4c76e66710@pbx",
        "sip:x@y",
    );
    assert_eq!(id, Some(r.report_id));
    assert_eq!(w.status(r.report_id), Some(ReportStatus::Bound));
    // Retransmission: same id; no timers left, no actions.
    assert_eq!(
        w.bind_invite(
            now + Duration::from_secs(3),
            "a84b4c76e66710@pbx",
            "sip:x@y"
        ),
        Some(r.report_id)
    );
    assert_eq!(w.poll_timeout(), None);
    w.handle_timeout(now + WAIT * 2);
    assert!(drain(&mut w).is_empty());
}

#[test]
fn invite_matched_by_caller_number_when_call_id_differs() {
    // A PBX behind a B2BUA: the INVITE's Call-ID is not the one in the push.
    let now = t0();
    let mut w = PushWake::new(WAIT);
    let a = w
        .handle_push(now, &incoming("push-1", "+49 30 123456"))
        .unwrap();
    let b = w
        .handle_push(
            now + Duration::from_millis(10),
            &incoming("push-2", "sip:1001@pbx"),
        )
        .unwrap();
    assert_eq!(w.pending_count(), 2);
    // One Reregister for both.
    assert_eq!(drain(&mut w), vec![PushAction::Reregister]);
    // National form of the same number.
    assert_eq!(
        w.bind_invite(
            now,
            "b2bua-77",
            "<sip:030123456@pbx.example.com;user=phone>"
        ),
        Some(a.report_id)
    );
    assert_eq!(
        w.bind_invite(now, "b2bua-78", "sip:1001@10.0.0.1"),
        Some(b.report_id)
    );
    assert_eq!(w.status_of_call("b2bua-78"), Some(ReportStatus::Bound));
    // Unrelated INVITE: no report.
    assert_eq!(w.bind_invite(now, "other", "sip:2002@pbx"), None);
    // Anonymous callers never match by number.
    let _ = w.handle_push(now, &incoming("push-3", "sip:anonymous@anonymous.invalid"));
    assert_eq!(
        w.bind_invite(now, "x", "sip:anonymous@anonymous.invalid"),
        None
    );
}

#[test]
fn short_numbers_match_only_exactly() {
    let now = t0();
    let mut w = PushWake::new(WAIT);
    let _ = w.handle_push(now, &incoming("p", "sip:1001@pbx")).unwrap();
    assert_eq!(w.bind_invite(now, "x", "sip:21001@pbx"), None);
    assert!(w.bind_invite(now, "x", "tel:1001").is_some());
}

#[test]
fn duplicate_push_returns_the_same_report() {
    let now = t0();
    let mut w = PushWake::new(WAIT);
    let p = incoming("dup@pbx", "sip:1001@pbx");
    let first = w.handle_push(now, &p).unwrap();
    let again = w.handle_push(now + Duration::from_secs(1), &p).unwrap();
    assert_eq!(first, again);
    assert_eq!(drain(&mut w), vec![PushAction::Reregister]);
    assert_eq!(w.pending_count(), 1);
    // The deadline is not pushed back by the duplicate.
    assert_eq!(w.poll_timeout(), Some(now + WAIT));
}

#[test]
fn cancel_push_before_invite_is_missed() {
    let now = t0();
    let mut w = PushWake::new(WAIT);
    let r = w.handle_push(now, &incoming("c1", "sip:1001@pbx")).unwrap();
    drain(&mut w);
    let c = w
        .handle_push(now + Duration::from_secs(3), &cancel("c1"))
        .unwrap();
    assert_eq!(c.report_id, r.report_id);
    assert_eq!(c.already_ended, Some(EndReason::Cancelled));
    assert_eq!(
        drain(&mut w),
        vec![PushAction::EndReport {
            report_id: r.report_id,
            reason: EndReason::Cancelled
        }]
    );
    // The INVITE arriving late is not bound; the cancel repeated queues nothing.
    assert_eq!(
        w.bind_invite(now + Duration::from_secs(4), "c1", "sip:1001@pbx"),
        None
    );
    let _ = w
        .handle_push(now + Duration::from_secs(5), &cancel("c1"))
        .unwrap();
    assert!(drain(&mut w).is_empty());
    assert_eq!(w.poll_timeout(), None);
}

#[test]
fn cancel_reasons_map_to_end_reasons() {
    let now = t0();
    let mut w = PushWake::new(WAIT);
    let _ = w.handle_push(now, &incoming("e1", "sip:1@pbx")).unwrap();
    let c = w
        .handle_push(
            now,
            br#"{"type":"cancel","call_id":"e1","reason":"answered_elsewhere"}"#,
        )
        .unwrap();
    assert_eq!(c.already_ended, Some(EndReason::AnsweredElsewhere));
    assert!(!EndReason::AnsweredElsewhere.is_missed_call());
    let c = w
        .handle_push(
            now,
            br#"{"type":"cancel","call_id":"e2","reason":"declined_elsewhere"}"#,
        )
        .unwrap();
    assert_eq!(c.already_ended, Some(EndReason::DeclinedElsewhere));
    let c = w
        .handle_push(
            now,
            br#"{"type":"cancel","call_id":"e3","reason":"whatever"}"#,
        )
        .unwrap();
    assert_eq!(c.already_ended, Some(EndReason::Cancelled));
}

#[test]
fn cancel_overtaking_the_incoming_push() {
    // APNs/FCM do not guarantee order: the cancel can arrive first. iOS still needs a report
    // for it, and the late incoming_call push must not ring.
    let now = t0();
    let mut w = PushWake::new(WAIT);
    let c = w.handle_push(now, &cancel("late")).unwrap();
    assert_eq!(c.already_ended, Some(EndReason::Cancelled));
    assert_eq!(c.caller_number, "");
    let late = w
        .handle_push(
            now + Duration::from_millis(300),
            &incoming("late", "sip:1@pbx"),
        )
        .unwrap();
    assert_eq!(late.report_id, c.report_id);
    assert_eq!(late.already_ended, Some(EndReason::Cancelled));
    assert_eq!(
        drain(&mut w),
        vec![PushAction::EndReport {
            report_id: c.report_id,
            reason: EndReason::Cancelled
        }]
    );
}

#[test]
fn invite_cancelled_before_invite_is_missed() {
    let now = t0();
    let mut w = PushWake::new(WAIT);
    let r = w.handle_push(now, &incoming("ic", "sip:1@pbx")).unwrap();
    drain(&mut w);
    assert_eq!(w.invite_cancelled(now, "ic"), Some(r.report_id));
    assert_eq!(
        drain(&mut w),
        vec![PushAction::EndReport {
            report_id: r.report_id,
            reason: EndReason::Cancelled
        }]
    );
    assert_eq!(w.invite_cancelled(now, "ic"), None);
    assert_eq!(w.invite_cancelled(now, "unknown"), None);
    // Bound reports belong to the call layer.
    let b = w.handle_push(now, &incoming("bound", "sip:1@pbx")).unwrap();
    assert_eq!(w.bind_invite(now, "bound", "sip:1@pbx"), Some(b.report_id));
    assert_eq!(w.invite_cancelled(now, "bound"), None);
    let after_cancel_push = w.handle_push(now, &cancel("bound")).unwrap();
    assert_eq!(after_cancel_push.already_ended, None);
    assert_eq!(drain(&mut w), vec![PushAction::Reregister]);
}

#[test]
fn no_invite_in_time_times_out() {
    let now = t0();
    let mut w = PushWake::new(WAIT);
    let r = w.handle_push(now, &incoming("t", "sip:1@pbx")).unwrap();
    drain(&mut w);
    w.handle_timeout(now + WAIT - Duration::from_millis(1));
    assert!(drain(&mut w).is_empty());
    w.handle_timeout(now + WAIT);
    assert_eq!(
        drain(&mut w),
        vec![PushAction::EndReport {
            report_id: r.report_id,
            reason: EndReason::Unanswered
        }]
    );
    assert!(EndReason::Unanswered.is_missed_call());
    assert_eq!(w.poll_timeout(), None);
    // An INVITE after the deadline is a new call for the call layer.
    assert_eq!(w.bind_invite(now + WAIT, "t", "sip:1@pbx"), None);
}

#[test]
fn bind_invite_past_deadline_times_out_first() {
    // The runtime was late calling handle_timeout: bind_invite must not bind a report that
    // has already expired, and the expiry is still reported once.
    let now = t0();
    let mut w = PushWake::new(WAIT);
    let r = w
        .handle_push(now, &incoming("late-invite", "sip:1@pbx"))
        .unwrap();
    drain(&mut w);
    assert_eq!(
        w.bind_invite(now + WAIT * 2, "late-invite", "sip:1@pbx"),
        None
    );
    assert_eq!(
        drain(&mut w),
        vec![PushAction::EndReport {
            report_id: r.report_id,
            reason: EndReason::Unanswered
        }]
    );
}

#[test]
fn end_report_locally() {
    let now = t0();
    let mut w = PushWake::new(WAIT);
    let r = w.handle_push(now, &incoming("u", "sip:1@pbx")).unwrap();
    drain(&mut w);
    assert!(w.end_report(now, r.report_id, EndReason::Declined));
    assert!(!w.end_report(now, r.report_id, EndReason::Declined));
    assert!(drain(&mut w).is_empty());
    assert_eq!(
        w.status_of_call("u"),
        Some(ReportStatus::Ended(EndReason::Declined))
    );
    assert_eq!(w.bind_invite(now, "u", "sip:1@pbx"), None);
    assert_eq!(w.poll_timeout(), None);
}

#[test]
fn finished_reports_are_forgotten() {
    let now = t0();
    let mut w = PushWake::new(WAIT);
    let r = w.handle_push(now, &incoming("f", "sip:1@pbx")).unwrap();
    w.handle_timeout(now + WAIT);
    assert!(w.status(r.report_id).is_some());
    w.handle_timeout(now + WAIT + REMEMBER_FOR);
    assert_eq!(w.status(r.report_id), None);
    // At most MAX_REMEMBERED finished reports are kept.
    for i in 0..200 {
        let _ = w.handle_push(now, &cancel(&format!("c{i}"))).unwrap();
    }
    w.handle_timeout(now);
    assert!(w.entries.len() <= MAX_REMEMBERED);
    assert_eq!(w.status_of_call("c199").map(|_| ()), Some(()));
    assert_eq!(w.status_of_call("c0"), None);
}

#[test]
fn pending_reports_are_capped() {
    let now = t0();
    let mut w = PushWake::new(WAIT);
    for i in 0..MAX_PENDING {
        w.handle_push(now, &incoming(&format!("p{i}"), "sip:1@pbx"))
            .unwrap();
    }
    assert_eq!(
        w.handle_push(now, &incoming("one-more", "sip:1@pbx")),
        Err(PushError::TooManyPending { max: MAX_PENDING })
    );
    // A duplicate of a pending one is still answered.
    assert!(w.handle_push(now, &incoming("p0", "sip:1@pbx")).is_ok());
}

#[test]
fn report_ids_are_uuids_derived_from_the_call_id() {
    let a = ReportId::for_call_id("a84b4c76e66710@pbx");
    assert_eq!(a, ReportId::for_call_id("a84b4c76e66710@pbx"));
    assert_ne!(a, ReportId::for_call_id("a84b4c76e66711@pbx"));
    let s = a.to_string();
    assert_eq!(s.len(), 36);
    let parts: Vec<&str> = s.split('-').collect();
    assert_eq!(
        parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12]
    );
    assert!(parts[2].starts_with('8'), "version 8: {s}");
    assert!(
        matches!(&parts[3][..1], "8" | "9" | "a" | "b"),
        "variant: {s}"
    );
}

#[test]
fn fcm_string_values_and_unknown_fields() {
    let m = parse_payload(
        br#"{"aps":{"alert":"x"},"type":"incoming_call","call_id":"k","from":"tel:+15551234567;phone-context=x",
            "sent_at":"1767225600000","video":"true","extra":[1,2,3],"from_name":"Bob\u0007 B"}"#,
    )
    .unwrap();
    let PushMessage::IncomingCall {
        from,
        from_name,
        sent_at_unix_ms,
        video,
        pbx,
        ..
    } = m
    else {
        panic!("not an incoming call");
    };
    assert_eq!(caller_number(&from), "+15551234567");
    assert_eq!(from_name.as_deref(), Some("Bob B"));
    assert_eq!(sent_at_unix_ms, Some(1_767_225_600_000));
    assert!(video);
    assert_eq!(pbx, None);
}

#[test]
fn caller_number_forms() {
    assert_eq!(
        caller_number("sip:+4930123456@pbx.example.com"),
        "+4930123456"
    );
    assert_eq!(caller_number("<sips:1001@pbx>"), "1001");
    assert_eq!(caller_number("sip:%2B4930@pbx"), "+4930");
    assert_eq!(caller_number("sip:pbx.example.com"), "pbx.example.com");
    assert_eq!(caller_number("tel:+1-555-123"), "+1-555-123");
    assert_eq!(caller_number(" 0301234 "), "0301234");
    assert_eq!(normalized_digits("+49 (30) 123-456"), "4930123456");
    assert_eq!(normalized_digits("0049 30 123456"), "4930123456");
    assert_eq!(normalized_digits("anonymous"), "");
}

#[test]
fn malformed_payloads_are_clear_errors() {
    let cases: Vec<(&[u8], PushError)> = vec![
        (b"", PushError::Empty),
        (b"not json", PushError::NotJson(String::new())),
        (b"[1,2]", PushError::NotAnObject),
        (b"{}", PushError::MissingField("type")),
        (br#"{"type":null}"#, PushError::MissingField("type")),
        (
            br#"{"type":5}"#,
            PushError::WrongType {
                field: "type",
                expected: "a string",
            },
        ),
        (
            br#"{"type":"ring"}"#,
            PushError::UnknownType("ring".to_string()),
        ),
        (
            br#"{"type":"incoming_call","from":"1"}"#,
            PushError::MissingField("call_id"),
        ),
        (
            br#"{"type":"incoming_call","call_id":"","from":"1"}"#,
            PushError::EmptyField("call_id"),
        ),
        (
            br#"{"type":"incoming_call","call_id":"a b","from":"1"}"#,
            PushError::InvalidCallId,
        ),
        (
            br#"{"type":"incoming_call","call_id":"a"}"#,
            PushError::MissingField("from"),
        ),
        (
            br#"{"type":"incoming_call","call_id":"a","from":"  "}"#,
            PushError::EmptyField("from"),
        ),
        (
            br#"{"type":"incoming_call","call_id":"a","from":"1","sent_at":-5}"#,
            PushError::WrongType {
                field: "sent_at",
                expected: "a non-negative integer (Unix milliseconds)",
            },
        ),
        (
            br#"{"type":"incoming_call","call_id":"a","from":"1","sent_at":"soon"}"#,
            PushError::WrongType {
                field: "sent_at",
                expected: "a non-negative integer (Unix milliseconds)",
            },
        ),
        (
            br#"{"type":"incoming_call","call_id":"a","from":"1","video":"yes"}"#,
            PushError::WrongType {
                field: "video",
                expected: "a boolean",
            },
        ),
        (
            br#"{"type":"incoming_call","call_id":"a","from":1001}"#,
            PushError::WrongType {
                field: "from",
                expected: "a string",
            },
        ),
        (br#"{"type":"cancel"}"#, PushError::MissingField("call_id")),
    ];
    for (payload, expected) in cases {
        let got = parse_payload(payload);
        match (&got, &expected) {
            (Err(PushError::NotJson(msg)), PushError::NotJson(_)) => assert!(!msg.is_empty()),
            _ => assert_eq!(got, Err(expected), "{}", String::from_utf8_lossy(payload)),
        }
        let msg = got.unwrap_err().to_string();
        assert!(msg.starts_with("push payload"), "{msg}");
    }
    let long = format!(
        r#"{{"type":"incoming_call","call_id":"a","from":"{}"}}"#,
        "1".repeat(MAX_FIELD_BYTES + 1)
    );
    assert_eq!(
        parse_payload(long.as_bytes()),
        Err(PushError::FieldTooLong {
            field: "from",
            max: MAX_FIELD_BYTES
        })
    );
    let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
    assert_eq!(
        parse_payload(&big),
        Err(PushError::TooLarge {
            len: MAX_PAYLOAD_BYTES + 1,
            max: MAX_PAYLOAD_BYTES
        })
    );
}

#[test]
fn errors_and_debug_do_not_leak_the_caller() {
    let now = t0();
    let mut w = PushWake::new(WAIT);
    let r = w
        .handle_push(now, &incoming("leak", "sip:+4917612345678@pbx"))
        .unwrap();
    let dump = format!("{r:?}");
    assert!(
        !dump.contains("4917612345678") && !dump.contains("Alice"),
        "{dump}"
    );
    let m = parse_payload(&incoming("leak", "sip:+4917612345678@pbx")).unwrap();
    assert!(!format!("{m:?}").contains("4917612345678"));
    let e = parse_payload(br#"{"type":"incoming_call","call_id":"a","from":"+4917612345678","video":"+4917612345678"}"#)
        .unwrap_err();
    assert!(!e.to_string().contains("4917612345678"));
}

/// A tiny deterministic generator so the garbage loop needs no dependency.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn garbage_never_panics() {
    let now = t0();
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut w = PushWake::new(WAIT);
    let seeds: Vec<Vec<u8>> = vec![
        incoming("g@pbx", "sip:+4930123456@pbx.example.com"),
        cancel("g@pbx"),
        br#"{"type":"incoming_call","call_id":"x","from":"tel:+1","sent_at":"12","video":"true"}"#
            .to_vec(),
    ];
    let alphabet =
        b"{}[]\":,0123456789-+.eE \\u00ffabcnulltruefalsetype_call_idfrom%@;<>\x00\x7f\xc3\xa9";
    let mut ok = 0;
    for round in 0..20_000u32 {
        let mut p = seeds[rng.below(seeds.len())].clone();
        match rng.below(4) {
            0 => {
                // random bytes
                let len = rng.below(64);
                p = (0..len).map(|_| rng.next() as u8).collect();
            }
            1 => {
                // flip a few bytes
                for _ in 0..1 + rng.below(4) {
                    if !p.is_empty() {
                        let i = rng.below(p.len());
                        p[i] = alphabet[rng.below(alphabet.len())];
                    }
                }
            }
            2 => {
                // truncate
                let n = rng.below(p.len() + 1);
                p.truncate(n);
            }
            _ => {
                // insert junk
                let i = rng.below(p.len() + 1);
                let junk: Vec<u8> = (0..rng.below(16))
                    .map(|_| alphabet[rng.below(alphabet.len())])
                    .collect();
                p.splice(i..i, junk);
            }
        }
        let t = now + Duration::from_millis(u64::from(round) * 7);
        if w.handle_push(t, &p).is_ok() {
            ok += 1;
        }
        let text = String::from_utf8_lossy(&p);
        let _ = w.bind_invite(t, &text, &text);
        let _ = caller_number(&text);
        w.handle_timeout(t);
        while w.poll_action().is_some() {}
        assert!(w.pending_count() <= MAX_PENDING);
        assert!(w.entries.len() <= MAX_PENDING + MAX_REMEMBERED + 1);
    }
    assert!(ok > 0, "some mutations stay valid");
    // Deeply nested JSON stays an error, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(2500), "]".repeat(2500));
    assert!(parse_payload(deep.as_bytes()).is_err());
}

#[test]
fn report_ids_parse_back_from_their_text_in_either_case() {
    let id = ReportId::for_call_id("a84b4c76e66710@pbx");
    let text = id.to_string();
    assert_eq!(text.parse::<ReportId>(), Ok(id));
    assert_eq!(text.to_ascii_uppercase().parse::<ReportId>(), Ok(id));
    for bad in [
        "",
        "not-a-uuid",
        "1b4e28ba2fa181d2883f0016d3cca427",
        "1b4e28ba-2fa1-81d2-883f-0016d3cca42",
        "1b4e28ba-2fa1-81d2-883f-0016d3cca42g",
        "1b4e28ba-2fa1-81d2-883f-0016d3cca427-00",
        "+b4e28ba-2fa1-81d2-883f-0016d3cca427",
        "1b4e28ba-2fa1-81d2-883f-0016d3cc\u{e9}27",
    ] {
        assert_eq!(bad.parse::<ReportId>(), Err(InvalidReportId), "{bad:?}");
    }
}
