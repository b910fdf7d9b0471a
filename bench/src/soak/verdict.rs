//! What the samples of a soak say against its four conditions.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::sampling::{Sample, Table};

/// The figures the conditions compare.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    /// RSS of each instance after the first twelfth of the run (five minutes of an hour), and at
    /// the end.
    pub rss_early_mib: [f64; 2],
    pub rss_end_mib: [f64; 2],
    /// p99 of every request in the first and in the last sixth (ten minutes of an hour).
    pub p99_first_ms: f64,
    pub p99_last_ms: f64,
    /// The schema's size once every retention window has passed (two thirds in), and at the end.
    pub steady_database_mib: f64,
    pub end_database_mib: f64,
    /// Rows still there at the end that retention should have removed: sessions past their
    /// absolute lifetime and audit events past theirs, by more than two housekeeping intervals.
    pub overdue_sessions: i64,
    pub overdue_audit_events: i64,
}

impl Verdict {
    /// The larger of the two instances' growth, as a fraction.
    pub fn rss_drift(&self) -> f64 {
        (0..2)
            .map(|i| self.rss_end_mib[i] / self.rss_early_mib[i].max(f64::EPSILON) - 1.0)
            .fold(f64::MIN, f64::max)
    }

    pub fn p99_ratio(&self) -> f64 {
        self.p99_last_ms / self.p99_first_ms.max(f64::EPSILON)
    }

    pub fn size_growth(&self) -> f64 {
        self.end_database_mib / self.steady_database_mib.max(f64::EPSILON) - 1.0
    }
}

/// Tables whose rows grew by more than 10 % (and 100 rows) between the steady point and the
/// end: once every retention window has passed, what still grows is not explained by retention.
pub fn still_growing<'t>(steady: &[Table], end: &'t [Table]) -> Vec<&'t Table> {
    end.iter()
        .filter(|t| {
            let before = steady
                .iter()
                .find(|s| s.name == t.name)
                .map_or(0, |s| s.rows);
            t.rows > before + 100 && t.rows as f64 > before as f64 * 1.10
        })
        .collect()
}

/// The early, first, last and steady figures out of the samples of a soak of `d` (each sample
/// stamped with the end of its interval).
pub fn of(samples: &[Sample], d: Duration) -> anyhow::Result<Verdict> {
    let d = d.as_secs_f64();
    // The first sample at or after `at` seconds.
    let at = |at: f64| samples.iter().find(|s| s.at_secs >= at);
    let window = |keep: &dyn Fn(&Sample) -> bool| -> anyhow::Result<f64> {
        let mut merged = Histogram::<u64>::new(3)?;
        for s in samples.iter().filter(|s| keep(s)) {
            merged.add(&s.latencies)?;
        }
        Ok(merged.value_at_quantile(0.99) as f64 / 1000.0)
    };
    let (Some(early), Some(steady), Some(end)) = (at(d / 12.0), at(d * 2.0 / 3.0), samples.last())
    else {
        anyhow::bail!("the soak took too few samples");
    };
    Ok(Verdict {
        rss_early_mib: early.rss_mib,
        rss_end_mib: end.rss_mib,
        p99_first_ms: window(&|s| s.at_secs <= d / 6.0)?,
        // Each sample covers the interval before its stamp.
        p99_last_ms: window(&|s| s.at_secs - s.interval_secs >= d - d / 6.0)?,
        steady_database_mib: steady.database_mib,
        end_database_mib: end.database_mib,
        overdue_sessions: 0,
        overdue_audit_events: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample of minute `minute` of an hour whose every request took `ms`.
    fn sample(minute: u32, ms: u64, rss: f64, mib: f64) -> Sample {
        let mut latencies = Histogram::new(3).unwrap();
        latencies.record(ms * 1000).unwrap();
        Sample {
            at_secs: f64::from(minute) * 60.0,
            interval_secs: 60.0,
            requests: 1,
            failed_visits: 0,
            p50_ms: ms as f64,
            p99_ms: ms as f64,
            reads_p99_ms: ms as f64,
            rss_mib: [rss, rss + 1.0],
            database_mib: mib,
            sessions: 0,
            audit_events: 0,
            latencies,
        }
    }

    fn table(name: &str, rows: i64) -> Table {
        Table {
            name: name.into(),
            rows,
            mib: 1.0,
        }
    }

    #[test]
    fn an_hour_is_judged_on_its_first_and_last_ten_minutes_and_its_state_after_five_and_forty() {
        // Minutes 1–10 at 10 ms, 11–50 at 100 ms, 51–60 at 12 ms; memory rises until minute
        // 5, the database until minute 40.
        let samples: Vec<Sample> = (1..=60)
            .map(|m| {
                let ms = match m {
                    1..=10 => 10,
                    11..=50 => 100,
                    _ => 12,
                };
                sample(m, ms, 50.0 + f64::from(m.min(5)), f64::from(m.min(40)))
            })
            .collect();
        let v = of(&samples, Duration::from_secs(3600)).unwrap();
        assert_eq!(v.rss_early_mib, [55.0, 56.0]);
        assert_eq!(v.rss_end_mib, [55.0, 56.0]);
        assert!(v.rss_drift().abs() < 1e-9);
        assert!((v.p99_first_ms - 10.0).abs() < 0.1, "{}", v.p99_first_ms);
        assert!((v.p99_last_ms - 12.0).abs() < 0.1, "{}", v.p99_last_ms);
        assert_eq!((v.steady_database_mib, v.end_database_mib), (40.0, 40.0));
        assert!(v.size_growth().abs() < 1e-9);
    }

    #[test]
    fn memory_that_keeps_growing_is_drift() {
        let samples: Vec<Sample> = (1..=60)
            .map(|m| sample(m, 10, 50.0 + f64::from(m), 1.0))
            .collect();
        // 110 MiB at the end against 55 after five minutes.
        let v = of(&samples, Duration::from_secs(3600)).unwrap();
        assert!((v.rss_drift() - 1.0).abs() < 0.02, "{}", v.rss_drift());
    }

    #[test]
    fn a_soak_without_enough_samples_has_no_verdict() {
        assert!(of(&[], Duration::from_secs(60)).is_err());
        let early_only = [sample(1, 10, 50.0, 1.0)];
        assert!(of(&early_only, Duration::from_secs(3600)).is_err());
    }

    #[test]
    fn a_table_still_growing_after_retention_is_named_and_small_changes_are_not() {
        let steady = [table("sessions", 10_000), table("lockouts", 3)];
        let end = [
            table("sessions", 10_500),
            table("lockouts", 40),
            table("devices", 5_000),
        ];
        let growing: Vec<&str> = still_growing(&steady, &end)
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(growing, ["devices"]);
    }
}
