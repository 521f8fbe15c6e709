//! Helpers for the benchmark binary (not part of the stable API).

use rayon::prelude::*;

use crate::rng::{CHUNK_PATHS, chunk_rng, normal};

/// The "floor": draws `paths × per_path` standard normals with exactly the
/// generator, sampler and chunking the engine uses, in parallel on the
/// current rayon pool, and returns their sum (so nothing is optimised away).
pub fn draw_normals(paths: u64, per_path: u64, seed: u64) -> f64 {
    let chunks = (paths as usize).div_ceil(CHUNK_PATHS) as u64;
    let sums: Vec<f64> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let mut rng = chunk_rng(seed, c);
            let len = CHUNK_PATHS.min(paths as usize - c as usize * CHUNK_PATHS) as u64;
            // Fill a buffer like the kernel does (no serial dependency
            // through an accumulator), then fold it.
            let mut buf = [0.0f64; 64];
            let mut acc = [0.0f64; 64];
            let total = len * per_path;
            let mut done = 0;
            while done < total {
                let k = (total - done).min(64) as usize;
                for v in buf[..k].iter_mut() {
                    *v = normal(&mut rng);
                }
                for (a, v) in acc.iter_mut().zip(&buf[..k]) {
                    *a += v;
                }
                done += k as u64;
            }
            acc.iter().sum::<f64>()
        })
        .collect();
    sums.iter().sum()
}
