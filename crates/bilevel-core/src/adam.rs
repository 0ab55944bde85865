//! Adam (Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015) on host vectors,
//! the one implementation behind the solvers' upper optimiser and the mixture methods' logit
//! optimiser. With moments `m`, `s` and step count `t` (incremented first):
//!
//! `m ← β₁ m + (1 − β₁) g`, `s ← β₂ s + (1 − β₂) g²`,
//! `x ← x − lr · (m / (1 − β₁ᵗ)) / (√(s / (1 − β₂ᵗ)) + ε)`.

/// Adam's step rule: step size and the moment decays.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamRule {
    /// Step size.
    pub lr: f64,
    /// First-moment decay β₁.
    pub beta1: f64,
    /// Second-moment decay β₂.
    pub beta2: f64,
    /// ε added to `√ŝ`.
    pub eps: f64,
}

/// One Adam step on `x` with gradient `g` (see the module documentation); `m`, `s`, `x`, `g`
/// have one entry per coordinate. Does not allocate.
pub fn step(rule: &AdamRule, m: &mut [f64], s: &mut [f64], t: &mut u64, x: &mut [f64], g: &[f64]) {
    debug_assert!(m.len() == x.len() && s.len() == x.len() && g.len() == x.len());
    *t += 1;
    let b1t = 1.0 - rule.beta1.powi(*t as i32);
    let b2t = 1.0 - rule.beta2.powi(*t as i32);
    for i in 0..x.len() {
        m[i] = rule.beta1 * m[i] + (1.0 - rule.beta1) * g[i];
        s[i] = rule.beta2 * s[i] + (1.0 - rule.beta2) * g[i] * g[i];
        let mhat = m[i] / b1t;
        let shat = s[i] / b2t;
        x[i] -= rule.lr * mhat / (shat.sqrt() + rule.eps);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first step moves each coordinate by `lr · sign(g)` up to ε (m̂ = g, ŝ = g²); the second
    /// by hand: m = 0.19·g₁… with g = (2, −1) then (1, 1).
    #[test]
    fn two_steps_by_hand() {
        let rule = AdamRule {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let (mut m, mut s, mut t) = (vec![0.0; 2], vec![0.0; 2], 0);
        let mut x = vec![1.0, 1.0];
        step(&rule, &mut m, &mut s, &mut t, &mut x, &[2.0, -1.0]);
        assert_eq!(t, 1);
        assert!(
            (x[0] - 0.9).abs() < 1e-8 && (x[1] - 1.1).abs() < 1e-8,
            "{x:?}"
        );
        step(&rule, &mut m, &mut s, &mut t, &mut x, &[1.0, 1.0]);
        for (i, g1) in [2.0f64, -1.0].into_iter().enumerate() {
            let mi = 0.9 * 0.1 * g1 + 0.1 * 1.0;
            let si = 0.999 * 0.001 * g1 * g1 + 0.001;
            let mhat = mi / (1.0 - 0.81);
            let shat = si / (1.0 - 0.999f64.powi(2));
            let x1 = 1.0 - 0.1 * g1.signum();
            let want = x1 - 0.1 * mhat / (shat.sqrt() + 1e-8);
            assert!((x[i] - want).abs() < 1e-8, "x[{i}] = {} vs {want}", x[i]);
        }
    }
}
