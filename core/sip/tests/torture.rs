//! Every message of RFC 4475 (SIP torture tests) and RFC 5118 (IPv6 torture tests), byte for
//! byte from `fixtures/` (made by `fixtures/generate.py`): valid ones must parse with the values
//! `fixtures/manifest.json` records, invalid ones must be an error, none may panic.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use handset_sip::message::{Message, StreamFramer, StreamItem, Uri};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn parse(bytes: &[u8], transport: &str) -> Result<Message, String> {
    if transport == "stream" {
        let mut framer = StreamFramer::new();
        framer.push(bytes);
        match framer.next_item() {
            Some(Ok(StreamItem::Message(m))) => Ok(m),
            Some(Ok(other)) => Err(format!("not a message: {other:?}")),
            Some(Err(e)) => Err(e.to_string()),
            None => Err("incomplete message".into()),
        }
    } else {
        Message::parse(bytes).map_err(|e| e.to_string())
    }
}

/// Compares what the parser extracted with the manifest; returns the mismatches.
fn check(message: &Message, expect: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut mismatches = Vec::new();
    let mut same = |what: &str, got: Value, want: &Value| {
        if &got != want {
            mismatches.push(format!("{what}: got {got}, want {want}"));
        }
    };
    // URIs compare structurally: host case and IPv6 spelling do not matter.
    let same_uri = |what: &str, got: &Uri, want: &Value, wrong: &mut Vec<String>| match want
        .as_str()
        .map(Uri::parse)
    {
        Some(Ok(w)) if &w == got => {}
        _ => wrong.push(format!("{what}: got {got}, want {want}")),
    };
    let h = message.headers();
    for (key, want) in expect.as_object().into_iter().flatten() {
        match key.as_str() {
            "type" => same(
                key,
                Value::from(match message {
                    Message::Request(_) => "request",
                    Message::Response(_) => "response",
                }),
                want,
            ),
            "method" => {
                if let Message::Request(r) = message {
                    same(key, Value::from(r.method.as_str()), want)
                }
            }
            "status_code" => {
                if let Message::Response(r) = message {
                    same(key, Value::from(r.status), want)
                }
            }
            "request_uri" => {
                if let Message::Request(r) = message {
                    same_uri(key, &r.uri, want, &mut wrong)
                }
            }
            "call_id" => same(key, Value::from(h.call_id().unwrap()), want),
            "cseq" => {
                let cseq = h.cseq().unwrap();
                same("cseq.number", Value::from(cseq.seq), &want["number"]);
                same(
                    "cseq.method",
                    Value::from(cseq.method.as_str()),
                    &want["method"],
                );
            }
            "via_count" => same(key, Value::from(h.vias().unwrap().len()), want),
            "top_via" => {
                let via = h.top_via().unwrap();
                same(
                    "via.transport",
                    Value::from(via.transport.clone()),
                    &want["transport"],
                );
                same("via.host", Value::from(via.host.to_string()), &want["host"]);
                same(
                    "via.port",
                    via.port.map(Value::from).unwrap_or(Value::Null),
                    &want["port"],
                );
                same(
                    "via.branch",
                    via.branch().map(Value::from).unwrap_or(Value::Null),
                    &want["branch"],
                );
            }
            "body_length" => same(key, Value::from(message.body().len()), want),
            "from_tag" => same(
                key,
                h.from()
                    .unwrap()
                    .tag()
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                want,
            ),
            "to_tag" => same(
                key,
                h.to()
                    .unwrap()
                    .tag()
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                want,
            ),
            "from_uri" => same_uri(key, &h.from().unwrap().uri, want, &mut wrong),
            "to_uri" => same_uri(key, &h.to().unwrap().uri, want, &mut wrong),
            "contact_count" => same(key, Value::from(h.contacts().unwrap().len()), want),
            "max_forwards" => same(
                key,
                h.max_forwards()
                    .unwrap()
                    .map(Value::from)
                    .unwrap_or(Value::Null),
                want,
            ),
            _ => {}
        }
    }
    wrong.extend(mismatches);
    wrong
}

#[test]
fn rfc4475_and_rfc5118_torture_messages() {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("manifest.json")).expect("manifest"))
            .expect("manifest is JSON");
    let entries = manifest.as_array().expect("array");
    assert!(
        entries.len() >= 61,
        "all RFC 4475 and RFC 5118 messages are present"
    );
    let mut failures = Vec::new();
    let (mut valid, mut invalid) = (0, 0);
    for entry in entries {
        let file = entry["file"].as_str().expect("file");
        let bytes = std::fs::read(fixtures().join(file)).expect("fixture file");
        let transport = entry["transport"].as_str().unwrap_or("datagram");
        let expect = &entry["expect"];
        let result = parse(&bytes, transport);
        let content_length_too_large = expect["erratum"].is_string()
            && expect["content_length"].as_u64() > expect["body_length"].as_u64();
        match (entry["kind"].as_str(), result) {
            // RFC 5118's ipv6-in-sdp states a Content-Length longer than its body: RFC 3261
            // §18.3 makes that a 400 over UDP, whatever the IPv6 content.
            (Some("valid"), Err(e)) if content_length_too_large => {
                valid += 1;
                if !e.contains("Content-Length") {
                    failures.push(format!("{file}: wrong error {e}"));
                }
            }
            (Some("valid"), Ok(message)) if !content_length_too_large => {
                valid += 1;
                for w in check(&message, expect) {
                    failures.push(format!("{file}: {w}"));
                }
                // Printing is stable: what we print parses to a message that prints the same.
                let printed = message.to_bytes();
                match Message::parse(&printed) {
                    Ok(again) if again.to_bytes() == printed && again.body() == message.body() => {}
                    other => failures.push(format!(
                        "{file}: printed form does not round-trip: {other:?}"
                    )),
                }
            }
            (Some("valid"), other) => failures.push(format!("{file}: valid, but {other:?}")),
            (Some("invalid"), Err(_)) => invalid += 1,
            (Some("invalid"), Ok(_)) => failures.push(format!("{file}: invalid, but parsed")),
            (kind, _) => failures.push(format!("{file}: unknown kind {kind:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(valid + invalid, entries.len());
}

#[test]
fn every_prefix_of_every_fixture_is_safe() {
    for dir in ["rfc4475", "rfc5118"] {
        for entry in std::fs::read_dir(fixtures().join(dir)).expect("dir") {
            let bytes = std::fs::read(entry.expect("entry").path()).expect("file");
            for cut in 0..=bytes.len() {
                let _ = Message::parse(&bytes[..cut]);
            }
            let mut framer = StreamFramer::new();
            for chunk in bytes.chunks(7) {
                framer.push(chunk);
                while framer.next_item().is_some() {}
            }
        }
    }
}
