//! Collecting results: medians, the printed table and the JSON file.

use std::fmt::Write as _;

use serde::Serialize;

/// One measured figure.
#[derive(Serialize)]
pub struct Entry {
    pub group: &'static str,
    pub name: String,
    pub unit: &'static str,
    pub median: f64,
    /// The 90th percentile (nearest rank).
    pub p90: f64,
    pub min: f64,
    pub max: f64,
    pub samples: usize,
}

/// All results of a run.
#[derive(Default)]
pub struct Report {
    entries: Vec<Entry>,
}

/// The median of `values` (which must not be empty).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `p`-th percentile of `values` by nearest rank (which must not be empty).
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

impl Report {
    /// Records the median of `samples`.
    pub fn add(
        &mut self,
        group: &'static str,
        name: impl Into<String>,
        unit: &'static str,
        samples: &[f64],
    ) {
        if samples.is_empty() {
            return;
        }
        let min = samples.iter().copied().fold(f64::INFINITY, f64::min);
        let max = samples.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let entry = Entry {
            group,
            name: name.into(),
            unit,
            median: median(samples),
            p90: percentile(samples, 90.0),
            min,
            max,
            samples: samples.len(),
        };
        eprintln!(
            "bench: {:<8} {:<48} {:>12.2} {}",
            entry.group, entry.name, entry.median, entry.unit
        );
        self.entries.push(entry);
    }

    /// The results as a table.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<9} {:<66} {:>10} {:>10} {:>10} {:>10}  {:<8} {:>4}\n",
            "group", "measurement", "median", "p90", "min", "max", "unit", "n"
        );
        for e in &self.entries {
            let _ = writeln!(
                out,
                "{:<9} {:<66} {:>10.2} {:>10.2} {:>10.2} {:>10.2}  {:<8} {:>4}",
                e.group, e.name, e.median, e.p90, e.min, e.max, e.unit, e.samples
            );
        }
        out
    }

    /// The results as JSON: a list of flat objects (what render.rs reads).
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(&self.entries).expect("plain data serialises") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(percentile(&[5.0, 1.0, 4.0, 2.0, 3.0], 90.0), 5.0);
        assert_eq!(
            percentile(&(1..=20).map(f64::from).collect::<Vec<_>>(), 90.0),
            18.0
        );
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    }

    #[test]
    fn json_and_table_list_every_entry() {
        let mut r = Report::default();
        r.add(
            "filter",
            "vcpu ioctl(KVM_RUN), none",
            "ns",
            &[10.0, 12.0, 11.0],
        );
        let rows: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(rows[0]["median"], 11.0);
        assert_eq!(rows[0]["p90"], 12.0);
        assert_eq!(rows[0]["name"], "vcpu ioctl(KVM_RUN), none");
        assert!(r.table().lines().count() == 2);
    }
}
