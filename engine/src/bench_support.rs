//! Helpers for the benchmark binary (not part of the stable API).

use rayon::prelude::*;

use crate::rng::{CHUNK_PATHS, Isa, chunk_rng, fill_normals_isa};

/// The "floor": draws `paths × per_path` standard normals with exactly the
/// generator, sampler (the same out-of-line `fill_normals_isa` copies),
/// chunking and dispatch the engine uses, in parallel on
/// the current rayon pool, in blocks of `block` normals (the engine draws
/// `assets × 8` per block: one step of one group of 8 paths). Each block is
/// only passed through `black_box` (no arithmetic on it, so the floor is the
/// drawing alone); returns the sum of each chunk's last block (so nothing is
/// optimised away).
pub fn draw_normals(paths: u64, per_path: u64, seed: u64, block: usize) -> f64 {
    let chunks = (paths as usize).div_ceil(CHUNK_PATHS) as u64;
    let sums: Vec<f64> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let len = CHUNK_PATHS.min(paths as usize - c as usize * CHUNK_PATHS) as u64;
            floor_chunk(seed, c, len * per_path, block)
        })
        .collect();
    sums.iter().sum()
}

fn floor_chunk(seed: u64, chunk: u64, total: u64, block: usize) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { floor_chunk_avx512(seed, chunk, total, block) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { floor_chunk_avx2(seed, chunk, total, block) };
        }
    }
    floor_chunk_portable(seed, chunk, total, block, Isa::Portable)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn floor_chunk_avx512(seed: u64, chunk: u64, total: u64, block: usize) -> f64 {
    floor_chunk_portable(seed, chunk, total, block, Isa::Avx512)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn floor_chunk_avx2(seed: u64, chunk: u64, total: u64, block: usize) -> f64 {
    floor_chunk_portable(seed, chunk, total, block, Isa::Avx2)
}

#[inline(always)]
fn floor_chunk_portable(seed: u64, chunk: u64, total: u64, block: usize, isa: Isa) -> f64 {
    let mut rng = chunk_rng(seed, chunk);
    let mut buf = vec![0.0f64; block.max(1)];
    let mut done = 0;
    let mut last = 0;
    while done < total {
        let k = (total - done).min(buf.len() as u64) as usize;
        fill_normals_isa(isa, &mut rng, &mut buf[..k]);
        std::hint::black_box(&mut buf[..k]);
        done += k as u64;
        last = k;
    }
    buf[..last].iter().sum::<f64>()
}

/// Terminal values of the first `paths` paths of `spec` (validated with one
/// path, so the year-end storage cap does not apply: only the terminal
/// value of each path is kept), in path order. For reference runs of the
/// precision benchmark (10 000 000 paths).
///
/// # Panics
/// If `spec` (with `paths = 1`) is invalid.
pub fn terminal_values(spec: &crate::SimulationSpec, paths: u64) -> Vec<f64> {
    let mut one = spec.clone();
    one.paths = 1;
    if let crate::Sampling::Rqmc { scramblings } = one.sampling {
        one.paths = u64::from(scramblings);
    }
    let sim = crate::Simulation::new(one)
        .expect("valid reference spec")
        .with_paths(paths);
    let years = spec.horizon_years as usize;
    let chunks = (paths as usize).div_ceil(CHUNK_PATHS) as u64;
    let parts: Vec<Vec<f64>> = (0..chunks)
        .into_par_iter()
        .map(|c| {
            let o = crate::kernel::simulate_chunk(&sim, c);
            o.year_values[(years - 1) * o.len..years * o.len].to_vec()
        })
        .collect();
    parts.concat()
}
