//! EnMasse's credits as exact fixed-point numbers.
//!
//! Plans write credits as decimals (`0.001`, `0.1`); summing them as floating point makes ten
//! `0.1` queues need `0.9999999999999999` or `1.0000000000000002` brokers, and the ceiling of the
//! latter is two. Credits are therefore kept in millionths, which every EnMasse plan value fits.

use crate::error::Violation;

/// An amount of credit, in millionths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Credits(u64);

impl Credits {
    /// No credit.
    pub const ZERO: Self = Self(0);
    /// One credit: one pod's worth.
    pub const ONE: Self = Self(1_000_000);
    /// The largest credit a plan may state.
    pub const MAX: Self = Self(1_000_000 * 1_000_000_000);

    /// Reads a credit from a plan; negative, non-finite or absurdly large values are refused, and
    /// finer values than a millionth are rounded to the nearest millionth.
    pub fn from_plan(value: f64) -> Result<Self, Violation> {
        const RANGE: Violation = Violation::OutOfRange {
            range: "a number from 0 to 1000000000",
        };
        if !value.is_finite() || value < 0.0 || value > Self::MAX.as_f64() {
            return Err(RANGE);
        }
        // In range, so the product is a non-negative integer below 2^60 after rounding.
        let millionths = (value * 1_000_000.0).round();
        Ok(Self(millionths as u64))
    }

    /// A whole number of credits.
    pub fn units(count: u64) -> Self {
        Self(count.saturating_mul(Self::ONE.0))
    }

    /// The number of whole credits needed to hold this much: one pod per started credit.
    pub fn ceil_units(self) -> u64 {
        self.0.div_ceil(Self::ONE.0)
    }

    /// The value as a decimal, for status and messages.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / 1_000_000.0
    }

    /// This credit split evenly over `parts` (at least one), rounded up.
    pub fn share(self, parts: u32) -> Self {
        Self(self.0.div_ceil(u64::from(parts.max(1))))
    }
}

impl std::ops::Add for Credits {
    type Output = Self;

    fn add(self, rhs: Self) -> Self {
        Self(self.0.saturating_add(rhs.0))
    }
}

impl std::ops::AddAssign for Credits {
    fn add_assign(&mut self, rhs: Self) {
        *self = *self + rhs;
    }
}

impl std::iter::Sum for Credits {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::ZERO, |a, b| a + b)
    }
}

impl std::fmt::Display for Credits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_tenths_make_exactly_one_credit() {
        let tenth = Credits::from_plan(0.1).unwrap();
        let sum: Credits = std::iter::repeat_n(tenth, 10).sum();
        assert_eq!(sum, Credits::ONE);
        assert_eq!(sum.ceil_units(), 1);
        assert_eq!((sum + Credits::from_plan(0.000001).unwrap()).ceil_units(), 2);
    }

    #[test]
    fn plan_values_outside_the_range_are_refused() {
        for bad in [-0.1, f64::NAN, f64::INFINITY, 2e9] {
            assert!(Credits::from_plan(bad).is_err(), "{bad}");
        }
        assert_eq!(Credits::from_plan(0.0).unwrap(), Credits::ZERO);
        assert_eq!(Credits::from_plan(2.0).unwrap().ceil_units(), 2);
    }

    #[test]
    fn shares_round_up_so_partitions_never_undercount() {
        assert_eq!(Credits::ONE.share(3).0, 333_334);
        assert_eq!(Credits::ONE.share(0), Credits::ONE);
    }
}
