//! Progress callback and cancellation flag: no effect on results, and a set
//! flag stops the run between chunks.

mod common;
use common::*;
use engine::*;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn spec(paths: u64) -> SimulationSpec {
    let mut s = three_assets(paths, 0xC0FFEE);
    s.antithetic = true;
    s.cash_flow = Some(CashFlow {
        amount: -100.0,
        frequency: CashFlowFrequency::EveryStep,
        annual_growth: 0.02,
    });
    s
}

fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(f)
}

#[test]
fn progress_and_cancel_flag_do_not_change_bits() {
    // Small (inline) and larger (parallel) runs.
    for paths in [700, 20_000] {
        let sim = Simulation::new(spec(paths)).unwrap();
        let plain = format!("{:?}", sim.run());
        for threads in [1, 2, 8] {
            let flag = AtomicBool::new(false);
            let calls = AtomicU64::new(0);
            let max = AtomicU64::new(0);
            let report = |p: Progress| {
                calls.fetch_add(1, Ordering::Relaxed);
                max.fetch_max(p.chunks_done, Ordering::Relaxed);
                assert_eq!(p.chunks_total, paths.div_ceil(CHUNK_PATHS as u64));
                assert!(p.fraction() > 0.0 && p.fraction() <= 1.0);
            };
            let control = RunControl::new().with_cancel(&flag).with_progress(&report);
            let r = in_pool(threads, || sim.run_with(&control)).unwrap();
            assert_eq!(format!("{r:?}"), plain, "{paths} paths, {threads} threads");
            let chunks = paths.div_ceil(CHUNK_PATHS as u64);
            assert_eq!(calls.load(Ordering::Relaxed), chunks);
            assert_eq!(max.load(Ordering::Relaxed), chunks);
        }
    }
}

#[test]
fn a_set_flag_cancels_before_any_chunk() {
    let sim = Simulation::new(spec(5_000)).unwrap();
    let flag = AtomicBool::new(true);
    let control = RunControl::new().with_cancel(&flag);
    match sim.run_with(&control) {
        Err(RunError::Cancelled {
            chunks_done,
            chunks_total,
        }) => {
            assert_eq!(chunks_done, 0);
            assert_eq!(chunks_total, 20);
        }
        other => panic!("expected cancellation, got {other:?}"),
    }
}

#[test]
fn a_flag_set_during_the_run_stops_it_between_chunks() {
    // 200 chunks; the flag is raised by the progress callback after the
    // 3rd finished chunk, so at most the chunks already running (one per
    // thread) finish after it.
    let sim = Simulation::new(spec(200 * CHUNK_PATHS as u64)).unwrap();
    for threads in [1, 2] {
        let flag = AtomicBool::new(false);
        let seen = Mutex::new(Vec::new());
        let report = |p: Progress| {
            seen.lock().unwrap().push(p.chunks_done);
            if p.chunks_done >= 3 {
                flag.store(true, Ordering::Relaxed);
            }
        };
        let control = RunControl::new().with_cancel(&flag).with_progress(&report);
        let r = in_pool(threads, || sim.run_with(&control));
        match r {
            Err(RunError::Cancelled {
                chunks_done,
                chunks_total: 200,
            }) => {
                assert!(
                    chunks_done <= 3 + threads as u64,
                    "{chunks_done} chunks done on {threads} threads"
                );
            }
            other => panic!("expected cancellation, got {other:?}"),
        }
        assert!(seen.lock().unwrap().len() <= 3 + threads);
    }
}
