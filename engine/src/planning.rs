//! Retirement-planning options: withdrawal strategies, glide paths and
//! inflation (real versus nominal money).
//!
//! # Timing conventions
//! Time is in years from the start (t = 0). A *withdrawal strategy* decides
//! one annual amount at the **start** of every year `y = 0 … T−1` (at t = 0
//! and after the last step of every year but the final one) from the
//! portfolio value `V_y` at that moment (before the withdrawal) and the
//! price index `I_y` (`I_0 = 1`), and withdraws it at once, selling every
//! holding pro rata (so the weights are unchanged). This is the annual,
//! start-of-year convention of Bengen (1994) and of cFIREsim.
//!
//! **Ruin**: if a requested amount is at least the value available, the
//! whole remaining value is paid out (the withdrawal shrinks to what is
//! left), the value is 0 from then on and no later withdrawal or cash flow
//! is made. The path counts as ruined (not a success).

/// How the annual withdrawal `W_y` (currency units, nominal) of year `y` is
/// decided. `V_y` is the portfolio value at the start of year `y` before
/// the withdrawal, `V_0` the initial value and `I_y` the price index
/// (1 at t = 0, see [`Inflation`]); `r` is the strategy's initial rate.
/// Rates are decimal fractions (0.04 = 4 %).
/// `#[non_exhaustive]`: more strategies may come; match with a wildcard.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum WithdrawalStrategy {
    /// Inflation-adjusted constant amount, the "4 % rule" (Bengen 1994,
    /// "Determining withdrawal rates using historical data", J. Financial
    /// Planning 7(4)).
    ///
    /// # Formula
    /// `W_y = r · V_0 · I_y`.
    ConstantAmount {
        /// Initial rate `r` in `[0, 1]`.
        initial_rate: f64,
    },
    /// Constant percentage of the current portfolio (never ruins for r < 1).
    ///
    /// # Formula
    /// `W_y = r · V_y`.
    ConstantPercentage {
        /// Rate `r` in `[0, 1)`.
        rate: f64,
    },
    /// Guyton & Klinger (2006), "Decision rules and maximum initial
    /// withdrawal rates", J. Financial Planning 19(3): the withdrawal,
    /// capital-preservation and prosperity rules (the portfolio-management
    /// rule, which chooses what to sell, is not modelled: withdrawals sell
    /// pro rata).
    Guardrails(Guardrails),
    /// A percentage of the current portfolio kept between a floor and a
    /// ceiling in real terms ("floor-and-ceiling" rule).
    ///
    /// # Formula
    /// With `B = r · V_0` (the initial withdrawal),
    /// `W_y = min(max(r · V_y, floor · B · I_y), ceiling · B · I_y)`.
    FloorCeiling {
        /// Rate `r` in `[0, 1)`.
        rate: f64,
        /// Floor as a fraction of the initial real withdrawal, in `[0, 1]`.
        floor: f64,
        /// Ceiling as a multiple of the initial real withdrawal, `≥ 1`.
        ceiling: f64,
    },
    /// Variable percentage withdrawal (Bogleheads VPW): a rate per year from
    /// a table by age and allocation ([`vpw_rates`] builds the Bogleheads
    /// table).
    ///
    /// # Formula
    /// `W_y = rates[y] · V_y`.
    Vpw {
        /// One rate per simulated year (at least `horizon_years` entries),
        /// each in `[0, 1)`.
        rates: Vec<f64>,
    },
}

/// Parameters of the Guyton–Klinger guardrails
/// ([`WithdrawalStrategy::Guardrails`]); [`Guardrails::new`] gives the
/// published values (20 % guardrails, 10 % adjustments, no cuts in the last
/// 15 years).
///
/// # Formula
/// Year 0: `W_0 = r · V_0`. Year `y ≥ 1`, in this order:
/// 1. *Withdrawal (inflation) rule*: `W = W_{y−1} · I_y / I_{y−1}`, except
///    that it stays `W_{y−1}` (no make-up later) when the previous year's
///    portfolio return was negative and `W_{y−1} / V_y > r`. The previous
///    year's return is `V_y / (V_{y−1} − W_{y−1}) − 1` (growth after the
///    withdrawal, including fees and any cash flow).
/// 2. *Capital-preservation rule*: if `W / V_y > r · (1 + upper)` and more
///    than `no_cut_final_years` years remain (`T − y >
///    no_cut_final_years`), `W ← W · (1 − adjustment)`.
/// 3. *Prosperity rule*: otherwise, if `W / V_y < r · (1 − lower)`,
///    `W ← W · (1 + adjustment)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guardrails {
    /// Initial rate `r` in `[0, 1]`.
    pub initial_rate: f64,
    /// Upper guardrail (capital preservation) as a fraction of `r` above
    /// it, `≥ 0` (published: 0.20).
    pub upper: f64,
    /// Lower guardrail (prosperity) as a fraction of `r` below it, in
    /// `[0, 1]` (published: 0.20).
    pub lower: f64,
    /// Size of a cut or raise, in `[0, 1)` (published: 0.10).
    pub adjustment: f64,
    /// No capital-preservation cut when this many years or fewer remain
    /// (published: 15).
    pub no_cut_final_years: u32,
    /// Apply the withdrawal (inflation-freeze) rule (published: true).
    pub inflation_rule: bool,
}

impl Guardrails {
    /// The published rules with initial rate `initial_rate`: guardrails at
    /// ±20 %, adjustments of 10 %, no cuts in the final 15 years, the
    /// inflation rule on.
    ///
    /// # Examples
    /// ```
    /// let g = engine::Guardrails::new(0.05);
    /// assert_eq!((g.upper, g.lower, g.adjustment, g.no_cut_final_years), (0.2, 0.2, 0.1, 15));
    /// ```
    pub fn new(initial_rate: f64) -> Self {
        Guardrails {
            initial_rate,
            upper: 0.2,
            lower: 0.2,
            adjustment: 0.1,
            no_cut_final_years: 15,
            inflation_rule: true,
        }
    }
}

/// Expected real annual return the Bogleheads VPW table assumes for stocks
/// (its "growth trend", decimal).
pub const VPW_STOCK_RETURN: f64 = 0.05;
/// Expected real annual return the Bogleheads VPW table assumes for bonds.
pub const VPW_BOND_RETURN: f64 = 0.019;
/// The Bogleheads VPW table runs until this age (the last withdrawal is at
/// age 99, taking everything).
pub const VPW_FINAL_AGE: u32 = 100;

/// The Bogleheads VPW table: the withdrawal rate at ages
/// `start_age, start_age + 1, …` (`years` entries) for a stock share
/// `stock_share` (the rest bonds).
///
/// # Formula
/// The payment of an annuity due that spends the portfolio by
/// [`VPW_FINAL_AGE`]: with `g = s · 5.0 % + (1 − s) · 1.9 %`
/// ([`VPW_STOCK_RETURN`], [`VPW_BOND_RETURN`]) and `m = 100 − age` years
/// left, `rate = g / ((1 + g) · (1 − (1 + g)^−m))` (`1/m` if `g = 0`;
/// 1 from age 100 on). Reproduces the published table (60/40: 5.0 % at 65,
/// 5.1 % at 66, 26.4 % with 4 years left).
///
/// # Examples
/// ```
/// let r = engine::vpw_rates(65, 2, 0.6);
/// assert_eq!((r[0] * 1000.0).round(), 50.0); // 5.0 %
/// assert_eq!((r[1] * 1000.0).round(), 51.0); // 5.1 %
/// ```
pub fn vpw_rates(start_age: u32, years: u32, stock_share: f64) -> Vec<f64> {
    let g = stock_share * VPW_STOCK_RETURN + (1.0 - stock_share) * VPW_BOND_RETURN;
    (0..years)
        .map(|k| {
            let age = start_age + k;
            if age >= VPW_FINAL_AGE {
                return 1.0;
            }
            let m = f64::from(VPW_FINAL_AGE - age);
            if g == 0.0 {
                1.0 / m
            } else {
                g / ((1.0 + g) * (1.0 - libm::pow(1.0 + g, -m)))
            }
        })
        .collect()
}

/// Target weights that change over the horizon; applied at every
/// rebalancing date (and to contributions, which are invested at the
/// current target weights). The initial holdings follow the assets'
/// `weight`s.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum GlidePath {
    /// Linear from the assets' weights `w₀` to `end_weights` `w₁`.
    ///
    /// # Formula
    /// A rebalancing after step `s` (of `N` in total) resets to
    /// `w(s) = w₀ + (w₁ − w₀) · s / N` (each term a fused multiply-add).
    Linear {
        /// Weights at the horizon, one per asset, in `[0, 1]`, summing to 1.
        end_weights: Vec<f64>,
    },
    /// A schedule: `weights[y]` applies to rebalancing dates in year `y`
    /// (a date after step `s` is in year `⌊s / steps_per_year⌋`, so the
    /// rebalancing at the end of year `y − 1` already uses `weights[y]`;
    /// years past the schedule use its last row).
    Yearly {
        /// Rows of weights (one per asset, in `[0, 1]`, summing to 1), at
        /// least one row.
        weights: Vec<Vec<f64>>,
    },
}

/// How the price index `I_t` (1 at t = 0) evolves, for real (today's money)
/// outputs and inflation-adjusted withdrawals.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub enum Inflation {
    /// No inflation model: `I_t = 1`, real equals nominal and no real
    /// outputs are reported.
    #[default]
    None,
    /// A constant annual rate π: `I_t = (1 + π)^t` (t in years; computed
    /// with `libm::pow` per step).
    Constant {
        /// Annual rate π (decimal), in `(−1, 1]`.
        rate: f64,
    },
    /// Lognormal price index with its own drift and volatility, correlated
    /// with the asset shocks (GBM and Student-t models): per step
    /// `I ← I · exp((μ − σ²/2)Δ + σ√Δ · ξ)` where `ξ` is an extra factor of
    /// the Cholesky-correlated shocks (so `E[I_t] = e^{μt}`).
    Stochastic {
        /// Annualised drift μ (decimal), `|μ| ≤ 1`.
        drift: f64,
        /// Annualised volatility σ (decimal), in `[0, 2]`.
        volatility: f64,
        /// Correlation of the inflation shock with each asset's, in `[−1, 1]`
        /// (one per asset); the extended matrix must be PSD.
        correlation: Vec<f64>,
    },
    /// Historical inflation, one simple rate per period of the bootstrap or
    /// cohort history, taken from the same row as the returns (so the
    /// block bootstrap resamples CPI with the returns of the same months).
    Historical {
        /// One rate per row of the model's `returns` (decimal, `> −1`).
        rates: Vec<f64>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vpw_reproduces_published_table_entries() {
        // Bogleheads VPW table, 60/40: 4 and 5 years left → 26.4 %, 21.5 %.
        let r = vpw_rates(96, 2, 0.6);
        assert_eq!((r[0] * 1000.0).round(), 264.0);
        let r = vpw_rates(95, 1, 0.6);
        assert_eq!((r[0] * 1000.0).round(), 215.0);
        assert_eq!(vpw_rates(99, 2, 0.5), {
            let g: f64 = 0.5 * 0.05 + 0.5 * 0.019;
            vec![g / ((1.0 + g) * (1.0 - libm::pow(1.0 + g, -1.0))), 1.0]
        });
        assert!((vpw_rates(99, 1, 0.5)[0] - 1.0).abs() < 1e-12);
    }
}
