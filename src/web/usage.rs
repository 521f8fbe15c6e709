//! The usage page `/usage`: this quota period's calls per day and API key (a uPlot chart fed
//! by embedded JSON, and the same numbers as a table), the quota used and left, and the overage
//! with its price.

use super::page::{self, Chrome, Nav};
use super::session::SignedIn;
use askama::Template;
use chrono::{Datelike, NaiveDate, TimeZone, Utc};
use poem::http::StatusCode;
use poem::{Request, Response, handler};
use std::collections::BTreeMap;

#[derive(Template)]
#[template(path = "usage/usage.html")]
struct UsagePage {
    chrome: Chrome,
    tier: String,
    period: String,
    used: u64,
    quota: Option<u64>,
    remaining: Option<u64>,
    percent: u64,
    overage: u64,
    overage_price: String,
    overage_unit: Option<String>,
    resets: String,
    rows: Vec<Row>,
    keys: Vec<KeyTotal>,
    chart_json: String,
}

/// A table row: one key on one day.
struct Row {
    date: String,
    key: String,
    calls: i64,
    simulations: i64,
    errors: i64,
}

/// A key's totals this period.
struct KeyTotal {
    key: String,
    calls: i64,
    simulations: i64,
    errors: i64,
}

/// `cents` as dollars (`$1,234.05`).
pub(crate) fn dollars(cents: i64) -> String {
    let whole = (cents.abs() / 100).to_string();
    let mut grouped = String::new();
    for (i, c) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}${grouped}.{:02}", cents.abs() % 100)
}

/// The chart data as JSON safe inside `<script type="application/json">` (`<`, `>` and `&`
/// escaped, so no text can close the element).
pub(crate) fn script_json(value: &serde_json::Value) -> String {
    value
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn key_label(name: Option<&str>, prefix: Option<&str>, has_key: bool) -> String {
    match (has_key, name, prefix) {
        (false, _, _) => "Signed-in users".to_string(),
        (true, Some(n), Some(p)) => format!("{n} ({p}…)"),
        (true, None, Some(p)) => format!("{p}…"),
        (true, Some(n), None) => n.to_string(),
        (true, None, None) => "Deleted key".to_string(),
    }
}

/// `GET /usage`.
#[handler]
pub async fn show(req: &Request, s: SignedIn) -> poem::Result<Response> {
    let app = super::session::app(req)?;
    let now = app.clock.now();
    let today = now.date_naive();
    let first = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
    let since = Utc.from_utc_datetime(&first.and_hms_opt(0, 0, 0).unwrap_or_default());
    let by_day = app.usage.daily_per_key(&s.ctx, since).await?;
    let report = app.usage.report(&s.ctx, 1).await?;
    let p = &report.period;
    let tier = &s.tenant.tier;

    // Series: one per key, in order of calls this period (most first).
    let mut totals: BTreeMap<String, KeyTotal> = BTreeMap::new();
    let mut rows = Vec::with_capacity(by_day.len());
    for r in &by_day {
        let label = key_label(r.name.as_deref(), r.prefix.as_deref(), r.key.is_some());
        let t = totals.entry(label.clone()).or_insert_with(|| KeyTotal {
            key: label.clone(),
            calls: 0,
            simulations: 0,
            errors: 0,
        });
        t.calls += r.calls;
        t.simulations += r.simulations;
        t.errors += r.errors;
        rows.push(Row {
            date: r.date.format("%Y-%m-%d").to_string(),
            key: label,
            calls: r.calls,
            simulations: r.simulations,
            errors: r.errors,
        });
    }
    let mut keys: Vec<KeyTotal> = totals.into_values().collect();
    keys.sort_by(|a, b| b.calls.cmp(&a.calls).then(a.key.cmp(&b.key)));
    let days: Vec<NaiveDate> = first.iter_days().take_while(|d| *d <= today).collect();
    let xs: Vec<i64> = days
        .iter()
        .map(|d| {
            d.and_hms_opt(0, 0, 0)
                .map_or(0, |t| Utc.from_utc_datetime(&t).timestamp())
        })
        .collect();
    let series: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| {
            let calls: Vec<i64> = days
                .iter()
                .map(|d| {
                    let day = d.format("%Y-%m-%d").to_string();
                    rows.iter()
                        .filter(|r| r.key == k.key && r.date == day)
                        .map(|r| r.calls)
                        .sum()
                })
                .collect();
            serde_json::json!({"label": k.key, "calls": calls})
        })
        .collect();
    let chart_json = script_json(&serde_json::json!({"days": xs, "series": series}));
    rows.reverse();

    let percent = p
        .quota
        .filter(|q| *q > 0)
        .map_or(0, |q| (p.used.saturating_mul(100) / q).min(100));
    let unit = tier.overage_cents_per_simulation;
    let overage_cents = i64::try_from(p.overage)
        .unwrap_or(i64::MAX)
        .saturating_mul(unit.unwrap_or(0));
    let tpl = UsagePage {
        chrome: s.chrome(Nav::Usage),
        tier: tier.display_name.clone(),
        period: p.period.clone(),
        used: p.used,
        quota: p.quota,
        remaining: p.remaining,
        percent,
        overage: p.overage,
        overage_price: dollars(overage_cents),
        overage_unit: unit.map(dollars),
        resets: p.resets_at.format("%-d %B %Y").to_string(),
        rows,
        keys,
        chart_json,
    };
    Ok(page::render(StatusCode::OK, &tpl))
}

#[cfg(test)]
mod tests {
    #[test]
    fn dollars_and_script_json() {
        assert_eq!(super::dollars(5), "$0.05");
        assert_eq!(super::dollars(299_900), "$2,999.00");
        assert_eq!(super::dollars(123_456_789), "$1,234,567.89");
        let v = serde_json::json!({"label": "</script><b>&"});
        let text = super::script_json(&v);
        assert!(!text.contains('<') && !text.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
    }
}
