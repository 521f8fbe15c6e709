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

/// The 60/40 case of the precision benchmark: stocks (μ 7 %, σ 16 %) and
/// bonds (μ 3 %, σ 6 %), correlation 0.1, 30 years of monthly steps,
/// monthly rebalancing.
fn case_6040() -> SimulationSpec {
    SimulationSpec {
        assets: vec![
            Asset {
                weight: 0.6,
                drift: 0.07,
                volatility: 0.16,
            },
            Asset {
                weight: 0.4,
                drift: 0.03,
                volatility: 0.06,
            },
        ],
        correlation: vec![vec![1.0, 0.1], vec![0.1, 1.0]],
        initial_value: 100_000.0,
        horizon_years: 30,
        steps_per_year: 12,
        paths: 10_000,
        seed: 20240601,
        rebalancing: Rebalancing::Monthly,
        histogram_bins: 50,
        ..Default::default()
    }
}

/// Type-7 percentile of sorted values and its order-statistic interval.
fn sorted_percentile(sorted: &[f64], p: f64) -> (f64, f64) {
    let n = sorted.len();
    let h = (n - 1) as f64 * p;
    let k = h.floor() as usize;
    let v = sorted[k] + (h - k as f64) * (sorted[(k + 1).min(n - 1)] - sorted[k]);
    let s = 1.959_963_984_540_054 * (n as f64 * p * (1.0 - p)).sqrt();
    let lo = sorted[((n as f64 * p - s).floor() as usize).saturating_sub(1)];
    let hi = sorted[((n as f64 * p + s).ceil() as usize).min(n) - 1];
    (v, 0.5 * (hi - lo))
}

/// `bench precision [a|6040|all]`: time to a 95 % interval of ±0.1 % on the
/// terminal median (and, second goal set, also ±0.5 % on P5) with plain
/// MC, antithetics, RQMC and RQMC + control variate, each started at 4 096
/// paths and grown by `run_to_precision`, capped at 10 000 000 paths (or
/// the year-end storage cap). A 10 000 000-path plain MC reference of the
/// terminal value, in the same run, checks each final estimate. One line
/// per (case, goals, method), then the ratios.
fn precision(which: &str) {
    let cases: Vec<(&str, SimulationSpec)> = match which {
        "a" => vec![("a", case("a"))],
        "6040" => vec![("6040", case_6040())],
        _ => vec![("a", case("a")), ("6040", case_6040())],
    };
    let ref_paths: u64 = std::env::var("REF_PATHS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    for (name, base) in cases {
        let t = Instant::now();
        let mut terminal = engine::bench_support::terminal_values(&base, ref_paths);
        terminal.sort_by(f64::total_cmp);
        let (ref50, ref50_hw) = sorted_percentile(&terminal, 0.5);
        let (ref5, ref5_hw) = sorted_percentile(&terminal, 0.05);
        drop(terminal);
        println!(
            "case={name} mode=reference paths={ref_paths} seconds={:.3} p50={ref50:.4} p50_hw_rel={:.6} p5={ref5:.4} p5_hw_rel={:.6}",
            t.elapsed().as_secs_f64(),
            ref50_hw / ref50,
            ref5_hw / ref5
        );
        let goal = |p: f64, h: f64| PrecisionGoal {
            quantity: PrecisionQuantity::TerminalPercentile { p },
            half_width: h,
        };
        for (goals_name, goals) in [
            ("median", vec![goal(0.5, 0.001)]),
            ("median+p5", vec![goal(0.5, 0.001), goal(0.05, 0.005)]),
        ] {
            let mut secs = Vec::new();
            // "rqmc-cholesky" and "rqmc-pca": RQMC with the Cholesky or
            // principal-component mixing instead of the default
            // portfolio-first one (engine::qmc::QmcFactor), and "rqmc-d<k>"
            // with the first k dimensions from Sobol points (d21201: all).
            let methods = std::env::var("METHODS").unwrap_or_else(|_| {
                "mc antithetic rqmc rqmc+cv rqmc-cholesky rqmc-pca rqmc-d21201".to_string()
            });
            for method in methods.split_whitespace() {
                let mut spec = base.clone();
                spec.seed = base.seed + 1; // independent of the reference
                spec.paths = 4_096;
                match method {
                    "antithetic" => spec.antithetic = true,
                    m if m.starts_with("rqmc-") => {
                        spec.sampling = Sampling::Rqmc { scramblings: 16 }
                    }
                    "rqmc" => spec.sampling = Sampling::Rqmc { scramblings: 16 },
                    "rqmc8" => spec.sampling = Sampling::Rqmc { scramblings: 8 },
                    "rqmc+cv" => {
                        spec.sampling = Sampling::Rqmc { scramblings: 16 };
                        spec.control_variate = true;
                    }
                    _ => {}
                }
                let sim = Simulation::new(spec).expect("valid spec");
                let sim = match method {
                    "rqmc-cholesky" => sim.with_qmc_factor(engine::qmc::QmcFactor::Cholesky),
                    "rqmc-pca" => sim.with_qmc_factor(engine::qmc::QmcFactor::Pca),
                    m if m.starts_with("rqmc-d") => {
                        sim.with_qmc_sobol_dims(m[6..].parse().expect("rqmc-d<dims>"))
                    }
                    _ => sim,
                };
                let target = PrecisionTarget {
                    goals: goals.clone(),
                    max_paths: 10_000_000,
                };
                // Best of two repetitions (the machine is shared); the
                // outcome itself is deterministic.
                let mut s = f64::INFINITY;
                let mut cpu = f64::INFINITY;
                let mut out = None;
                for _ in 0..2 {
                    let c0 = process_cpu_seconds();
                    let t = Instant::now();
                    let o = sim
                        .run_to_precision(&target, &RunControl::new())
                        .expect("not cancelled");
                    s = s.min(t.elapsed().as_secs_f64());
                    cpu = cpu.min(process_cpu_seconds() - c0);
                    out = Some(o);
                }
                let out = out.expect("ran");
                // A run stopped by a cap: extrapolate the time to the
                // target with time ∝ paths ∝ (half-width / goal)².
                let worst = goals
                    .iter()
                    .zip(&out.achieved)
                    .map(|(g, a)| a / g.half_width)
                    .fold(0.0f64, f64::max);
                let scale = if out.stop_reason == StopReason::TargetMet {
                    1.0
                } else {
                    worst * worst
                };
                let s_target = s * scale;
                let cpu_target = cpu * scale;
                secs.push(cpu_target);
                let p = &out.result.terminal.percentiles;
                let iv = &out.result.terminal.percentile_intervals;
                let err50 = p.p50 / ref50 - 1.0;
                let err5 = p.p5 / ref5 - 1.0;
                // Consistent with the reference: |error| within the claimed
                // half-width plus the reference's own.
                let ok50 = (p.p50 - ref50).abs() <= iv.p50.half_width() + ref50_hw;
                let ok5 = (p.p5 - ref5).abs() <= iv.p5.half_width() + ref5_hw;
                println!(
                    "case={name} goals={goals_name} mode={method} threads={} seconds={s:.3} seconds_to_target={s_target:.3} cpu_to_target={cpu_target:.3} paths={} rounds={} stop={:?} \
                     p50_hw_rel={:.6} p50_err_rel={err50:.6} p50_ok={ok50} p5_hw_rel={:.6} p5_err_rel={err5:.6} p5_ok={ok5}",
                    rayon::current_num_threads(),
                    out.result.paths,
                    out.rounds,
                    out.stop_reason,
                    iv.p50.half_width() / p.p50,
                    iv.p5.half_width() / p.p5,
                );
            }
            let ratios: Vec<String> = methods
                .split_whitespace()
                .zip(&secs)
                .skip(1)
                .map(|(m, s)| format!("mc/{m}={:.2}", secs[0] / s))
                .collect();
            println!(
                "case={name} goals={goals_name} mode=ratios basis=cpu {}",
                ratios.join(" ")
            );
        }
    }
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
    if name == "precision" {
        precision(args.get(2).map_or("all", |s| s));
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
