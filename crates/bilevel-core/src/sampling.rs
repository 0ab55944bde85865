//! Minibatch sampling for finite sums `F(z) = (1/n) Σ_{i<n} F_i(z)` (the stochastic solvers of
//! docs/ALGORITHMS.md §5).
//!
//! Two schemes, both seeded:
//!
//! * [`Scheme::Chunks`], the sampling of the reference benchmark (Dagréou et al.): the indices are
//!   cut once into `C = ⌈n/b⌉` contiguous chunks `[cb, min((c+1)b, n))`; every pass visits each
//!   chunk once, in an order reshuffled at the start of the pass. The chunk mean is rescaled by
//!   `w_c = C·|c|/n`, so that `E[w_c · mean_{i∈c} F_i] = F` exactly even when the last chunk is
//!   partial (`w_c = 1` for every chunk when `b` divides `n`).
//! * [`Scheme::Uniform`]: `b` indices drawn independently and uniformly (with replacement),
//!   weight 1; unbiased for any `b`.
//!
//! A batch is handed out as a [`Batch`] borrowing the sampler's buffer: drawing does not
//! allocate after construction.

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// How minibatches are drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scheme {
    /// Fixed contiguous chunks, chunk order reshuffled every pass, partial last chunk weighted.
    #[default]
    Chunks,
    /// Independent uniform indices (with replacement).
    Uniform,
}

/// One minibatch: the sample indices and the weight of its mean.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Batch<'a> {
    /// Sample indices (contiguous and increasing for [`Scheme::Chunks`]).
    pub indices: &'a [usize],
    /// Multiply the batch mean by this to get an unbiased estimate of the full mean.
    pub weight: f64,
    /// Chunk id for [`Scheme::Chunks`] (the key of per-batch memories such as SABA's); `None` for
    /// uniform batches.
    pub chunk: Option<usize>,
}

impl Batch<'_> {
    /// The factor `w/|B|` by which a batch *sum* `Σ_{i∈B} F_i` is multiplied to estimate the
    /// full mean `(1/n) Σ_i F_i` (0 for an empty batch).
    #[inline]
    pub fn sum_scale(&self) -> f64 {
        if self.indices.is_empty() {
            0.0
        } else {
            self.weight / self.indices.len() as f64
        }
    }
}

/// A seeded minibatch sampler over `0..n` (serialisable, so that a checkpoint resumes the same
/// stream of batches).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchSampler {
    n: usize,
    batch: usize,
    scheme: Scheme,
    rng: Rng,
    order: Vec<usize>,
    position: usize,
    buffer: Vec<usize>,
}

impl BatchSampler {
    /// A sampler of batches of `batch` indices from `0..n` (`batch` is clamped to `n`);
    /// `None` when `n` or `batch` is 0.
    pub fn new(n: usize, batch: usize, scheme: Scheme, seed: u64) -> Option<Self> {
        if n == 0 || batch == 0 {
            return None;
        }
        let batch = batch.min(n);
        let chunks = n.div_ceil(batch);
        let mut s = BatchSampler {
            n,
            batch,
            scheme,
            rng: Rng::new(seed),
            order: (0..chunks).collect(),
            position: 0,
            buffer: Vec::with_capacity(batch),
        };
        if scheme == Scheme::Chunks {
            s.shuffle();
        }
        Some(s)
    }

    /// Number of chunks `⌈n/b⌉` (batches per pass).
    pub fn chunks(&self) -> usize {
        self.order.len()
    }

    /// Batch size `b`.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// The indices of chunk `c`: `[cb, min((c+1)b, n))`.
    pub fn chunk_range(&self, c: usize) -> std::ops::Range<usize> {
        c * self.batch..((c + 1) * self.batch).min(self.n)
    }

    /// The weight `C·|c|/n` of chunk `c`.
    pub fn chunk_weight(&self, c: usize) -> f64 {
        let r = self.chunk_range(c);
        self.chunks() as f64 * r.len() as f64 / self.n as f64
    }

    /// Fisher–Yates shuffle of the chunk order.
    fn shuffle(&mut self) {
        for i in (1..self.order.len()).rev() {
            let j = self.rng.below(i as u64 + 1) as usize;
            self.order.swap(i, j);
        }
    }

    /// The next batch.
    pub fn next_batch(&mut self) -> Batch<'_> {
        self.buffer.clear();
        match self.scheme {
            Scheme::Chunks => {
                if self.position == self.order.len() {
                    self.shuffle();
                    self.position = 0;
                }
                let c = self.order[self.position];
                self.position += 1;
                self.buffer.extend(self.chunk_range(c));
                let weight = self.chunk_weight(c);
                Batch {
                    indices: &self.buffer,
                    weight,
                    chunk: Some(c),
                }
            }
            Scheme::Uniform => {
                for _ in 0..self.batch {
                    let i = self.rng.below(self.n as u64) as usize;
                    self.buffer.push(i);
                }
                Batch {
                    indices: &self.buffer,
                    weight: 1.0,
                    chunk: None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Per-sample values whose mean is known exactly.
    fn values(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| (i * i % 7) as f64 - 2.5 + i as f64 / n as f64)
            .collect()
    }

    #[test]
    fn every_pass_visits_each_index_once_in_contiguous_chunks() {
        let (n, b) = (103, 10);
        let mut s = BatchSampler::new(n, b, Scheme::Chunks, 7).unwrap();
        assert_eq!(s.chunks(), 11);
        let mut orders = Vec::new();
        for _pass in 0..3 {
            let mut seen = vec![0usize; n];
            let mut order = Vec::new();
            for _ in 0..s.chunks() {
                let batch = s.next_batch();
                let c = batch.chunk.unwrap();
                order.push(c);
                assert!(batch.indices.windows(2).all(|w| w[1] == w[0] + 1));
                assert_eq!(batch.indices[0], c * b);
                let expected = if c == 10 {
                    11.0 * 3.0 / 103.0
                } else {
                    11.0 * 10.0 / 103.0
                };
                assert!((batch.weight - expected).abs() < 1e-15);
                for &i in batch.indices {
                    seen[i] += 1;
                }
            }
            assert!(seen.iter().all(|&k| k == 1));
            orders.push(order);
        }
        // The order is reshuffled between passes.
        assert!(orders[0] != orders[1] || orders[1] != orders[2]);
    }

    #[test]
    fn chunk_estimator_is_exactly_unbiased_with_a_partial_chunk() {
        // E over a uniformly chosen chunk of w_c · mean_c = (1/C) Σ_c w_c mean_c = full mean.
        for (n, b) in [(103, 10), (100, 10), (5, 64), (64, 64), (65, 64)] {
            let v = values(n);
            let full = v.iter().sum::<f64>() / n as f64;
            let s = BatchSampler::new(n, b, Scheme::Chunks, 1).unwrap();
            let est: f64 = (0..s.chunks())
                .map(|c| {
                    let r = s.chunk_range(c);
                    let mean = v[r.clone()].iter().sum::<f64>() / r.len() as f64;
                    s.chunk_weight(c) * mean
                })
                .sum::<f64>()
                / s.chunks() as f64;
            assert!((est - full).abs() < 1e-12, "n {n} b {b}: {est} vs {full}");
        }
    }

    #[test]
    fn full_batch_is_the_full_mean_and_same_seed_same_stream() {
        let mut s = BatchSampler::new(50, 80, Scheme::Chunks, 3).unwrap();
        let b = s.next_batch();
        assert_eq!(b.indices, (0..50).collect::<Vec<_>>().as_slice());
        assert_eq!(b.weight, 1.0);
        let draw = |seed| {
            let mut s = BatchSampler::new(1000, 64, Scheme::Uniform, seed).unwrap();
            (0..5)
                .flat_map(|_| s.next_batch().indices.to_vec())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
        assert!(BatchSampler::new(0, 4, Scheme::Chunks, 0).is_none());
        assert!(BatchSampler::new(4, 0, Scheme::Uniform, 0).is_none());
    }

    #[test]
    fn uniform_batches_are_unbiased_in_the_mean() {
        // Monte-Carlo: 20000 batches of 64 from 1000 values; the standard error of the average
        // of batch means is σ/√(64·20000) ≈ σ·8.8e-4, so 5σ/√N bounds the deviation.
        let n = 1000;
        let v = values(n);
        let full = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - full).powi(2)).sum::<f64>() / n as f64;
        let mut s = BatchSampler::new(n, 64, Scheme::Uniform, 11).unwrap();
        let trials = 20_000;
        let mut acc = 0.0;
        for _ in 0..trials {
            let b = s.next_batch();
            acc += b.weight * b.indices.iter().map(|&i| v[i]).sum::<f64>() / 64.0;
        }
        let est = acc / trials as f64;
        let se = (var / (64.0 * trials as f64)).sqrt();
        assert!((est - full).abs() < 5.0 * se, "{est} vs {full} (se {se})");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(5), ..ProptestConfig::default() })]
        #[test]
        fn chunks_partition_every_pass(n in 1usize..400, b in 1usize..70, seed in 0u64..1000) {
            let mut s = BatchSampler::new(n, b, Scheme::Chunks, seed).unwrap();
            let mut seen = vec![0usize; n];
            let mut weight_sum = 0.0;
            for _ in 0..s.chunks() {
                let batch = s.next_batch();
                weight_sum += batch.weight;
                for &i in batch.indices { seen[i] += 1; }
            }
            prop_assert!(seen.iter().all(|&k| k == 1));
            // Σ_c w_c = C·Σ_c|c|/n = C: the weights average to 1 over a pass.
            prop_assert!((weight_sum - s.chunks() as f64).abs() < 1e-9 * s.chunks() as f64);
        }
    }
}
