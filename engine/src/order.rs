//! Order statistics of a column of values: several ranks at once.
//!
//! The value of an order statistic does not depend on how it is found, so
//! the method is chosen for speed alone:
//! * up to [`SORT_MAX`] values: one sort of integer keys (the IEEE-754 bits
//!   mapped to a `u64` whose order is `f64::total_cmp`'s; an integer sort
//!   measured faster than sorting `f64` by `total_cmp` and than an LSD radix
//!   sort at these sizes), after which every rank is a lookup;
//! * above: selection at the needed ranks with narrowing ranges (select the
//!   middle requested rank, then recurse into the part left of it with the
//!   smaller ranks and the part right of it with the larger ones), expected
//!   `O(n log k)` for `k` ranks, checking for cancellation between
//!   selections.

/// Columns up to this length are sorted (measured faster than repeated
/// selection for the 9 to 40 ranks a column needs).
pub(crate) const SORT_MAX: usize = 1 << 14;

/// `f64` bits mapped to a `u64` whose order is `f64::total_cmp`'s:
/// negative numbers have every bit flipped, the others only the sign bit.
#[inline(always)]
fn key(x: f64) -> u64 {
    let b = x.to_bits();
    b ^ ((((b as i64) >> 63) as u64) | (1 << 63))
}

#[inline(always)]
fn unkey(k: u64) -> f64 {
    // The sign bit of the key is set for non-negative numbers.
    let mask = if k >> 63 == 1 { 1 << 63 } else { u64::MAX };
    f64::from_bits(k ^ mask)
}

/// Reusable scratch space for [`order_stats`].
#[derive(Default)]
pub(crate) struct OrderScratch {
    keys: Vec<u64>,
}

/// Writes the order statistics of `data` at the 0-based `ranks` (increasing,
/// distinct, each `< data.len()`) into `out`; may reorder `data`. Returns
/// `false` (with `out` incomplete) if `cancelled()` became true between
/// selections.
pub(crate) fn order_stats(
    data: &mut [f64],
    ranks: &[usize],
    out: &mut [f64],
    scratch: &mut OrderScratch,
    cancelled: &dyn Fn() -> bool,
) -> bool {
    debug_assert_eq!(ranks.len(), out.len());
    debug_assert!(ranks.windows(2).all(|w| w[0] < w[1]));
    if ranks.is_empty() {
        return true;
    }
    if data.len() <= SORT_MAX {
        let keys = &mut scratch.keys;
        keys.clear();
        keys.extend(data.iter().map(|&x| key(x)));
        keys.sort_unstable();
        for (o, &r) in out.iter_mut().zip(ranks) {
            *o = unkey(keys[r]);
        }
        return true;
    }
    multi_select(data, 0, ranks, out, cancelled)
}

/// Selection at `ranks` (relative to the whole column; `data` starts at
/// rank `offset`).
fn multi_select(
    data: &mut [f64],
    offset: usize,
    ranks: &[usize],
    out: &mut [f64],
    cancelled: &dyn Fn() -> bool,
) -> bool {
    if ranks.is_empty() {
        return true;
    }
    if cancelled() {
        return false;
    }
    let mid = ranks.len() / 2;
    let r = ranks[mid] - offset;
    let (left, nth, right) = data.select_nth_unstable_by(r, f64::total_cmp);
    out[mid] = *nth;
    let (out_l, out_r) = out.split_at_mut(mid);
    multi_select(left, offset, &ranks[..mid], out_l, cancelled)
        && multi_select(
            right,
            offset + r + 1,
            &ranks[mid + 1..],
            &mut out_r[1..],
            cancelled,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sort_and_selection_agree_with_a_full_sort() {
        let mut s = 99u64;
        for n in [1usize, 2, 7, 1000, SORT_MAX, SORT_MAX + 1, 50_000] {
            let data: Vec<f64> = (0..n)
                .map(|i| {
                    let u = crate::rng::splitmix64(&mut s);
                    // Mixed signs, zeros and repeated values.
                    match i % 7 {
                        0 => 0.0,
                        1 => -((u >> 40) as f64),
                        2 => 5.0,
                        _ => (u >> 11) as f64 * 1e-3,
                    }
                })
                .collect();
            let mut sorted = data.clone();
            sorted.sort_by(f64::total_cmp);
            let ranks: Vec<usize> = [0, n / 10, n / 3, n / 2, n - 1]
                .into_iter()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let mut out = vec![0.0; ranks.len()];
            let mut d = data.clone();
            assert!(order_stats(
                &mut d,
                &ranks,
                &mut out,
                &mut OrderScratch::default(),
                &|| false
            ));
            for (o, &r) in out.iter().zip(&ranks) {
                assert_eq!(o.to_bits(), sorted[r].to_bits(), "n {n} rank {r}");
            }
        }
    }

    #[test]
    fn key_order_is_total_cmp_order() {
        let v = [-f64::INFINITY, -2.5, -0.0, 0.0, 1e-300, 3.0, f64::INFINITY];
        for w in v.windows(2) {
            assert!(key(w[0]) < key(w[1]));
            assert_eq!(unkey(key(w[0])).to_bits(), w[0].to_bits());
        }
    }

    #[test]
    fn selection_stops_when_cancelled() {
        let mut d: Vec<f64> = (0..(SORT_MAX + 10)).map(|i| i as f64).collect();
        let mut out = [0.0; 3];
        assert!(!order_stats(
            &mut d,
            &[1, 2, 3],
            &mut out,
            &mut OrderScratch::default(),
            &|| true
        ));
    }
}
