//! Real historical input: Robert Shiller's monthly US stock-market data.
//!
//! Source: Robert Shiller, *Irrational Exuberance* online data, as
//! republished by the `datasets/s-and-p-500` repository under the ODC Public
//! Domain Dedication and License 1.0 (credit: Robert Shiller). The CSV is
//! embedded at compile time (`data/sp500_shiller_monthly.csv`); parsing is
//! pure and happens once, lazily ([`std::sync::OnceLock`]).
//!
//! Only months 1871-01 ..= 2023-06 are used (after that the dividend, CPI
//! and interest-rate columns are 0.0 = missing), giving 1829 monthly
//! periods, the first from 1871-01 to 1871-02, the last from 2023-05 to
//! 2023-06.
//!
//! # Formula
//! For month `t` with index level `P`, annualised dividend `D`, consumer
//! price index `CPI` and 10-year Treasury yield `y` (decimal, the `Long
//! Interest Rate` column / 100):
//! * stocks (total return): `(P[t+1] + D[t]/12) / P[t] − 1`;
//! * inflation: `CPI[t+1] / CPI[t] − 1`;
//! * bonds (total return of a 10-year par bond, monthly compounding): buy at
//!   par a bond with monthly coupon `c = y[t]/12` and 120 months left; one
//!   month later it has 119 months left and is repriced at `j = y[t+1]/12`:
//!   `price = c/j · (1 − (1+j)^−119) + (1+j)^−119` (or `1 + 119·c` if
//!   `j = 0`), and the return is `price + c − 1`.

use std::sync::OnceLock;

const CSV: &str = include_str!("../../data/sp500_shiller_monthly.csv");
const FIRST: &str = "1871-01";
const LAST: &str = "2023-06";
const BOND_MONTHS_LEFT: i32 = 119;

/// Monthly return series parsed from the Shiller data (decimal simple
/// returns, one entry per month, all series of equal length).
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    stocks: Vec<f64>,
    bonds: Vec<f64>,
    inflation: Vec<f64>,
}

impl History {
    /// Monthly S&P 500 total returns (decimal), `months()` entries.
    pub fn stocks(&self) -> &[f64] {
        &self.stocks
    }
    /// Monthly total returns of a 10-year par Treasury bond (decimal); see
    /// the module docs for the formula.
    pub fn bonds(&self) -> &[f64] {
        &self.bonds
    }
    /// Monthly CPI inflation (decimal).
    pub fn inflation(&self) -> &[f64] {
        &self.inflation
    }
    /// Number of monthly periods (1829).
    pub fn months(&self) -> usize {
        self.stocks.len()
    }
    /// First month of the price data used, `"1871-01"` (start of period 0).
    pub fn start(&self) -> &'static str {
        FIRST
    }
    /// Last month of the price data used, `"2023-06"` (end of the last period).
    pub fn end(&self) -> &'static str {
        LAST
    }
    /// periods × 2 matrix `[stocks, bonds]` of monthly simple returns, ready
    /// for [`crate::ReturnModel::Bootstrap`] with `steps_per_year = 12`.
    ///
    /// # Examples
    /// ```
    /// let h = engine::history::shiller_monthly();
    /// let m = h.returns_matrix();
    /// assert_eq!(m.len(), h.months());
    /// assert_eq!(m[0], vec![h.stocks()[0], h.bonds()[0]]);
    /// ```
    pub fn returns_matrix(&self) -> Vec<Vec<f64>> {
        self.stocks
            .iter()
            .zip(&self.bonds)
            .map(|(&s, &b)| vec![s, b])
            .collect()
    }
}

/// Total return of the 10-year par bond over one month (see module docs).
pub fn bond_monthly_return(yield_now: f64, yield_next: f64) -> f64 {
    let c = yield_now / 12.0;
    let j = yield_next / 12.0;
    let price = if j == 0.0 {
        1.0 + BOND_MONTHS_LEFT as f64 * c
    } else {
        let disc = (1.0 + j).powi(-BOND_MONTHS_LEFT);
        c / j * (1.0 - disc) + disc
    };
    price + c - 1.0
}

struct Row {
    price: f64,
    dividend: f64,
    cpi: f64,
    rate: f64,
}

fn parse(csv: &str) -> History {
    let mut rows = Vec::new();
    let mut started = false;
    for line in csv.lines().skip(1) {
        let mut f = line.split(',');
        let date = f.next().unwrap_or("");
        if date.starts_with(FIRST) {
            started = true;
        }
        if !started {
            continue;
        }
        let num = |s: Option<&str>| s.and_then(|s| s.trim().parse::<f64>().ok()).unwrap_or(0.0);
        let price = num(f.next());
        let dividend = num(f.next());
        let _earnings = f.next();
        let cpi = num(f.next());
        let rate = num(f.next());
        if price <= 0.0 || dividend <= 0.0 || cpi <= 0.0 || rate <= 0.0 {
            break; // columns become 0.0 (= missing) after 2023-06
        }
        rows.push(Row {
            price,
            dividend,
            cpi,
            rate: rate / 100.0,
        });
        if date.starts_with(LAST) {
            break;
        }
    }
    let mut h = History {
        stocks: Vec::with_capacity(rows.len()),
        bonds: Vec::with_capacity(rows.len()),
        inflation: Vec::with_capacity(rows.len()),
    };
    for w in rows.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        h.stocks.push((b.price + a.dividend / 12.0) / a.price - 1.0);
        h.inflation.push(b.cpi / a.cpi - 1.0);
        h.bonds.push(bond_monthly_return(a.rate, b.rate));
    }
    h
}

/// The embedded Shiller monthly history, parsed on first use.
///
/// # Examples
/// ```
/// let h = engine::history::shiller_monthly();
/// assert_eq!(h.months(), 1829);
/// assert_eq!((h.start(), h.end()), ("1871-01", "2023-06"));
/// let mean: f64 = h.stocks().iter().sum::<f64>() / h.months() as f64;
/// assert!(mean > 0.005 && mean < 0.012); // ≈ 0.75 % a month
/// ```
pub fn shiller_monthly() -> &'static History {
    static H: OnceLock<History> = OnceLock::new();
    H.get_or_init(|| parse(CSV))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_range() {
        let h = shiller_monthly();
        assert_eq!(h.months(), 1829);
        assert_eq!(h.bonds().len(), 1829);
        assert_eq!(h.inflation().len(), 1829);
        // First stock return by hand: (4.50 + 0.26/12) / 4.44 − 1.
        assert!((h.stocks()[0] - ((4.50 + 0.26 / 12.0) / 4.44 - 1.0)).abs() < 1e-15);
        assert!((h.inflation()[0] - (12.84 / 12.46 - 1.0)).abs() < 1e-15);
        assert!(
            h.stocks()
                .iter()
                .chain(h.bonds())
                .all(|r| r.is_finite() && *r > -0.5)
        );
    }

    #[test]
    fn bond_at_unchanged_yield_earns_the_coupon() {
        let r = bond_monthly_return(0.06, 0.06);
        assert!((r - 0.005).abs() < 1e-14, "{r}");
        assert!(bond_monthly_return(0.05, 0.06) < 0.0);
        assert!((bond_monthly_return(0.0, 0.0)).abs() < 1e-15);
    }
}
