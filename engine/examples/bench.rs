//! Benchmark driver (not a test). Runs ONE case in this process so the peak
//! RSS (VmHWM) is the case's own. Usage:
//!
//! `bench <a|b|c> <engine|floor>` — prints one line:
//! `case=a mode=engine threads=2 seconds=… asset_steps=… ns_per_asset_step=… peak_rss_mb=…`
//!
//! Cases: (a) 10 assets, 30 y, monthly steps, monthly rebalancing, 100 000
//! paths; (b) 3 assets, 10 y, 252 steps/y, rebalancing every 21 steps,
//! 10 000 paths; (c) 1 asset, 10 y, annual steps, 1 000 paths (latency:
//! median wall time of 2 001 repeated runs, and the process CPU time per
//! run, which is what a busy service pays). `floor` draws the same number of normals with
//! the engine's generator, sampler, chunking and block size.

use std::time::Instant;

use engine::*;

fn case(name: &str) -> SimulationSpec {
    let (n, years, spy, paths, rebalancing) = match name {
        "a" => (10, 30, 12, 100_000, Rebalancing::Monthly),
        "b" => (3, 10, 252, 10_000, Rebalancing::EveryNSteps(21)),
        "c" => (1, 10, 1, 1_000, Rebalancing::Never),
        _ => panic!("unknown case {name}"),
    };
    // Deterministic, plausible parameters; equicorrelation 0.3.
    let assets = (0..n)
        .map(|i| Asset {
            weight: 1.0 / n as f64,
            drift: 0.03 + 0.005 * i as f64,
            volatility: 0.05 + 0.02 * i as f64,
        })
        .collect();
    let correlation = (0..n)
        .map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.3 }).collect())
        .collect();
    SimulationSpec {
        assets,
        correlation,
        initial_value: 100_000.0,
        horizon_years: years,
        steps_per_year: spy,
        paths,
        seed: 20240601,
        model: ReturnModel::Gbm,
        rebalancing,
        cash_flow: None,
        antithetic: false,
        histogram_bins: 50,
        ..Default::default()
    }
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// CPU time (user + system) of the whole process in seconds, from
/// `/proc/self/stat` (clock ticks of 10 ms; used over many repetitions).
fn process_cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime, stime are
            // fields 14 and 15 (1-based) of the whole line.
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// `bench cancel`: 10 000 000 paths (the largest tier) of case (a)'s
/// assets over 5 years (the longest horizon that fits the year-end storage
/// cap); the flag is raised after a delay and the time until `run_with`
/// returns is printed (in the simulation phase, and late enough to hit the
/// statistics phase).
fn cancel_latency() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mut spec = case("a");
    spec.paths = 10_000_000;
    spec.horizon_years = 5;
    let sim = Simulation::new(spec).expect("valid spec");
    let t = Instant::now();
    let _ = sim.run();
    let full = t.elapsed().as_secs_f64();
    for frac in [0.05, 0.3, 0.6] {
        let flag = AtomicBool::new(false);
        let delay = std::time::Duration::from_secs_f64(full * frac);
        let (latency, outcome) = std::thread::scope(|s| {
            let h = s.spawn(|| sim.run_with(&RunControl::new().with_cancel(&flag)));
            std::thread::sleep(delay);
            let t = Instant::now();
            flag.store(true, Ordering::Relaxed);
            let r = h.join().expect("no panic");
            (t.elapsed().as_secs_f64(), r.is_err())
        });
        println!(
            "case=cancel mode=engine threads={} full_run_s={full:.3} cancel_at_s={:.3} \
             cancelled={outcome} latency_ms={:.1}",
            rayon::current_num_threads(),
            delay.as_secs_f64(),
            latency * 1e3
        );
    }
    // Raised by the progress callback when the last chunk finishes: the
    // run is then in its statistics phase (sorting/selecting 5 columns of
    // 10 M values).
    let flag = AtomicBool::new(false);
    let raised = std::sync::Mutex::new(None);
    let report = |p: Progress| {
        if p.chunks_done == p.chunks_total {
            *raised.lock().unwrap() = Some(Instant::now());
            flag.store(true, Ordering::Relaxed);
        }
    };
    let r = sim.run_with(&RunControl::new().with_cancel(&flag).with_progress(&report));
    let at = raised.lock().unwrap().expect("last chunk reported");
    println!(
        "case=cancel mode=engine threads={} phase=statistics cancelled={} latency_ms={:.1}",
        rayon::current_num_threads(),
        r.is_err(),
        at.elapsed().as_secs_f64() * 1e3
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (name, mode) = (
        args.get(1).map_or("a", |s| s),
        args.get(2).map_or("engine", |s| s),
    );
    if name == "cancel" {
        cancel_latency();
        return;
    }
    let mut spec = case(name);
    if mode == "interleave" {
        // Optional path scale for short repeated runs (e.g. 0.1).
        if let Some(f) = args.get(4).and_then(|f| f.parse::<f64>().ok()) {
            spec.paths = ((spec.paths as f64 * f) as u64).max(1);
        }
    }
    let sim = Simulation::new(spec.clone()).expect("valid benchmark spec");
    let work = sim.work();
    let floor = || {
        engine::bench_support::draw_normals(
            spec.paths,
            work / spec.paths,
            spec.seed,
            spec.assets.len() * 8,
        )
    };
    if mode == "interleave" {
        // Floor and engine alternately in one process, `reps` pairs: on a
        // noisy machine the median of the per-pair ratios is the stable
        // figure (both halves of a pair see about the same load).
        let reps: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(15);
        let (mut f, mut e, mut r) = (Vec::new(), Vec::new(), Vec::new());
        let mut check = 0.0;
        for _ in 0..reps {
            let t = Instant::now();
            check += floor();
            let tf = t.elapsed().as_secs_f64();
            let t = Instant::now();
            check += sim.run().terminal.mean;
            let te = t.elapsed().as_secs_f64();
            f.push(tf);
            e.push(te);
            r.push(te / tf);
        }
        let median = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (mf, me, mr) = (median(&mut f), median(&mut e), median(&mut r));
        println!(
            "case={name} mode=interleave threads={} reps={reps} floor_s={mf:.6} engine_s={me:.6} \
             ratio_median={mr:.3} ratio_of_minima={:.3} ratio_q1={:.3} ratio_q3={:.3} check={check:.3e}",
            rayon::current_num_threads(),
            e[0] / f[0],
            r[reps / 4],
            r[3 * reps / 4],
        );
        return;
    }
    let reps = if name == "c" { 2001 } else { 1 };
    let mut times = Vec::with_capacity(reps);
    let mut check = 0.0;
    let cpu0 = process_cpu_seconds();
    for _ in 0..reps {
        let t = Instant::now();
        check += match mode {
            "engine" => sim.run().terminal.mean,
            "floor" => floor(),
            _ => panic!("unknown mode {mode}"),
        };
        times.push(t.elapsed().as_secs_f64());
    }
    let cpu = (process_cpu_seconds() - cpu0) / reps as f64;
    times.sort_by(f64::total_cmp);
    let secs = times[times.len() / 2];
    println!(
        "case={name} mode={mode} threads={} seconds={secs:.6} cpu_seconds={cpu:.6} asset_steps={work} ns_per_asset_step={:.3} peak_rss_mb={:.1} check={:.6e}",
        rayon::current_num_threads(),
        secs * 1e9 / work as f64,
        peak_rss_mb(),
        check / reps as f64,
    );
}
