//! A deterministic generator of bad input for the MQTT side of ingest (the
//! bad-input suite, `tests/e2e/fuzz.rs`, and `bench/fuzz.sh`): random
//! bytes, truncated, deeply nested and oversize JSON, invalid UTF-8,
//! NaN/Infinity and numbers out of range, wrong types, missing fields,
//! negative values, wrong versions, forged agents, odd topic levels and
//! 10 MB payloads, interleaved with good envelopes. Each case carries what
//! the aggregator must do with it, by construction (the unit test below
//! checks every label against the codec).

use serde_json::json;

/// What the aggregator must make of a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// A good envelope of one sample: ingested.
    Good,
    /// Refused and counted with this reason label.
    Refused(&'static str),
    /// Larger than the largest packet the aggregator takes: the broker
    /// keeps it from the aggregator (MQTT 5 Maximum Packet Size, or the
    /// embedded broker's own limit); never counted, never a reconnect.
    Dropped,
    /// A topic the aggregator does not subscribe to: never delivered.
    Unrouted,
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Case {
    pub topic: String,
    pub payload: Vec<u8>,
    pub expect: Expect,
}

/// Size of the cases that must be dropped upstream.
pub const HUGE: usize = 10 * 1024 * 1024;

/// The generator: one site, one agent, one asset for the good envelopes
/// (sequence numbers 1, 2, ... and a counter going up by one).
#[derive(Debug)]
pub struct Fuzz {
    rng: fastrand::Rng,
    pub site: String,
    pub agent: String,
    pub asset: String,
    seq: u64,
    /// Every how many-th case is a 10 MB one (0: never).
    pub huge_every: u64,
    n: u64,
    ts: String,
}

impl Fuzz {
    /// `ts` is the sample time of every generated sample (within the
    /// receiver's tolerance for the whole run).
    pub fn new(seed: u64, site: &str, agent: &str, ts: &str) -> Fuzz {
        Fuzz {
            rng: fastrand::Rng::with_seed(seed),
            site: site.into(),
            agent: agent.into(),
            asset: "line-1".into(),
            seq: 0,
            huge_every: 0,
            n: 0,
            ts: ts.into(),
        }
    }

    fn topic(&self) -> String {
        format!("throughline/v1/{}/{}/{}/telemetry", self.site, self.agent, self.asset)
    }

    fn envelope(&self, seq: u64, sample: serde_json::Value) -> String {
        json!({"v": 1, "agent": self.agent, "seq": seq, "samples": [sample]}).to_string()
    }

    /// The next good envelope (whatever the draw).
    pub fn good(&mut self) -> Case {
        self.seq += 1;
        let sample = json!({"ts": self.ts, "output": self.seq, "state": "running"});
        Case {
            topic: self.topic(),
            payload: self.envelope(self.seq, sample).into_bytes(),
            expect: Expect::Good,
        }
    }

    /// The next case: about one in four is good.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Case {
        self.n += 1;
        if self.huge_every > 0 && self.n % self.huge_every == 0 {
            let mut payload = vec![b' '; HUGE];
            payload[0] = b'{';
            return Case { topic: self.topic(), payload, expect: Expect::Dropped };
        }
        let mut rng = std::mem::replace(&mut self.rng, fastrand::Rng::with_seed(0));
        let case = self.draw(&mut rng);
        self.rng = rng;
        case
    }

    fn draw(&mut self, r: &mut fastrand::Rng) -> Case {
        let kind = r.u8(0..40);
        if kind < 10 {
            return self.good();
        }
        let seq = self.seq + 1 + u64::from(r.u8(..));
        let topic = self.topic();
        let ts = self.ts.clone();
        let bad = |p: String, reason| Case {
            topic: topic.clone(),
            payload: p.into_bytes(),
            expect: Expect::Refused(reason),
        };
        match kind {
            // Random bytes, starting with a byte no JSON value starts with.
            10..=12 => {
                let mut p: Vec<u8> = (0..r.usize(0..600)).map(|_| r.u8(..)).collect();
                p.insert(0, [b'x', 0xff, b'}', b'#', 0x80][r.usize(0..5)]);
                Case { topic, payload: p, expect: Expect::Refused("bad_json") }
            }
            13 => Case { topic, payload: Vec::new(), expect: Expect::Refused("bad_json") },
            // A good envelope cut short.
            14..=15 => {
                let full = self.envelope(seq, json!({"ts": ts, "output": 1}));
                let cut = r.usize(1..full.len());
                bad(full[..cut].to_string(), "bad_json")
            }
            // Deeply nested (past serde_json's recursion limit).
            16 => {
                let depth = r.usize(200..5000);
                bad(format!("{{\"v\":{}{}}}", "[".repeat(depth), "]".repeat(depth)), "bad_json")
            }
            // Over the payload limit (256 KiB), within the packet room.
            17 => {
                let pad = "p".repeat(r.usize(262_200..320_000));
                bad(json!({"v": 1, "agent": self.agent, "seq": seq, "pad": pad}).to_string(), "oversize")
            }
            // Too many samples.
            18 => {
                let samples: Vec<_> = (0..4097).map(|i| json!({"ts": ts, "output": i})).collect();
                bad(
                    json!({"v": 1, "agent": self.agent, "seq": seq, "samples": samples}).to_string(),
                    "oversize",
                )
            }
            // Invalid UTF-8 inside a string.
            19 => {
                let mut p =
                    self.envelope(seq, json!({"ts": ts, "output": 1, "state": "running"})).into_bytes();
                let at = p.iter().position(|b| *b == b'r').expect("state");
                p[at] = [0xff, 0xc3, 0xed][r.usize(0..3)];
                Case { topic, payload: p, expect: Expect::Refused("bad_json") }
            }
            // NaN, Infinity, a number out of range.
            20..=21 => {
                let v = ["NaN", "Infinity", "-Infinity", "1e999", "nan"][r.usize(0..5)];
                let p = format!(
                    "{{\"v\":1,\"agent\":\"{}\",\"seq\":{seq},\"samples\":[{{\"ts\":\"{ts}\",\"load_kw\":{v}}}]}}",
                    self.agent
                );
                bad(p, "bad_json")
            }
            // Wrong types and unknown values.
            22..=24 => {
                let p = match r.u8(0..6) {
                    0 => {
                        json!({"v": 1, "agent": self.agent, "seq": "seven", "samples": [{"ts": ts, "output": 1}]})
                    }
                    1 => json!({"v": 1, "agent": self.agent, "seq": seq, "samples": 5}),
                    2 => {
                        json!({"v": 1, "agent": self.agent, "seq": seq, "samples": [{"ts": ts, "output": "12"}]})
                    }
                    3 => {
                        json!({"v": 1, "agent": self.agent, "seq": seq, "samples": [{"ts": ts, "state": "flying"}]})
                    }
                    4 => {
                        json!({"v": 1, "agent": self.agent, "seq": -4, "samples": [{"ts": ts, "output": 1}]})
                    }
                    _ => json!([1, 2, 3]),
                };
                bad(p.to_string(), "invalid_field")
            }
            25 => bad(
                json!({"v": 1, "agent": self.agent, "samples": [{"ts": ts, "output": 1}]}).to_string(),
                "missing_field",
            ),
            26 => bad(
                json!({"v": 1, "agent": self.agent, "seq": seq, "samples": [{"output": 1}]}).to_string(),
                "missing_field",
            ),
            27 => bad(self.envelope(seq, json!({"ts": ts, "output": -1})), "negative_value"),
            28 => bad(
                json!({"v": 2, "agent": self.agent, "seq": seq, "samples": [{"ts": ts, "output": 1}]})
                    .to_string(),
                "unsupported_version",
            ),
            29 => bad(
                json!({"v": 1, "agent": "gw-forged", "seq": seq, "samples": [{"ts": ts, "output": 1}]})
                    .to_string(),
                "agent_mismatch",
            ),
            30 => {
                bad(json!({"v": 1, "agent": self.agent, "seq": seq, "samples": []}).to_string(), "no_samples")
            }
            31 => bad(self.envelope(seq, json!({"ts": ts})), "no_measurement"),
            32 => bad(self.envelope(seq, json!({"ts": "yesterday", "output": 1})), "bad_timestamp"),
            // Topic levels the subscription matches, with ids the protocol refuses.
            33..=35 => {
                let long = "a".repeat(65);
                let odd = ["line 1", &long, "l\u{e9}gne", "line.1", "", "li$ne"][r.usize(0..6)];
                let topic = format!("throughline/v1/{}/{}/{odd}/telemetry", self.site, self.agent);
                let payload = self.envelope(seq, json!({"ts": ts, "output": 1})).into_bytes();
                Case { topic, payload, expect: Expect::Refused("bad_id") }
            }
            36 => {
                let topic = format!("throughline/v1//{}/{}/telemetry", self.agent, self.asset);
                let payload = self.envelope(seq, json!({"ts": ts, "output": 1})).into_bytes();
                Case { topic, payload, expect: Expect::Refused("bad_id") }
            }
            // Topics it does not subscribe to: extra or missing levels.
            _ => {
                let topic = [
                    format!("throughline/v1/{}/{}/{}/telemetry/extra", self.site, self.agent, self.asset),
                    format!("throughline/v1/{}/{}/telemetry", self.site, self.agent),
                    format!("throughline/v2/{}/{}/{}/telemetry", self.site, self.agent, self.asset),
                    format!("/throughline/v1/{}/{}/{}/telemetry", self.site, self.agent, self.asset),
                ][r.usize(0..4)]
                .clone();
                Case { topic, payload: b"{}".to_vec(), expect: Expect::Unrouted }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use throughline_shared::codec::{decode, Inbound};
    use throughline_shared::{Limits, Topic};

    /// Every label is what the codec says, on many cases of every kind.
    #[test]
    fn every_label_is_the_codecs_verdict() {
        let now = chrono::Utc::now();
        let ts = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut f = Fuzz::new(7, "plant-fz", "gw-fz", &ts);
        f.huge_every = 397;
        let limits = Limits::default();
        let mut seen = std::collections::BTreeMap::new();
        for _ in 0..4_000 {
            let c = f.next();
            let got = match Topic::parse(&c.topic) {
                Err(_) if c.expect == Expect::Unrouted => Expect::Unrouted,
                _ if c.payload.len() == HUGE => Expect::Dropped,
                _ => match decode(&c.topic, &c.payload, now, &limits) {
                    Ok(Inbound::Telemetry(_)) => Expect::Good,
                    Ok(_) => panic!("not telemetry: {}", c.topic),
                    Err(e) => Expect::Refused(e.reason.label()),
                },
            };
            assert_eq!(
                got,
                c.expect,
                "{} {:?}",
                c.topic,
                String::from_utf8_lossy(&c.payload[..c.payload.len().min(200)])
            );
            *seen.entry(format!("{:?}", c.expect)).or_insert(0) += 1;
        }
        assert!(seen.len() >= 14, "every kind drawn: {seen:?}");
    }

    #[test]
    fn the_same_seed_gives_the_same_cases() {
        let mut a = Fuzz::new(42, "s", "g", "2026-01-01T00:00:00Z");
        let mut b = Fuzz::new(42, "s", "g", "2026-01-01T00:00:00Z");
        for _ in 0..1000 {
            let (x, y) = (a.next(), b.next());
            assert_eq!((x.topic, x.payload, x.expect), (y.topic, y.payload, y.expect));
        }
    }
}
