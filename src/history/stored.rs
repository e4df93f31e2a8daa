//! How history packs a sample and the detector's annotation of it into ring
//! slots: 12 bytes for a sample, 8 for an annotation.

use half::bf16;

/// A sample as its ring holds it, in 12 bytes: the low 32 bits of its
/// timestamp's offset in milliseconds from the series' base, and the bits of
/// its value (two `u32` halves, so a slot is 4-aligned and has no padding).
///
/// The offset's high bits, where a series holds samples more than
/// `u32::MAX` ms (about 49.7 days) after its base, live in a side ring (see
/// `SeriesHistory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    offset: u32,
    value: [u32; 2],
}

impl Stored {
    /// A slot that every copy overwrites.
    pub(super) const EMPTY: Stored = Stored { offset: 0, value: [0; 2] };

    #[allow(clippy::cast_possible_truncation)] // the halves of the bits, on purpose
    pub(super) fn new(offset: u32, value: f64) -> Stored {
        let bits = value.to_bits();
        Stored { offset, value: [bits as u32, (bits >> 32) as u32] }
    }

    /// The low 32 bits of the timestamp's offset from the series' base.
    pub(super) fn offset(self) -> u32 {
        self.offset
    }

    pub(super) fn set_offset(&mut self, offset: u32) {
        self.offset = offset;
    }

    /// The value, bit for bit as pushed.
    pub(super) fn value(self) -> f64 {
        f64::from_bits(u64::from(self.value[0]) | (u64::from(self.value[1]) << 32))
    }

    pub(super) fn set_value(&mut self, value: f64) {
        *self = Stored::new(self.offset, value);
    }
}

/// The detector's annotation of one stored sample, in 8 bytes.
///
/// - the score in steps of 1/10 000 (`u16::MAX` when absent): the page prints
///   two decimals, and a score reads back as a short decimal (`0.7312`);
/// - the band's lower edge as an `f32` (NaN when there is no band), as it
///   always was;
/// - the band's width (`upper - lower`) as a `bfloat16`: eight significant
///   bits, so the upper edge is the lower one plus the width to within 0.2 %
///   of the width (a fraction of a pixel on any chart), with the range of an
///   `f32`.
///
/// Both edges are clamped to finite `f32`s and the width to the largest
/// `bfloat16` (about 3.4e38), so an annotation never reads back as an
/// infinity. Encoding what a decode returned gives the same bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Annotation {
    lower: u32,
    width: u16,
    score: u16,
}

impl Annotation {
    const NO_SCORE: u16 = u16::MAX;
    const SCORE_STEPS: f64 = 10_000.0;
    pub(super) const NONE: Annotation =
        Annotation { lower: f32::NAN.to_bits(), width: 0, score: Annotation::NO_SCORE };

    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub(super) fn of(score: Option<f64>, band: Option<(f64, f64)>) -> Annotation {
        let score = match score {
            // in [0, 10 000]: the cast cannot truncate
            Some(s) if !s.is_nan() => (s.clamp(0.0, 1.0) * Self::SCORE_STEPS).round() as u16,
            _ => Self::NO_SCORE,
        };
        let finite_f32 = |v: f64| v.clamp(f64::from(f32::MIN), f64::from(f32::MAX)) as f32;
        match band {
            Some((l, u)) if !l.is_nan() && !u.is_nan() => {
                let lower = finite_f32(l);
                let width = bf16::from_f64(
                    (f64::from(finite_f32(u)) - f64::from(lower))
                        .clamp(-f64::from(bf16::MAX), f64::from(bf16::MAX)),
                );
                Annotation { lower: lower.to_bits(), width: width.to_bits(), score }
            }
            _ => Annotation { score, ..Self::NONE },
        }
    }

    pub(super) fn is_none(self) -> bool {
        self.score == Self::NO_SCORE && f32::from_bits(self.lower).is_nan()
    }

    pub(super) fn score(self) -> Option<f64> {
        (self.score != Self::NO_SCORE).then(|| f64::from(self.score) / Self::SCORE_STEPS)
    }

    pub(super) fn band(self) -> Option<(f64, f64)> {
        let lower = f32::from_bits(self.lower);
        if lower.is_nan() {
            return None;
        }
        let lower = f64::from(lower);
        let upper = lower + f64::from(bf16::from_bits(self.width));
        // the width was clamped so that the sum stays within the f32 range
        Some((lower, upper.clamp(f64::from(f32::MIN), f64::from(f32::MAX))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn a_slot_keeps_every_value_bit_for_bit(bits in any::<u64>(), offset in any::<u32>()) {
            let v = f64::from_bits(bits);
            let s = Stored::new(offset, v);
            prop_assert_eq!((s.offset(), s.value().to_bits()), (offset, bits));
            let mut t = s;
            t.set_value(-v);
            prop_assert_eq!((t.offset(), t.value().to_bits()), (offset, (-v).to_bits()));
        }

        #[test]
        fn annotations_keep_the_documented_precision(
            score in prop::option::of(0.0f64..=1.0),
            lower in prop_oneof![-1e30f64..1e30, -1e3f64..1e3, Just(0.0)],
            width in prop_oneof![0.0f64..1e3, 0.0f64..1e30, Just(0.0)],
            banded in any::<bool>(),
        ) {
            let upper = lower + width;
            let band = banded.then_some((lower, upper));
            let a = Annotation::of(score, band);
            prop_assert_eq!(a.score().is_some(), score.is_some());
            if let (Some(got), Some(want)) = (a.score(), score) {
                // steps of 1/10 000, rounded to the nearest
                prop_assert!((got - want).abs() <= 0.5e-4 + 1e-12, "{} {}", got, want);
            }
            prop_assert_eq!(a.band().is_some(), banded);
            if let Some((l, u)) = a.band() {
                prop_assert!(l.is_finite() && u.is_finite());
                // the lower edge at f32 precision, the width to 2^-8 of itself
                prop_assert!((l - lower).abs() <= lower.abs() * 2f64.powi(-24), "{} {}", l, lower);
                let w = u - l;
                let slack = width * 2f64.powi(-8) + (lower.abs() + upper.abs()) * 2f64.powi(-23);
                prop_assert!((w - width).abs() <= slack, "{} {}", w, width);
            }
            // what reads back is stored again unchanged
            prop_assert_eq!(Annotation::of(a.score(), a.band()), a);
        }
    }

    #[test]
    fn slots_are_12_bytes_and_annotations_8() {
        assert_eq!(std::mem::size_of::<Stored>(), 12);
        assert_eq!(std::mem::size_of::<Annotation>(), 8);
    }

    #[test]
    fn annotations_out_of_range_read_back_finite_and_clamped() {
        let a = Annotation::of(Some(1.5), Some((0.0, f64::MAX)));
        let (l, u) = a.band().unwrap();
        assert_eq!((a.score(), l, u), (Some(1.0), 0.0, f64::from(bf16::MAX)));
        // wider than any bfloat16: cut at the largest width, still finite
        let (l, u) = Annotation::of(None, Some((f64::MIN, f64::MAX))).band().unwrap();
        assert_eq!((l, u), (f64::from(f32::MIN), f64::from(f32::MIN) + f64::from(bf16::MAX)));
        assert_eq!(Annotation::of(Some(-0.2), None).score(), Some(0.0));
        assert_eq!(Annotation::of(Some(f64::NAN), None), Annotation::NONE);
        assert!(Annotation::of(None, Some((f64::NAN, 1.0))).is_none());
        // an anomaly far outside a narrow band keeps the band's edges
        let (l, u) = Annotation::of(Some(1.0), Some((9.0, 13.0))).band().unwrap();
        assert_eq!((l, u), (9.0, 13.0));
    }
}
