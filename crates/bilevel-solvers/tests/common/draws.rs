//! Seeded random instances of the closed-form problems, log-uniform across scales (1e-3 … 1e3),
//! with adversarial lower-level starts: the maximiser of f on S(x), the ray that leads gradient
//! descent to it, the far side / inside / far outside of the manifold, and stationary points of g
//! that are not minimisers (the centre of a circle). Used by the "right or flagged" suite.

#![allow(dead_code)]

use bilevel_core::rng::Rng;
use bilevel_core::Bilevel;
use bilevel_problems::{
    Affine, CircleCenter, CircleRadius, CircleSine, Holder, Quadratic, QuadraticParams, Sphere,
    WithDerivatives,
};

/// The problems the suite draws from.
pub const PROBLEMS: [&str; 7] = [
    "circle-center",
    "circle-radius",
    "sphere",
    "affine",
    "circle-sine",
    "holder",
    "quadratic",
];

/// One drawn instance: the oracle, the point x and the lower-level start y0.
pub struct Case {
    /// Problem id, draw index, start kind and parameters, for failure messages.
    pub label: String,
    /// The oracle (analytic products).
    pub problem: Box<dyn Bilevel<Y = Vec<f64>> + Send + Sync>,
    /// Upper point where the hypergradient is taken.
    pub x: Vec<f64>,
    /// Lower-level start.
    pub y0: Vec<f64>,
}

fn log_uniform(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    (lo.ln() + rng.uniform() * (hi.ln() - lo.ln())).exp()
}

fn unit(rng: &mut Rng, d: usize) -> Vec<f64> {
    loop {
        let mut v = vec![0.0; d];
        rng.fill_normal(&mut v);
        let n = bilevel_core::vector::norm(&v);
        if n > 1e-8 {
            v.iter_mut().for_each(|x| *x /= n);
            return v;
        }
    }
}

fn scaled(v: &[f64], s: f64) -> Vec<f64> {
    v.iter().map(|x| s * x).collect()
}

fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// For the problems without a geometric start: `x ~ s_x N(0, I_m)` and `y0 ~ s_y N(0, I_d)`
/// with `s_x, s_y` log-uniform in 1e-3 … 1e3 (`y0 = 0` for kind 4); returns `(x, y0, s_x)`.
fn gaussian_point_and_start(
    rng: &mut Rng,
    m: usize,
    d: usize,
    kind: usize,
) -> (Vec<f64>, Vec<f64>, f64) {
    let sx = log_uniform(rng, 1e-3, 1e3);
    let mut x = vec![0.0; m];
    rng.fill_normal(&mut x);
    x.iter_mut().for_each(|v| *v *= sx);
    let mut y0 = vec![0.0; d];
    if kind != 4 {
        let sy = log_uniform(rng, 1e-3, 1e3);
        rng.fill_normal(&mut y0);
        y0.iter_mut().for_each(|v| *v *= sy);
    }
    (x, y0, sx)
}

const KINDS: [&str; 5] = [
    "random",
    "maximiser",
    "ray",
    "near-minimiser",
    "stationary-g",
];

fn boxed<P>(p: P) -> Box<dyn Bilevel<Y = Vec<f64>> + Send + Sync>
where
    P: bilevel_problems::ProblemDef + Send + Sync + 'static,
{
    Box::new(WithDerivatives::analytic(p))
}

/// Draw `i` of problem `name` (independent of how many are drawn).
pub fn draw(name: &str, seed: u64, i: u64) -> Case {
    let mut rng = Rng::substream(seed ^ 0x6472_6177, i);
    let kind = rng.below(5) as usize;
    let k = KINDS[kind];
    match name {
        "circle-center" => {
            let r = log_uniform(&mut rng, 1e-3, 1e3);
            let x = scaled(&unit(&mut rng, 2), log_uniform(&mut rng, 1e-3, 1e3));
            let dist = log_uniform(&mut rng, 1e-3, 1e3);
            let b = add(&x, &scaled(&unit(&mut rng, 2), dist));
            // n: unit vector from b through x (the maximiser of f on the circle is x + R n).
            let n: Vec<f64> = x.iter().zip(&b).map(|(a, c)| (a - c) / dist).collect();
            let y0 = match kind {
                0 => add(
                    &x,
                    &scaled(&unit(&mut rng, 2), r * log_uniform(&mut rng, 1e-2, 1e2)),
                ),
                1 => add(&x, &scaled(&n, r)),
                2 => add(&x, &scaled(&n, r * log_uniform(&mut rng, 1e-2, 1e2))),
                3 => add(
                    &add(&x, &scaled(&n, -r)),
                    &scaled(&unit(&mut rng, 2), 1e-2 * r),
                ),
                _ => x.clone(),
            };
            Case {
                label: format!(
                    "circle-center #{i} ({k}): R = {r:e}, b = {b:?}, x = {x:?}, y0 = {y0:?}"
                ),
                problem: boxed(CircleCenter::new(r, &b).expect("valid draw")),
                x,
                y0,
            }
        }
        "circle-radius" => {
            let a = scaled(&unit(&mut rng, 2), log_uniform(&mut rng, 1e-3, 1e3));
            let rad = log_uniform(&mut rng, 1e-3, 1e3);
            let x = vec![rad.ln()];
            let na = bilevel_core::vector::norm(&a);
            let ah: Vec<f64> = a.iter().map(|v| v / na).collect();
            let y0 = match kind {
                0 => scaled(&unit(&mut rng, 2), rad * log_uniform(&mut rng, 1e-2, 1e2)),
                1 => scaled(&ah, rad),
                2 => scaled(&ah, rad * log_uniform(&mut rng, 1e-2, 1e2)),
                3 => add(&scaled(&ah, -rad), &scaled(&unit(&mut rng, 2), 1e-2 * rad)),
                _ => vec![0.0, 0.0],
            };
            Case {
                label: format!("circle-radius #{i} ({k}): a = {a:?}, x = {x:?}, y0 = {y0:?}"),
                problem: boxed(CircleRadius::new(&a).expect("valid draw")),
                x,
                y0,
            }
        }
        "sphere" => {
            const DIMS: [usize; 9] = [1, 2, 3, 5, 10, 30, 100, 300, 1000];
            let d = DIMS[rng.below(DIMS.len() as u64) as usize];
            let xh = unit(&mut rng, d);
            let x = scaled(&xh, log_uniform(&mut rng, 1e-3, 1e3));
            let y0 = match kind {
                0 => scaled(&unit(&mut rng, d), log_uniform(&mut rng, 1e-2, 1e2)),
                1 => xh.clone(),
                2 => scaled(&xh, log_uniform(&mut rng, 1e-2, 1e2)),
                3 => add(&scaled(&xh, -1.0), &scaled(&unit(&mut rng, d), 1e-2)),
                _ => vec![0.0; d],
            };
            Case {
                label: format!(
                    "sphere #{i} ({k}): d = {d}, |x| = {:e}, x[..2] = {:?}, y0[..2] = {:?}",
                    bilevel_core::vector::norm(&x),
                    &x[..d.min(2)],
                    &y0[..d.min(2)]
                ),
                problem: boxed(Sphere::new(d).expect("valid draw")),
                x,
                y0,
            }
        }
        "affine" => {
            let d = log_uniform(&mut rng, 2.0, 300.0).round().max(2.0) as usize;
            let r = 1 + rng.below(d as u64 - 1) as usize;
            let m = 1 + rng.below(8) as usize;
            let inst = rng.below(1000);
            let def = Affine::new(d, r, m, inst).expect("valid draw");
            let (x, y0, sx) = gaussian_point_and_start(&mut rng, m, d, kind);
            Case {
                label: format!(
                    "affine #{i} ({k}): d = {d}, r = {r}, m = {m}, seed = {inst}, |x| ~ {sx:e}"
                ),
                problem: boxed(def),
                x,
                y0,
            }
        }
        "circle-sine" => {
            let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
            let x = vec![sign * log_uniform(&mut rng, 1e-3, 1e2)];
            let s = x[0].sin().signum();
            let y0 = match kind {
                0 => scaled(&unit(&mut rng, 2), log_uniform(&mut rng, 1e-2, 1e2)),
                1 => vec![s, 0.0],
                2 => vec![s * log_uniform(&mut rng, 1e-2, 1e2), 0.0],
                3 => add(&[-s, 0.0], &scaled(&unit(&mut rng, 2), 1e-2)),
                _ => vec![0.0, 0.0],
            };
            Case {
                label: format!("circle-sine #{i} ({k}): x = {x:?}, y0 = {y0:?}"),
                problem: boxed(CircleSine),
                x,
                y0,
            }
        }
        "holder" => {
            const PS: [u32; 6] = [1, 2, 3, 4, 6, 8];
            let p = PS[rng.below(PS.len() as u64) as usize];
            let sign = if rng.uniform() < 0.5 { -1.0 } else { 1.0 };
            let xv = sign * log_uniform(&mut rng, 1e-3, 1e3);
            let ystar = xv.signum() * xv.abs().powf(1.0 / (2 * p - 1) as f64);
            let y2 = rng.normal() * log_uniform(&mut rng, 1e-2, 1e2);
            let y0 = match kind {
                0 => vec![
                    ystar
                        * log_uniform(&mut rng, 1e-2, 1e1)
                        * if rng.uniform() < 0.5 { -1.0 } else { 1.0 },
                    y2,
                ],
                1 => vec![-ystar, y2],
                2 => vec![ystar * log_uniform(&mut rng, 1.0, 3.0), y2],
                3 => vec![ystar * (1.0 + 1e-2 * rng.normal()), y2],
                _ => vec![0.0, 0.0],
            };
            Case {
                label: format!("holder #{i} ({k}): p = {p}, x = {xv:e}, y0 = {y0:?}"),
                problem: boxed(Holder::new(p).expect("valid draw")),
                x: vec![xv],
                y0,
            }
        }
        "quadratic" => {
            let dim_y = log_uniform(&mut rng, 2.0, 60.0).round() as usize;
            let dim_x = log_uniform(&mut rng, 1.0, 30.0).round() as usize;
            let n_inner = dim_y + rng.below(3 * dim_y as u64) as usize;
            let n_outer = 1 + rng.below(100) as usize;
            let l = log_uniform(&mut rng, 1e-3, 1e3);
            let mu = l / log_uniform(&mut rng, 1.0, 1e3);
            let ridge = log_uniform(&mut rng, 1e-2, 1e2);
            let inst = rng.below(1000);
            let def = Quadratic::new(QuadraticParams {
                n_inner,
                n_outer,
                dim_y,
                dim_x,
                mu,
                l,
                seed: inst,
                ridge,
            })
            .expect("valid draw");
            let (x, y0, sx) = gaussian_point_and_start(&mut rng, dim_x, dim_y, kind);
            Case {
                label: format!(
                    "quadratic #{i} ({k}): d = {dim_y}, m = {dim_x}, n = {n_inner}, L = {l:e}, mu = {mu:e}, seed = {inst}, |x| ~ {sx:e}"
                ),
                problem: boxed(def),
                x,
                y0,
            }
        }
        other => panic!("no draws for {other}"),
    }
}
