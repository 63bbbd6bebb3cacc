//! Rates, not anecdotes: per row, how many runs got which verdict, the rate at which the
//! row got what it expects with its 95% Wilson interval, the median time to the first
//! violation, and what `--fail-on` makes of them.

use super::file::Expect;
use serde::{Deserialize, Serialize};

/// z for a two-sided 95% interval.
const Z_95: f64 = 1.959_963_984_540_054;

/// The Wilson score interval of `successes` out of `n` at 95% (Wilson 1927; what Jepsen
/// users quote for detection rates): unlike the normal approximation it stays inside [0, 1]
/// and is not empty at 0/n or n/n. None when `n` is 0.
pub fn wilson_95(successes: u64, n: u64) -> Option<(f64, f64)> {
    if n == 0 || successes > n {
        return None;
    }
    let n_f = n as f64;
    let p = successes as f64 / n_f;
    let z2 = Z_95 * Z_95;
    let denominator = 1.0 + z2 / n_f;
    let center = (p + z2 / (2.0 * n_f)) / denominator;
    let half = Z_95 / denominator * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt();
    Some(((center - half).max(0.0), (center + half).min(1.0)))
}

/// The median of some values (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    })
}

/// What fails a campaign: `--fail-on invalid|unknown[,detect>=X]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailOn {
    /// Unknown verdicts fail too (exit 2) when nothing worse happened.
    pub unknown: bool,
    /// When set, a row expecting `invalid` fails only when its detection rate is below
    /// this; when not, every one of its runs must be caught.
    pub detect_min: Option<f64>,
}

impl Default for FailOn {
    fn default() -> Self {
        FailOn {
            unknown: true,
            detect_min: None,
        }
    }
}

impl std::str::FromStr for FailOn {
    type Err = String;

    /// `invalid`, `unknown`, `detect>=0.9`, or a comma-separated mix (`unknown,detect>=0.9`).
    /// `detect>=X` alone keeps unknown verdicts failing, as the default does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = FailOn::default();
        let mut level = None;
        for part in s.split(',').map(str::trim) {
            if let Some(x) = part.strip_prefix("detect>=") {
                let x: f64 = x
                    .parse()
                    .map_err(|_| format!("--fail-on: {part:?}: the threshold is a number"))?;
                if !(0.0..=1.0).contains(&x) {
                    return Err(format!("--fail-on: {part:?}: the threshold is in 0..=1"));
                }
                out.detect_min = Some(x);
            } else if part == "invalid" || part == "unknown" {
                if level.is_some_and(|l| l != part) {
                    return Err("--fail-on: give one of invalid and unknown".into());
                }
                level = Some(part);
            } else {
                return Err(format!(
                    "--fail-on: {part:?} is not invalid, unknown or detect>=X (e.g. detect>=0.9)"
                ));
            }
        }
        out.unknown = level != Some("invalid");
        Ok(out)
    }
}

impl std::fmt::Display for FailOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.unknown { "unknown" } else { "invalid" })?;
        if let Some(x) = self.detect_min {
            write!(f, ",detect>={x}")?;
        }
        Ok(())
    }
}

/// One run's part in its row's numbers.
pub struct RunPoint<'a> {
    pub row: &'a str,
    pub expect: Expect,
    pub detect_at_least: Option<f64>,
    pub verdict: &'a str,
    pub duration_s: f64,
    pub first_violation_s: Option<f64>,
}

/// A row's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowStats {
    pub row: String,
    pub expect: Expect,
    /// The row's own detection threshold (the campaign file's `detect_at_least`).
    #[serde(default)]
    pub detect_at_least: Option<f64>,
    pub runs: u64,
    pub valid: u64,
    pub invalid: u64,
    pub unknown: u64,
    pub crashed: u64,
    /// Runs that got what the row expects (`invalid` for a planted bug, else `valid`), out
    /// of the runs that finished (crashed ones say nothing either way).
    pub hits: u64,
    pub decided: u64,
    pub rate: Option<f64>,
    pub rate_low: Option<f64>,
    pub rate_high: Option<f64>,
    /// Over the invalid runs: seconds from the start of the workload until the violation
    /// was complete in the history (its last op completed).
    pub median_first_violation_s: Option<f64>,
    pub median_duration_s: Option<f64>,
}

impl RowStats {
    /// The rate as people write it: `9/10 = 0.90 [0.60, 0.98]`.
    pub fn rate_text(&self) -> String {
        match (self.rate, self.rate_low, self.rate_high) {
            (Some(r), Some(lo), Some(hi)) => {
                format!("{}/{} = {r:.2} [{lo:.2}, {hi:.2}]", self.hits, self.decided)
            }
            _ => format!("{}/{}", self.hits, self.decided),
        }
    }

    /// Whether this row (expecting invalid) misses the `--fail-on detect>=X` threshold.
    pub fn below(&self, detect_min: f64) -> bool {
        self.expect == Expect::Invalid && self.rate.is_none_or(|r| r < detect_min)
    }

    /// What the row expects as tables show it: `invalid` or `invalid, detect>=0.2`.
    pub fn expect_text(&self) -> String {
        match self.detect_at_least {
            Some(x) if self.expect == Expect::Invalid => format!("invalid, detect>={x}"),
            _ => self.expect.as_str().to_string(),
        }
    }

    /// The detection rate this row is judged by, if it is judged by one: its own
    /// `detect_at_least`, else `--fail-on detect>=X`; none for a row expecting valid.
    pub fn threshold(&self, fail_on_detect_min: Option<f64>) -> Option<f64> {
        (self.expect == Expect::Invalid)
            .then(|| self.detect_at_least.or(fail_on_detect_min))
            .flatten()
    }
}

/// The rows' numbers, in order of each row's first run.
pub fn row_stats<'a>(points: impl IntoIterator<Item = RunPoint<'a>>) -> Vec<RowStats> {
    struct Acc {
        stats: RowStats,
        violations: Vec<f64>,
        durations: Vec<f64>,
    }
    let mut rows: Vec<Acc> = Vec::new();
    for p in points {
        let acc = match rows.iter().position(|a| a.stats.row == p.row) {
            Some(i) => &mut rows[i],
            None => {
                rows.push(Acc {
                    stats: RowStats {
                        row: p.row.to_string(),
                        expect: p.expect,
                        detect_at_least: p.detect_at_least,
                        runs: 0,
                        valid: 0,
                        invalid: 0,
                        unknown: 0,
                        crashed: 0,
                        hits: 0,
                        decided: 0,
                        rate: None,
                        rate_low: None,
                        rate_high: None,
                        median_first_violation_s: None,
                        median_duration_s: None,
                    },
                    violations: vec![],
                    durations: vec![],
                });
                rows.last_mut().expect("just pushed")
            }
        };
        let s = &mut acc.stats;
        s.runs += 1;
        match p.verdict {
            "valid" => s.valid += 1,
            "invalid" => s.invalid += 1,
            "unknown" => s.unknown += 1,
            _ => s.crashed += 1,
        }
        if p.verdict == s.expect.as_str() {
            s.hits += 1;
        }
        if p.verdict == "invalid" {
            acc.violations.extend(p.first_violation_s);
        }
        acc.durations.push(p.duration_s);
    }
    rows.into_iter()
        .map(|mut a| {
            let s = &mut a.stats;
            s.decided = s.runs - s.crashed;
            if s.decided > 0 {
                s.rate = Some(s.hits as f64 / s.decided as f64);
                if let Some((lo, hi)) = wilson_95(s.hits, s.decided) {
                    s.rate_low = Some(lo);
                    s.rate_high = Some(hi);
                }
            }
            if s.expect == Expect::Invalid {
                s.median_first_violation_s = median(&a.violations);
            }
            s.median_duration_s = median(&a.durations);
            a.stats
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-5
    }

    #[test]
    fn wilson_matches_published_values() {
        // Reference values: Newcombe (1998), "Two-sided confidence intervals for the single
        // proportion", Table I (method 3, Wilson score without continuity correction):
        // 81/263 → 0.2553–0.3662, 15/148 → 0.0624–0.1605, 0/20 → 0–0.1611, 1/29 → 0.0061–0.1718.
        for (x, n, lo, hi) in [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ] {
            let (l, h) = wilson_95(x, n).unwrap();
            assert!(
                (l - lo).abs() < 1e-4 && (h - hi).abs() < 1e-4,
                "{x}/{n}: {l} {h}"
            );
        }
        // And the ones a ten-seed row shows.
        let (l, h) = wilson_95(10, 10).unwrap();
        assert!(close(l, 0.7225) && close(h, 1.0), "{l} {h}");
        let (l, h) = wilson_95(9, 10).unwrap();
        assert!(close(l, 0.5958) && close(h, 0.9821), "{l} {h}");
        let (l, h) = wilson_95(5, 10).unwrap();
        assert!(close(l, 0.2366) && close(h, 0.7634), "{l} {h}");
        assert_eq!(wilson_95(0, 0), None);
        assert_eq!(wilson_95(3, 2), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 2.0]), Some(2.0));
    }

    #[test]
    fn fail_on_parses_levels_and_thresholds() {
        let p = |s: &str| s.parse::<FailOn>();
        assert_eq!(p("unknown"), Ok(FailOn::default()));
        assert_eq!(
            p("invalid"),
            Ok(FailOn {
                unknown: false,
                detect_min: None
            })
        );
        assert_eq!(
            p("detect>=0.9"),
            Ok(FailOn {
                unknown: true,
                detect_min: Some(0.9)
            })
        );
        assert_eq!(
            p("invalid,detect>=0.75"),
            Ok(FailOn {
                unknown: false,
                detect_min: Some(0.75)
            })
        );
        for bad in ["detect>=1.5", "detect>=x", "often", "invalid,unknown", ""] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(
            p("invalid,detect>=0.9").unwrap().to_string(),
            "invalid,detect>=0.9"
        );
    }

    #[test]
    fn rows_count_verdicts_rates_and_times_to_violation() {
        let mut points = Vec::new();
        // A planted bug caught 9 of 10, one run crashed (not counted in the rate).
        for i in 0..9 {
            points.push(RunPoint {
                row: "bug",
                expect: Expect::Invalid,
                detect_at_least: None,
                verdict: "invalid",
                duration_s: 40.0,
                first_violation_s: Some(i as f64 + 1.0),
            });
        }
        points.push(RunPoint {
            row: "bug",
            expect: Expect::Invalid,
            detect_at_least: None,
            verdict: "valid",
            duration_s: 42.0,
            first_violation_s: None,
        });
        points.push(RunPoint {
            row: "bug",
            expect: Expect::Invalid,
            detect_at_least: None,
            verdict: "crashed",
            duration_s: 3.0,
            first_violation_s: None,
        });
        points.push(RunPoint {
            row: "control",
            expect: Expect::Valid,
            detect_at_least: None,
            verdict: "unknown",
            duration_s: 40.0,
            first_violation_s: None,
        });
        let rows = row_stats(points);
        assert_eq!(rows.len(), 2);
        let bug = &rows[0];
        assert_eq!(
            (bug.runs, bug.valid, bug.invalid, bug.unknown, bug.crashed),
            (11, 1, 9, 0, 1)
        );
        assert_eq!((bug.hits, bug.decided), (9, 10));
        assert_eq!(bug.rate, Some(0.9));
        assert!(close(bug.rate_low.unwrap(), 0.5958));
        assert_eq!(bug.median_first_violation_s, Some(5.0));
        assert_eq!(bug.median_duration_s, Some(40.0));
        assert_eq!(bug.rate_text(), "9/10 = 0.90 [0.60, 0.98]");
        assert!(!bug.below(0.9));
        assert!(bug.below(0.95));
        let control = &rows[1];
        assert_eq!((control.hits, control.decided), (0, 1));
        assert_eq!(control.median_first_violation_s, None);
        assert!(!control.below(0.9), "a control row has no detection rate");
    }
}
