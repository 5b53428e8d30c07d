//! The result file every comparison writes (JSON, read by `bench/report.py`): per subject,
//! scenario and metric, one value per round, so ratios can be taken round by round.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// One measured series: `subject` (e.g. `haproxy`) in `scenario` (e.g. `keep-alive`), `metric`
/// (e.g. `cpu_ms_per_1000`) in `unit`, one value per round.
#[derive(Debug, Clone)]
struct Series {
    subject: String,
    scenario: String,
    metric: String,
    unit: String,
    better: &'static str,
    values: Vec<f64>,
}

/// Collects the series of one comparison and writes them as JSON.
#[derive(Debug, Default)]
pub struct Recorder {
    series: Vec<Series>,
    skipped: BTreeMap<String, String>,
    notes: Vec<String>,
    peers: BTreeMap<String, String>,
    params: BTreeMap<String, Value>,
    pairs: Vec<(String, String)>,
}

/// Whether a larger or smaller value is better (the report says so beside the figure).
pub const HIGHER: &str = "higher";
/// See [`HIGHER`].
pub const LOWER: &str = "lower";

impl Recorder {
    /// Appends one round's value of a series (creating the series on first use).
    pub fn push(
        &mut self,
        subject: &str,
        scenario: &str,
        metric: &str,
        unit: &str,
        better: &'static str,
        v: f64,
    ) {
        if let Some(s) = self
            .series
            .iter_mut()
            .find(|s| s.subject == subject && s.scenario == scenario && s.metric == metric)
        {
            s.values.push(v);
            return;
        }
        self.series.push(Series {
            subject: subject.into(),
            scenario: scenario.into(),
            metric: metric.into(),
            unit: unit.into(),
            better,
            values: vec![v],
        });
    }

    /// Records that `subject` was not measured, and why.
    pub fn skip(&mut self, subject: &str, reason: &str) {
        eprintln!("rvs-bench: skipping {subject}: {reason}");
        self.skipped.insert(subject.into(), reason.into());
    }

    /// Adds a free-text note to the report.
    pub fn note(&mut self, text: &str) {
        self.notes.push(text.into());
    }

    /// Records a peer's version (`haproxy` → `2.6.12`).
    pub fn peer(&mut self, name: &str, version: &str) {
        self.peers.insert(name.into(), version.trim().into());
    }

    /// Records a parameter of the run (duration, connections, ...).
    pub fn param(&mut self, name: &str, v: Value) {
        self.params.insert(name.into(), v);
    }

    /// Sets the (subject, reference) pairs the report takes ratios of, round by round — in place
    /// of every subject against every reference. Pairs whose subjects were not measured are
    /// left out.
    pub fn pairs(&mut self, pairs: &[(&str, &str)]) {
        let measured = |n: &str| self.series.iter().any(|s| s.subject == n);
        self.pairs = pairs
            .iter()
            .filter(|(a, b)| measured(a) && measured(b))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    }

    /// Writes the JSON file: comparison name, title, reference subjects for ratios, series.
    pub fn write(
        &self,
        path: &Path,
        comparison: &str,
        title: &str,
        references: &[&str],
        mode: &str,
    ) -> std::io::Result<()> {
        let series: Vec<Value> = self
            .series
            .iter()
            .map(|s| {
                json!({"subject": s.subject, "scenario": s.scenario, "metric": s.metric,
                       "unit": s.unit, "better": s.better, "values": s.values})
            })
            .collect();
        let doc = json!({
            "comparison": comparison, "title": title, "mode": mode, "references": references,
            "peers": self.peers, "params": self.params, "skipped": self.skipped,
            "notes": self.notes, "series": series,
            "pairs": self.pairs.iter().map(|(a, b)| json!([a, b])).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap_or_default())
    }
}

/// First line of `program args...` output (stdout, else stderr), or `"unknown"`.
pub fn version_of(program: &str, args: &[&str]) -> String {
    match Command::new(program).args(args).output() {
        Ok(out) => {
            let text = if out.stdout.is_empty() {
                out.stderr
            } else {
                out.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("unknown")
                .trim()
                .to_string()
        }
        Err(_) => "not installed".into(),
    }
}
