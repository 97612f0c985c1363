use super::*;
use chrono::TimeZone;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 10).unwrap()
}

const TOPIC: &str = "throughline/v1/plant-a/gw-press-01/press-1/telemetry";

fn decode_t(payload: &str) -> Result<Telemetry, CodecError> {
    match decode(TOPIC, payload.as_bytes(), now(), &Limits::default())? {
        Inbound::Telemetry(t) => Ok(t),
        other => panic!("not telemetry: {other:?}"),
    }
}

#[test]
fn documented_example_decodes() {
    let t = decode_t(
        r#"{"v": 1, "agent": "gw-press-01", "seq": 18231,
            "samples": [
              {"ts": "2026-11-23T08:00:05.120Z", "output": 120455, "state": "running", "load_kw": 42.5},
              {"ts": "2026-11-23T08:00:06.120Z", "output": 120457, "state": "down", "reason": "jam"}]}"#,
    )
    .unwrap();
    assert_eq!(t.site.as_str(), "plant-a");
    assert_eq!(t.asset.as_str(), "press-1");
    assert_eq!(t.envelope.seq, 18231);
    assert_eq!(t.envelope.samples.len(), 2);
    assert_eq!(t.envelope.samples[1].state, Some(AssetState::Down));
    assert_eq!(t.envelope.samples[1].reason.as_deref(), Some("jam"));
    assert_eq!(t.envelope.samples[0].load_kw, Some(42.5));
}

#[test]
fn round_trip_keeps_every_field() {
    let ts = Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 5).unwrap() + Duration::milliseconds(120);
    let env = Envelope {
        v: 1,
        agent: AgentId::parse("gw-press-01").unwrap(),
        seq: 7,
        samples: vec![
            Sample {
                ts,
                output: Some(120455.0),
                state: Some(AssetState::Running),
                reason: None,
                load_kw: Some(42.5),
            },
            Sample {
                ts: ts + Duration::seconds(1),
                output: Some(3.25),
                state: Some(AssetState::Maintenance),
                reason: Some("pm-weekly".into()),
                load_kw: None,
            },
            Sample { load_kw: Some(0.0), ..Sample::at(ts) },
        ],
    };
    let bytes = encode_envelope(&env);
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.contains("\"ts\":\"2026-11-23T08:00:05.120Z\""), "{text}");
    let back = decode_t(text).unwrap();
    assert_eq!(back.envelope, env);

    let status = AgentStatus {
        v: 1,
        online: true,
        ts: Some(ts),
        software: Some("edge-agent 0.1.0".into()),
        health: None,
        seq_skipped: Some(SeqRange { from: 100, to: 130 }),
    };
    let decoded = decode_status(&encode_status(&status), &Limits::default()).unwrap();
    assert_eq!(decoded, status);
}

#[test]
fn a_skip_announcement_that_is_no_range_is_dropped_not_the_status() {
    for bad in [r#""seq_skipped":{"from":9,"to":3}"#, r#""seq_skipped":"1-2""#, r#""seq_skipped":{"from":1}"#]
    {
        let payload = format!(r#"{{"v":1,"online":true,{bad}}}"#);
        let s = decode_status(payload.as_bytes(), &Limits::default()).unwrap();
        assert_eq!((s.online, s.seq_skipped), (true, None), "{payload}");
    }
    let s = decode_status(br#"{"v":1,"online":true,"seq_skipped":{"from":7,"to":7}}"#, &Limits::default());
    assert_eq!(s.unwrap().seq_skipped.map(|r| r.count()), Some(1));
}

#[test]
fn resend_requests_round_trip_and_are_validated() {
    let closed = ResendRequest { v: 1, from: 10, to: Some(20) };
    assert_eq!(encode_resend(&closed), br#"{"v":1,"from":10,"to":20}"#);
    assert_eq!(decode_resend(&encode_resend(&closed), &Limits::default()).unwrap(), closed);
    let open = ResendRequest { v: 1, from: 10, to: None };
    assert_eq!(encode_resend(&open), br#"{"v":1,"from":10}"#);
    assert_eq!(decode_resend(&encode_resend(&open), &Limits::default()).unwrap(), open);
    assert!(closed.covers(10) && closed.covers(20) && !closed.covers(21) && !closed.covers(9));
    assert!(open.covers(u64::MAX));
    let reason = |p: &str| decode_resend(p.as_bytes(), &Limits::default()).unwrap_err().reason;
    assert_eq!(reason(r#"{"v":1,"from":5,"to":4}"#), RejectReason::InvalidField);
    assert_eq!(reason(r#"{"v":1,"to":4}"#), RejectReason::MissingField);
    assert_eq!(reason(r#"{"v":2,"from":1}"#), RejectReason::UnsupportedVersion);
    assert_eq!(reason("nope"), RejectReason::BadJson);
    let topic = "throughline/v1/plant-a/gw-press-01/resend";
    let e = decode(topic, br#"{"v":1,"from":1}"#, now(), &Limits::default()).unwrap_err();
    assert_eq!(e.reason, RejectReason::BadTopic, "not ingested");
}

#[test]
fn every_rejection_reason() {
    let ok_sample = r#"{"ts":"2026-11-23T08:00:05Z","output":1}"#;
    let env = |samples: &str| format!(r#"{{"v":1,"agent":"gw-press-01","seq":1,"samples":[{samples}]}}"#);
    let cases: Vec<(String, RejectReason)> = vec![
        ("{not json".into(), RejectReason::BadJson),
        ("".into(), RejectReason::BadJson),
        ("[1,2]".into(), RejectReason::InvalidField),
        (r#"{"v":2,"agent":"gw-press-01","seq":1,"samples":[]}"#.into(), RejectReason::UnsupportedVersion),
        (r#"{"v":"1","agent":"gw-press-01","seq":1,"samples":[]}"#.into(), RejectReason::UnsupportedVersion),
        (r#"{"agent":"gw-press-01","seq":1,"samples":[]}"#.into(), RejectReason::MissingField),
        (r#"{"v":1,"seq":1,"samples":[]}"#.into(), RejectReason::MissingField),
        (r#"{"v":1,"agent":"gw-press-01","samples":[]}"#.into(), RejectReason::MissingField),
        (r#"{"v":1,"agent":"gw-press-01","seq":1}"#.into(), RejectReason::MissingField),
        (r#"{"v":1,"agent":"gw-press-01","seq":-1,"samples":[]}"#.into(), RejectReason::InvalidField),
        (r#"{"v":1,"agent":"gw/press","seq":1,"samples":[]}"#.into(), RejectReason::BadId),
        (r#"{"v":1,"agent":"gw-other","seq":1,"samples":[]}"#.into(), RejectReason::AgentMismatch),
        (env(""), RejectReason::NoSamples),
        (env(r#"{"output":1}"#), RejectReason::MissingField),
        (env(r#"{"ts":"2026-11-23T08:00:05Z"}"#), RejectReason::NoMeasurement),
        (env(r#"{"ts":"yesterday","output":1}"#), RejectReason::BadTimestamp),
        (env(r#"{"ts":"2026-11-23T08:00:05","output":1}"#), RejectReason::BadTimestamp),
        (env(r#"{"ts":"2026-11-23T09:00:00Z","output":1}"#), RejectReason::FutureTimestamp),
        (env(r#"{"ts":"1970-01-01T00:00:00Z","output":1}"#), RejectReason::PastTimestamp),
        (env(r#"{"ts":"2026-10-24T08:00:09Z","output":1}"#), RejectReason::PastTimestamp),
        (env(r#"{"ts":"2026-11-23T08:00:05Z","output":NaN}"#), RejectReason::BadJson),
        (env(r#"{"ts":"2026-11-23T08:00:05Z","output":1e999}"#), RejectReason::BadJson),
        (env(r#"{"ts":"2026-11-23T08:00:05Z","output":-5}"#), RejectReason::NegativeValue),
        (env(r#"{"ts":"2026-11-23T08:00:05Z","load_kw":-0.5}"#), RejectReason::NegativeValue),
        (env(r#"{"ts":"2026-11-23T08:00:05Z","output":"12"}"#), RejectReason::InvalidField),
        (env(r#"{"ts":"2026-11-23T08:00:05Z","state":"broken"}"#), RejectReason::InvalidField),
        (
            env(&format!(r#"{{"ts":"2026-11-23T08:00:05Z","reason":"{}"}}"#, "r".repeat(65))),
            RejectReason::InvalidField,
        ),
        (
            env(&format!("{ok_sample},{}", r#"{"ts":"2026-11-23T08:00:05Z","output":-1}"#)),
            RejectReason::NegativeValue,
        ),
    ];
    for (payload, want) in cases {
        let got = decode_t(&payload).expect_err(&format!("accepted {payload}"));
        assert_eq!(got.reason, want, "{payload}: {got}");
        assert!(!got.detail.is_empty());
    }
    // The detail says which sample and which field.
    let e = decode_t(&env(&format!("{ok_sample},{}", r#"{"ts":"2026-11-23T08:00:05Z","load_kw":-1}"#)))
        .unwrap_err();
    assert!(e.detail.contains("samples[1]") && e.detail.contains("load_kw"), "{e}");
    assert!(decode_t(&env(ok_sample)).is_ok());
}

#[test]
fn non_finite_values_are_refused_even_if_a_parser_produced_them() {
    // JSON cannot spell NaN (see bad_json above); a NaN reaching validation
    // from another decoder path is refused by the same check.
    let s = RawSample {
        ts: Some("2026-11-23T08:00:05Z".into()),
        output: Some(f64::NAN),
        state: None,
        reason: None,
        load_kw: None,
    };
    assert_eq!(
        validate_sample(0, s, TsWindow { now: now(), earliest: now() - Duration::days(1), latest: now() })
            .unwrap_err()
            .reason,
        RejectReason::NonFiniteValue
    );
    let s = RawSample {
        ts: Some("2026-11-23T08:00:05Z".into()),
        output: None,
        state: None,
        reason: None,
        load_kw: Some(f64::INFINITY),
    };
    assert_eq!(
        validate_sample(0, s, TsWindow { now: now(), earliest: now() - Duration::days(1), latest: now() })
            .unwrap_err()
            .reason,
        RejectReason::NonFiniteValue
    );
}

#[test]
fn samples_older_than_max_past_are_refused() {
    let agent = AgentId::parse("gw-press-01").unwrap();
    let env = |ts: &str| {
        format!(r#"{{"v":1,"agent":"gw-press-01","seq":1,"samples":[{{"ts":"{ts}","output":1}}]}}"#)
    };
    let decode_at = |ts: &str, limits: &Limits| decode_envelope(&agent, env(ts).as_bytes(), now(), limits);
    let l = Limits::default();
    assert_eq!(l.max_past, Duration::days(30));
    // Exactly 30 days behind is still accepted (a full spool replaying).
    assert!(decode_at("2026-10-24T08:00:10Z", &l).is_ok());
    let e = decode_at("2026-10-24T08:00:09.999Z", &l).unwrap_err();
    assert_eq!(e.reason, RejectReason::PastTimestamp);
    assert!(e.detail.contains("samples[0]") && e.detail.contains("behind"), "{e}");
    assert_eq!(decode_at("1970-01-01T00:00:00Z", &l).unwrap_err().reason, RejectReason::PastTimestamp);
    // The limit is the receiver's; one bad sample refuses the envelope.
    let l = Limits { max_past: Duration::hours(1), ..Limits::default() };
    assert_eq!(decode_at("2026-11-23T07:00:09Z", &l).unwrap_err().reason, RejectReason::PastTimestamp);
    assert!(decode_at("2026-11-23T07:00:11Z", &l).is_ok());
    let two = r#"{"v":1,"agent":"gw-press-01","seq":1,"samples":[{"ts":"2026-11-23T08:00:05Z","output":1},{"ts":"1970-01-01T00:00:00Z","output":1}]}"#;
    let e = decode_envelope(&agent, two.as_bytes(), now(), &l).unwrap_err();
    assert!(e.reason == RejectReason::PastTimestamp && e.detail.contains("samples[1]"), "{e}");
    // A limit past the calendar's reach accepts everything instead of overflowing.
    let l = Limits { max_past: Duration::MAX, max_future: Duration::MAX, ..Limits::default() };
    assert!(decode_at("1970-01-01T00:00:00Z", &l).is_ok());
}

#[test]
fn oversize_payloads_and_sample_counts() {
    let limits = Limits { max_payload_bytes: 100, max_samples: 2, ..Limits::default() };
    let big = format!(r#"{{"v":1,"agent":"gw-press-01","seq":1,"samples":[],"pad":"{}"}}"#, "x".repeat(200));
    let agent = AgentId::parse("gw-press-01").unwrap();
    assert_eq!(
        decode_envelope(&agent, big.as_bytes(), now(), &limits).unwrap_err().reason,
        RejectReason::Oversize
    );
    let three = r#"{"v":1,"agent":"gw-press-01","seq":1,"samples":[{"ts":"2026-11-23T08:00:05Z","output":1},{"ts":"2026-11-23T08:00:05Z","output":1},{"ts":"2026-11-23T08:00:05Z","output":1}]}"#;
    let limits = Limits { max_samples: 2, ..Limits::default() };
    assert_eq!(
        decode_envelope(&agent, three.as_bytes(), now(), &limits).unwrap_err().reason,
        RejectReason::Oversize
    );
}

#[test]
fn bad_topics_and_ids() {
    let ok = r#"{"v":1,"agent":"gw","seq":1,"samples":[{"ts":"2026-11-23T08:00:05Z","output":1}]}"#;
    let l = Limits::default();
    assert_eq!(
        decode("throughline/v1/a/gw/b c/telemetry", ok.as_bytes(), now(), &l).unwrap_err().reason,
        RejectReason::BadId
    );
    assert_eq!(
        decode("throughline/v1/a/gw/x/y/telemetry", ok.as_bytes(), now(), &l).unwrap_err().reason,
        RejectReason::BadTopic
    );
    assert_eq!(
        decode("throughline/v1/a/alerts", ok.as_bytes(), now(), &l).unwrap_err().reason,
        RejectReason::BadTopic
    );
    assert!(decode("throughline/v1/a/gw/x/telemetry", ok.as_bytes(), now(), &l).is_ok());
}

#[test]
fn unknown_fields_are_ignored_for_forward_compatibility() {
    let t = decode_t(
        r#"{"v":1,"agent":"gw-press-01","seq":1,"extra":true,"samples":[{"ts":"2026-11-23T08:00:05Z","output":1,"temp_c":40}]}"#,
    );
    assert!(t.is_ok());
}

#[test]
fn status_messages() {
    let l = Limits::default();
    let will = decode_status(br#"{"v":1,"online":false}"#, &l).unwrap();
    assert!(!will.online);
    assert_eq!(decode_status(br#"{"v":1}"#, &l).unwrap_err().reason, RejectReason::MissingField);
    assert_eq!(
        decode_status(br#"{"v":3,"online":true}"#, &l).unwrap_err().reason,
        RejectReason::UnsupportedVersion
    );
    assert_eq!(decode_status(b"offline", &l).unwrap_err().reason, RejectReason::BadJson);
    match decode("throughline/v1/a/gw/status", br#"{"v":1,"online":true}"#, now(), &l).unwrap() {
        Inbound::Status(s) => assert_eq!(s.agent.as_str(), "gw"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_reason_has_a_distinct_label() {
    let mut labels: Vec<_> = RejectReason::ALL.iter().map(|r| r.label()).collect();
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), RejectReason::ALL.len());
}

#[test]
fn fast_timestamps_parse_exactly_as_chrono_does() {
    let chrono_utc = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).ok();
    let mut cases: Vec<String> = [
        "2026-11-23T08:00:05.120Z",
        "2026-11-23T08:00:05Z",
        "2026-11-23T08:00:05.1Z",
        "2026-11-23T08:00:05.123456789Z",
        "2026-11-23T08:00:05.1234567891Z",
        "2026-11-23t08:00:05.120z",
        "2026-11-23T08:00:05.120+01:00",
        "2026-11-23 08:00:05.120Z",
        "2026-11-23T08:00:60Z",
        "2016-12-31T23:59:60.500Z",
        "2026-02-29T08:00:05Z",
        "2024-02-29T08:00:05Z",
        "2026-13-01T00:00:00Z",
        "2026-11-31T00:00:00Z",
        "2026-11-23T24:00:00Z",
        "2026-11-23T08:60:00Z",
        "2026-11-23T08:00:05.Z",
        "2026-11-23T08:00:05.12a4Z",
        "+026-11-23T08:00:05Z",
        "2026-11-23T08:00:05.120ZZ",
        "0000-01-01T00:00:00Z",
        "9999-12-31T23:59:59.999999999Z",
    ]
    .map(String::from)
    .to_vec();
    // Random mutations of a valid stamp: a digit or a separator changed,
    // a character dropped or added.
    let base = b"2026-11-23T08:00:05.120Z";
    let alphabet = b"0123456789-:.TZtz+ 5";
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    for _ in 0..20_000 {
        let mut b = base.to_vec();
        for _ in 0..1 + next(2) {
            match next(3) {
                0 => {
                    let i = next(b.len());
                    b[i] = alphabet[next(alphabet.len())];
                }
                1 => {
                    b.remove(next(b.len()));
                }
                _ => b.insert(next(b.len() + 1), alphabet[next(alphabet.len())]),
            }
        }
        cases.push(String::from_utf8(b).unwrap());
    }
    let mut fast = 0;
    for s in &cases {
        assert_eq!(parse_rfc3339(s).ok(), chrono_utc(s), "{s:?}");
        fast += usize::from(fast_rfc3339_utc(s.as_bytes()).is_some());
    }
    // The fast path takes most well-formed stamps.
    assert!(fast > 1000, "fast path taken {fast} times");
}

#[test]
fn notices_round_trip_and_an_empty_payload_clears() {
    use crate::message::Notice;
    let n = Notice {
        v: 1,
        reason: "future_timestamp".into(),
        count: 3,
        since: "2026-11-23T08:00:00Z".parse().unwrap(),
        last: "2026-11-23T08:00:20Z".parse().unwrap(),
        detail: "600 s ahead".into(),
    };
    let limits = Limits::default();
    assert_eq!(decode_notice(&encode_notice(&n), &limits).unwrap(), Some(n));
    assert_eq!(decode_notice(b"", &limits).unwrap(), None);
    assert!(decode_notice(br#"{"v":2,"reason":"x"}"#, &limits).is_err());
    assert!(decode_notice(br#"{"v":1,"reason":"x"}"#, &limits).is_err(), "count, since, last required");
}

#[test]
fn a_refused_sample_time_is_carried_with_how_far_off_it_is() {
    let now: DateTime<Utc> = "2026-11-23T08:00:00Z".parse().unwrap();
    let agent = AgentId::parse("gw").unwrap();
    let json = br#"{"v":1,"agent":"gw","seq":1,"samples":[{"ts":"2026-11-23T08:10:00Z","output":1}]}"#;
    let e = decode_envelope(&agent, json, now, &Limits::default()).unwrap_err();
    assert_eq!(e.reason, RejectReason::FutureTimestamp);
    assert_eq!(e.ts, Some("2026-11-23T08:10:00Z".parse().unwrap()));
    assert!(e.detail.contains("600 s ahead"), "{}", e.detail);
}

/// Property over the codec (seeded, 20,000 cases): a good envelope with
/// random bytes flipped, cut, doubled or inserted, on a topic with random
/// levels, is decoded or refused with a reason, never a panic; whatever
/// decodes still satisfies what the codec promises (the topic's agent, at
/// least one sample, within the sample limit). `cargo fuzz` would need a
/// nightly toolchain, which this machine does not have.
#[test]
fn mutated_envelopes_and_topics_never_panic_and_decode_only_valid() {
    let good = br#"{"v":1,"agent":"gw-press-01","seq":18231,"samples":[{"ts":"2026-11-23T08:00:05.120Z","output":120455,"state":"running","load_kw":42.5},{"ts":"2026-11-23T08:00:06.120Z","state":"down","reason":"jam"}]}"#;
    let mut rng = fastrand::Rng::with_seed(18);
    let limits = Limits::default();
    let mut outcomes = std::collections::BTreeMap::new();
    for _ in 0..20_000 {
        let mut p = good.to_vec();
        for _ in 0..rng.usize(1..6) {
            let at = rng.usize(0..p.len().max(1));
            match rng.u8(0..4) {
                0 if !p.is_empty() => p[at] = rng.u8(..),
                1 => p.truncate(at),
                2 => p.insert(at.min(p.len()), rng.u8(..)),
                _ => {
                    let copy = p[at.min(p.len())..].to_vec();
                    p.extend_from_slice(&copy);
                }
            }
        }
        let topic = if rng.u8(0..8) == 0 {
            let levels: Vec<String> = (0..rng.usize(0..7))
                .map(|_| {
                    (0..rng.usize(0..5))
                        .map(|_| rng.choice(['a', '-', '/', ' ', 'é', '+', '#']).unwrap())
                        .collect()
                })
                .collect();
            format!("throughline/v1/{}", levels.join("/"))
        } else {
            TOPIC.to_string()
        };
        match decode(&topic, &p, now(), &limits) {
            Ok(Inbound::Telemetry(t)) => {
                assert_eq!(t.envelope.agent.as_str(), "gw-press-01");
                assert!(!t.envelope.samples.is_empty() && t.envelope.samples.len() <= limits.max_samples);
                *outcomes.entry("decoded").or_insert(0) += 1;
            }
            Ok(_) => *outcomes.entry("other topic").or_insert(0) += 1,
            Err(e) => *outcomes.entry(e.reason.label()).or_insert(0) += 1,
        }
    }
    assert!(outcomes.len() >= 5, "the mutations reach several outcomes: {outcomes:?}");
}

#[test]
fn reasons_with_unprintable_characters_are_refused() {
    let with = |reason: &str| {
        let r = serde_json::to_string(reason).unwrap();
        decode_t(&format!(
            r#"{{"v":1,"agent":"gw-press-01","seq":1,"samples":[{{"ts":"2026-11-23T08:00:05Z","state":"down","reason":{r}}}]}}"#
        ))
    };
    // A forged log line, an escape code, a bidirectional override, a zero-width space.
    for bad in
        ["jam\n2026-11-23T08:00:00Z ERROR forged", "jam\u{1b}[2J", "\u{202e}maj", "ja\u{200b}m", "jam\u{7f}"]
    {
        let e = with(bad).unwrap_err();
        assert_eq!(e.reason, RejectReason::InvalidField, "{bad:?}");
        assert!(e.detail.contains("`reason` has an unprintable character"), "{}", e.detail);
        assert!(
            !e.detail.contains('\n') && !e.detail.contains('\u{1b}'),
            "the detail does not echo it: {:?}",
            e.detail
        );
    }
    // Printable text in any script, with spaces and punctuation, is a reason.
    for good in ["jam", "Stau am Förderband 3", "材料切れ", "pm: weekly (A/B)"] {
        assert_eq!(with(good).unwrap().envelope.samples[0].reason.as_deref(), Some(good));
    }
}
