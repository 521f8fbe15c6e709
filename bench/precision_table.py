#!/usr/bin/env python3
"""Formats the output of `bench precision` (stdin) as a table."""
import sys

rows = [dict(kv.split("=", 1) for kv in l.split()) for l in sys.stdin if l.startswith("case=")]
for r in rows:
    if r["mode"] == "reference":
        print(f"\ncase {r['case']}: reference {int(r['paths']):,} paths, "
              f"median {float(r['p50']):,.2f} (±{100 * float(r['p50_hw_rel']):.3f} %), "
              f"P5 {float(r['p5']):,.2f} (±{100 * float(r['p5_hw_rel']):.3f} %), {float(r['seconds']):.1f} s")
        print(f"{'goals':10} {'method':13} {'wall s':>7} {'CPU s':>7} {'paths':>10} {'stop':>10} "
              f"{'median ±%':>9} {'err %':>8} {'P5 ±%':>7} {'err %':>8}  within interval (median/P5)")
    elif r["mode"] == "ratios":
        ratios = ", ".join(f"{k[3:]} {v}x" for k, v in r.items() if k.startswith("mc/"))
        print(f"{r['goals']:10} CPU time to target vs plain MC (times faster): {ratios}")
    else:
        est = "" if r["stop"] == "TargetMet" else " (extrapolated)"
        print(f"{r['goals']:10} {r['mode']:13} {float(r['seconds_to_target']):>7.2f} {float(r['cpu_to_target']):>7.2f} {int(r['paths']):>10,} {r['stop']:>10} "
              f"{100 * float(r['p50_hw_rel']):>9.4f} {100 * float(r['p50_err_rel']):>8.4f} "
              f"{100 * float(r['p5_hw_rel']):>7.4f} {100 * float(r['p5_err_rel']):>8.4f}  {r['p50_ok']}/{r['p5_ok']}{est}")
