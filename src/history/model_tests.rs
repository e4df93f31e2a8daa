//! History against a model: a plain `VecDeque` of the samples, with the
//! semantics history had when it stored whole `i64` timestamps.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;

/// The sample history hands back for `s`: annotations as stored.
fn as_stored(s: Sample) -> Sample {
    let a = Annotation::of(s.anomaly_score, s.expected_band);
    Sample { anomaly_score: a.score(), expected_band: a.band(), ..s }
}

/// Today's semantics of a series' history on a plain `VecDeque` of the
/// samples it hands back.
struct Model {
    cap: usize,
    max_age_ms: Option<i64>,
    samples: VecDeque<Sample>,
}

impl Model {
    fn push(&mut self, s: Sample) -> Pushed {
        let t = s.timestamp_ms;
        let outcome = match self.samples.back_mut() {
            Some(last) if last.timestamp_ms == t => {
                last.value = s.value;
                Pushed::Replaced
            }
            Some(last) if last.timestamp_ms > t => {
                let full = self.samples.len() == self.cap;
                if full && self.samples.front().is_some_and(|f| f.timestamp_ms > t) {
                    return Pushed::Dropped;
                }
                let pos = self.samples.partition_point(|x| x.timestamp_ms < t);
                if self.samples[pos].timestamp_ms == t {
                    self.samples[pos].value = s.value;
                    Pushed::Replaced
                } else {
                    self.samples.insert(pos, as_stored(s));
                    Pushed::Inserted
                }
            }
            _ => {
                self.samples.push_back(as_stored(s));
                Pushed::Appended
            }
        };
        if self.samples.len() > self.cap {
            self.samples.pop_front();
        }
        if let (Some(age), Some(newest)) =
            (self.max_age_ms, self.samples.back().map(|s| s.timestamp_ms))
        {
            while self.samples.front().is_some_and(|f| f.timestamp_ms < newest.saturating_sub(age))
            {
                self.samples.pop_front();
            }
        }
        outcome
    }

    fn annotate_newest(&mut self, score: f64, band: Option<(f64, f64)>) {
        if let Some(last) = self.samples.back_mut() {
            let a = Annotation::of(Some(score), band);
            (last.anomaly_score, last.expected_band) = (a.score(), a.band());
        }
    }
}

/// A sample as bits, so that NaN values compare equal to themselves.
type Bits = (i64, u64, Option<u64>, Option<(u64, u64)>);

fn bits(samples: &[Sample]) -> Vec<Bits> {
    samples
        .iter()
        .map(|s| {
            (
                s.timestamp_ms,
                s.value.to_bits(),
                s.anomaly_score.map(f64::to_bits),
                s.expected_band.map(|(l, u)| (l.to_bits(), u.to_bits())),
            )
        })
        .collect()
}

#[derive(Debug, Clone, Copy)]
enum When {
    /// This long after the newest pushed so far (before it when negative).
    After(i64),
    At(i64),
}

fn when() -> impl Strategy<Value = When> {
    prop_oneof![
        6 => (1i64..5_000).prop_map(When::After),
        2 => (-5_000i64..=0).prop_map(When::After),
        // past the 49.7 days a 32-bit offset holds
        2 => (i64::from(u32::MAX) - 2_000..(1i64 << 34)).prop_map(When::After),
        1 => any::<i64>().prop_map(When::At),
        1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(-1), Just(0)].prop_map(When::At),
    ]
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => -1e6f64..1e6,
        1 => any::<f64>(),
        1 => prop_oneof![
            Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY), Just(-0.0),
            Just(f64::MIN_POSITIVE / 2.0)
        ],
    ]
}

fn score() -> impl Strategy<Value = f64> {
    prop_oneof![4 => 0.0f64..=1.0, 1 => -1.0f64..2.0, 1 => Just(f64::NAN)]
}

fn band() -> impl Strategy<Value = Option<(f64, f64)>> {
    prop::option::of(prop_oneof![
        4 => (-1e3f64..1e3, 0.0f64..1e3).prop_map(|(l, w)| (l, l + w)),
        1 => (value(), value()),
    ])
}

#[derive(Debug, Clone)]
enum Op {
    Push(When, f64, Option<f64>, Option<(f64, f64)>),
    Annotate(f64, Option<(f64, f64)>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (when(), value(), prop::option::of(score()), band())
            .prop_map(|(w, v, s, b)| Op::Push(w, v, s, b)),
        1 => (score(), band()).prop_map(|(s, b)| Op::Annotate(s, b)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn reads_back_what_a_plain_deque_of_the_samples_holds(
        cap in prop_oneof![1usize..8, 8usize..48],
        max_age_ms in prop::option::of(prop_oneof![0i64..20_000, Just(i64::MAX), Just(1i64 << 33)]),
        ops in prop::collection::vec(op(), 0..160),
        reads in prop::collection::vec((any::<u8>(), 0i64..50_000, 0i64..50_000), 1..4),
    ) {
        let mut h = SeriesHistory::new(cap, max_age_ms);
        let mut model = Model { cap, max_age_ms, samples: VecDeque::new() };
        let mut newest = 0i64;
        let mut scratch = Vec::new();
        for op in ops {
            match op {
                Op::Push(when, value, score, band) => {
                    let t = match when {
                        When::After(d) => newest.saturating_add(d),
                        When::At(t) => t,
                    };
                    let s = Sample { anomaly_score: score, expected_band: band, ..Sample::new(t, value) };
                    prop_assert_eq!(h.push(s), model.push(s), "pushing {:?}", s);
                    newest = newest.max(t);
                }
                Op::Annotate(score, band) => {
                    h.annotate_newest(score, band);
                    model.annotate_newest(score, band);
                }
            }
            let all: Vec<Sample> = model.samples.iter().copied().collect();
            prop_assert_eq!(bits(&h.window(i64::MIN, i64::MAX)), bits(&all));
            prop_assert_eq!(h.len(), all.len());
            prop_assert_eq!(h.newest_ms(), all.last().map(|s| s.timestamp_ms));
            prop_assert_eq!(bits(&h.latest().into_iter().collect::<Vec<_>>()), bits(&all[all.len().saturating_sub(1)..]));
            for &(pick, back, len) in &reads {
                let k = usize::from(pick % 8);
                prop_assert_eq!(bits(&h.last_n(k)), bits(&all[all.len().saturating_sub(k)..]));
                let anchor = all.get(usize::from(pick) % all.len().max(1)).map_or(newest, |s| s.timestamp_ms);
                let since = anchor.saturating_sub(back);
                let until = since.saturating_add(len);
                let want: Vec<Sample> = all
                    .iter()
                    .copied()
                    .filter(|s| (since..=until).contains(&s.timestamp_ms))
                    .collect();
                prop_assert_eq!(bits(&h.window(since, until)), bits(&want));
                let mut values = Vec::new();
                h.values_between(since, until, &mut scratch, &mut values);
                prop_assert_eq!(
                    values.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    want.iter().map(|s| s.value.to_bits()).collect::<Vec<_>>()
                );
            }
        }
    }
}

#[test]
fn a_regular_series_rebases_in_place_every_49_7_days() {
    let day = 86_400_000i64;
    let mut h = SeriesHistory::new(1_000, None);
    let start = -3 * day; // before the epoch, too
    let mut t = start;
    // a sample a minute for 120 days: more than two 32-bit offset ranges
    while t < start + 120 * day {
        h.push(Sample::new(t, 1.0));
        assert!(h.wide.is_none(), "a 1 000-sample window never needs 64-bit offsets");
        t += 60_000;
    }
    // re-based twice, on the oldest sample held each time
    assert!(h.base_ms > start + 98 * day, "the base moved along: {}", h.base_ms);
    let w = h.window(i64::MIN, i64::MAX);
    assert_eq!(w.len(), 1_000);
    assert_eq!(w.last().unwrap().timestamp_ms, t - 60_000);
    assert!(w.windows(2).all(|p| p[1].timestamp_ms - p[0].timestamp_ms == 60_000));
}

#[test]
fn a_jump_past_49_7_days_widens_the_ring_until_the_old_samples_are_gone() {
    let mut h = SeriesHistory::new(4, None);
    for t in 0..4 {
        h.push(Sample::new(t, 1.0));
    }
    let far = 1i64 << 40;
    h.push(Sample::new(far, 2.0));
    assert!(h.wide.is_some());
    assert_eq!(
        h.window(i64::MIN, i64::MAX).iter().map(|s| s.timestamp_ms).collect::<Vec<_>>(),
        [1, 2, 3, far]
    );
    assert_eq!(h.window(4, far).len(), 1);
    h.push(Sample::new(far + 1, 3.0));
    h.push(Sample::new(far + 2, 3.0));
    assert!(h.wide.is_some(), "sample 3 is still held, 2^40 ms before the newest");
    // only samples within 49.7 days of each other, `len` pushes after
    // widening: 32-bit offsets from the oldest again
    h.push(Sample::new(far + 3, 3.0));
    assert!(h.wide.is_none());
    assert_eq!(h.base_ms, far);
    assert_eq!(
        h.window(i64::MIN, i64::MAX).iter().map(|s| s.timestamp_ms).collect::<Vec<_>>(),
        [far, far + 1, far + 2, far + 3]
    );
}
