//! Statistics over seeds: quantiles by linear interpolation, first crossing of a tolerance, and
//! step-function resampling of traces onto a common axis (for median curves with quantile bands).
//!
//! "Not reached" is `+∞` throughout, so that a quantile over seeds is `+∞` exactly when the
//! corresponding order statistic (or one it interpolates towards) did not reach the target.

use serde::Serialize;

/// The `q`-quantile of `sorted` (ascending, no NaN; `+∞` allowed) by linear interpolation between
/// order statistics (Hyndman & Fan type 7, the default of R and NumPy): with `h = (n − 1) q`,
///
/// `Q(q) = x₍⌊h⌋₎ + (h − ⌊h⌋) (x₍⌊h⌋+1₎ − x₍⌊h⌋₎)`.
///
/// When `h` is an integer the order statistic itself is returned (so a `+∞` neighbour with weight
/// zero does not turn the result into NaN); when a positive weight falls on `+∞` the result is
/// `+∞`. `None` for an empty slice.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let frac = h - lo as f64;
    if frac == 0.0 || lo + 1 >= n {
        return Some(sorted[lo.min(n - 1)]);
    }
    let (a, b) = (sorted[lo], sorted[lo + 1]);
    if b.is_infinite() {
        return Some(f64::INFINITY);
    }
    Some(a + frac * (b - a))
}

/// Median and 20 %/80 % quantiles of a sample, with how many of its values are finite.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Spread {
    /// Median (`+∞` serialises as `null`: not reached by at least half).
    #[serde(serialize_with = "finite_or_null")]
    pub median: f64,
    /// 20 % quantile.
    #[serde(serialize_with = "finite_or_null")]
    pub q20: f64,
    /// 80 % quantile.
    #[serde(serialize_with = "finite_or_null")]
    pub q80: f64,
    /// Number of values that are finite (seeds that reached the target).
    pub finite: usize,
    /// Sample size (seeds).
    pub n: usize,
}

fn finite_or_null<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else {
        s.serialize_none()
    }
}

impl Spread {
    /// Spread of `values`; NaN counts as `+∞` (not reached / failed). `None` when empty.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let mut v: Vec<f64> = values
            .iter()
            .map(|&x| if x.is_nan() { f64::INFINITY } else { x })
            .collect();
        v.sort_by(|a, b| a.total_cmp(b));
        Some(Spread {
            median: quantile(&v, 0.5)?,
            q20: quantile(&v, 0.2)?,
            q80: quantile(&v, 0.8)?,
            finite: v.iter().filter(|x| x.is_finite()).count(),
            n: v.len(),
        })
    }
}

/// Index of the first point whose value is strictly below `eps` (`φ − φ* < ε`); NaN never is.
pub fn first_below(values: &[f64], eps: f64) -> Option<usize> {
    values.iter().position(|&v| v < eps)
}

/// Step-function resampling: for each `g` of `grid`, the value `ys[i]` of the last point with
/// `xs[i] ≤ g` (`xs` non-decreasing). Before the first point the value is NaN; after the last
/// point it is `ys[last]` when `hold` (the run ended with its budget), else `+∞` (the run failed
/// there, so it never reaches anything later).
pub fn step_resample(xs: &[f64], ys: &[f64], grid: &[f64], hold: bool) -> Vec<f64> {
    let mut out = Vec::with_capacity(grid.len());
    let mut i = 0usize;
    let last_x = xs.last().copied().unwrap_or(f64::NEG_INFINITY);
    for &g in grid {
        while i < xs.len() && xs[i] <= g {
            i += 1;
        }
        out.push(if i == 0 {
            f64::NAN
        } else if g > last_x && !hold {
            f64::INFINITY
        } else {
            ys[i - 1]
        });
    }
    out
}

/// `n` evenly spaced points from `a` to `b` inclusive (`n ≥ 2`; one point `a` when `n < 2`).
pub fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n < 2 {
        return vec![a];
    }
    (0..n)
        .map(|k| a + (b - a) * k as f64 / (n - 1) as f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Type-7 quantiles of 1..5 (h = 4q): q20 at h = 0.8 → 1.8, median 3, q80 at h = 3.2 → 4.2.
    #[test]
    fn quantiles_interpolate_linearly_between_order_statistics() {
        let s = Spread::of(&[4.0, 2.0, 5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.median, s.finite, s.n), (3.0, 5, 5));
        assert!(
            (s.q20 - 1.8).abs() < 1e-15 && (s.q80 - 4.2).abs() < 1e-15,
            "{s:?}"
        );
        // Even size: the median is the mean of the middle two; q20 of 4 values at h = 0.6.
        let s = Spread::of(&[10.0, 20.0, 30.0, 40.0]).unwrap();
        assert_eq!(s.median, 25.0);
        assert!((s.q20 - 16.0).abs() < 1e-12 && (s.q80 - 34.0).abs() < 1e-12);
        // One value, and an empty sample.
        let s = Spread::of(&[7.0]).unwrap();
        assert_eq!((s.median, s.q20, s.q80), (7.0, 7.0, 7.0));
        assert!(Spread::of(&[]).is_none());
    }

    /// Not-reached seeds (+∞, NaN) push exactly the quantiles that interpolate towards them.
    #[test]
    fn unreached_seeds_make_upper_quantiles_infinite() {
        let s = Spread::of(&[1.0, 2.0, 3.0, 4.0, f64::INFINITY]).unwrap();
        assert_eq!(s.median, 3.0);
        assert!((s.q20 - 1.8).abs() < 1e-15);
        assert!(s.q80.is_infinite() && s.finite == 4);
        // Three of five not reached: the median (h = 2) is the third value, +∞.
        let s = Spread::of(&[f64::NAN, 2.0, f64::INFINITY, 1.0, f64::INFINITY]).unwrap();
        assert!(s.median.is_infinite() && s.finite == 2);
        assert!((s.q20 - 1.8).abs() < 1e-15);
        // h integer: the +∞ neighbour has weight zero and must not produce NaN.
        assert_eq!(quantile(&[1.0, 2.0, f64::INFINITY], 0.5), Some(2.0));
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"median\":null"), "{json}");
    }

    /// Five seeds with known crossing times of ε = 1e-3: the first record strictly below ε.
    #[test]
    fn time_to_tolerance_of_hand_made_traces() {
        let times = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0];
        // Gap traces; seed k crosses 1e-3 at record k + 1, except the last, which never does.
        let traces: [[f64; 6]; 5] = [
            [1.0, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8],
            [1.0, 1e-2, 9e-4, 1e-6, 1e-7, 1e-8],
            [1.0, 1e-2, 1e-3, 5e-4, 1e-7, 1e-8], // exactly 1e-3 is not below it
            [1.0, 1e-2, 1e-2, 1e-2, 2e-4, 1e-8],
            [1.0, 1e-1, 1e-2, 1e-2, 1e-2, 1e-2],
        ];
        let t: Vec<f64> = traces
            .iter()
            .map(|g| first_below(g, 1e-3).map_or(f64::INFINITY, |i| times[i]))
            .collect();
        assert_eq!(t, vec![1.0, 2.0, 3.0, 4.0, f64::INFINITY]);
        let s = Spread::of(&t).unwrap();
        assert_eq!((s.median, s.finite), (3.0, 4));
        assert!((s.q20 - 1.8).abs() < 1e-15 && s.q80.is_infinite());
        assert_eq!(first_below(&[f64::NAN, 0.5], 1.0), Some(1));
    }

    #[test]
    fn step_resampling_holds_or_fails_after_the_end() {
        let xs = [1.0, 2.0, 4.0];
        let ys = [10.0, 5.0, 1.0];
        let grid = [0.5, 1.0, 1.5, 3.9, 4.0, 6.0];
        let held = step_resample(&xs, &ys, &grid, true);
        assert!(held[0].is_nan());
        assert_eq!(&held[1..], &[10.0, 10.0, 5.0, 1.0, 1.0]);
        let failed = step_resample(&xs, &ys, &grid, false);
        assert_eq!(&failed[1..5], &[10.0, 10.0, 5.0, 1.0]);
        assert!(failed[5].is_infinite());
        assert_eq!(linspace(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    }
}
