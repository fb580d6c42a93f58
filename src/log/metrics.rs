//! Prometheus metrics of the log, kept in atomics and rendered in the text
//! exposition format at `GET /metrics`. A handful of counters and two
//! histograms do not justify a metrics framework.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds (seconds) of the integration-latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];
/// Upper bounds of the batch-size histogram buckets.
const BATCH_BUCKETS: [f64; 10] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
];

/// A cumulative histogram over fixed buckets.
pub struct Histogram {
    bounds: &'static [f64],
    counts: Vec<AtomicU64>,
    /// Sum of observations, in millionths, to stay in integers.
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records one observation.
    pub fn observe(&self, value: f64) {
        if let Some(i) = self.bounds.iter().position(|&b| value <= b) {
            self.counts[i].fetch_add(1, Relaxed);
        }
        self.sum_micros.fetch_add((value * 1e6) as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in self.bounds.iter().zip(&self.counts) {
            cumulative += count.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let total = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {total}");
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}\n{name}_count {total}");
    }
}

/// Every metric the log exports.
pub struct Metrics {
    /// Entries integrated into the log.
    pub accepted: AtomicU64,
    /// Submissions answered with the index of an identical earlier entry.
    pub duplicates: AtomicU64,
    /// Submissions refused (bad input, unauthorised, chain conflict).
    pub rejected: AtomicU64,
    /// Submissions refused because the log could not store them.
    pub storage_failures: AtomicU64,
    /// Submissions refused because the index could not judge or record them.
    pub index_failures: AtomicU64,
    /// Set by a storage or index failure, cleared by the next batch stored
    /// and indexed: what `/healthz` and `modeltrail_degraded` report.
    degraded: std::sync::Mutex<Option<Degraded>>,
    /// Submissions refused because the queue was full (503).
    pub pushback: AtomicU64,
    /// Submissions waiting for the sequencer.
    pub queue_depth: AtomicU64,
    /// The published tree size.
    pub tree_size: AtomicU64,
    /// Checkpoints published.
    pub checkpoints: AtomicU64,
    /// The size of the served witnessed checkpoint (0 without witnesses).
    pub witnessed_size: AtomicU64,
    /// Entries per integrated batch.
    pub batch_size: Histogram,
    /// Seconds from a submission's arrival to its durable integration.
    pub integration_latency: Histogram,
    /// Seconds from a checkpoint's publication to its cosignatures meeting
    /// the witness quorum.
    pub witness_latency: Histogram,
    /// Seconds per batch the sequencer spends on each stage (what bounds
    /// batched throughput as the log grows; BENCHMARKS.md).
    pub stages: BatchStages,
}

/// Per-batch time of the sequencer's stages. Their `_sum` divided by the
/// accepted submissions is the serial time per entry of each stage.
pub struct BatchStages {
    /// Deduplication and the chain rules (step 1).
    pub judge: Histogram,
    /// Tiles, bundles, fsyncs and the signed checkpoint (steps 2–3).
    pub store: Histogram,
    /// Recording the batch in the index (concurrent with `store`) and
    /// committing it (step 4).
    pub index: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            accepted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            storage_failures: AtomicU64::new(0),
            index_failures: AtomicU64::new(0),
            degraded: std::sync::Mutex::new(None),
            pushback: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            tree_size: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
            witnessed_size: AtomicU64::new(0),
            batch_size: Histogram::new(&BATCH_BUCKETS),
            integration_latency: Histogram::new(&LATENCY_BUCKETS),
            witness_latency: Histogram::new(&LATENCY_BUCKETS),
            stages: BatchStages {
                judge: Histogram::new(&LATENCY_BUCKETS),
                store: Histogram::new(&LATENCY_BUCKETS),
                index: Histogram::new(&LATENCY_BUCKETS),
            },
        }
    }
}

/// Why and since when the log is degraded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Degraded {
    /// `storage_failure` or `index_failure`.
    pub reason: &'static str,
    /// The failure, for a person.
    pub message: String,
    /// When the log became degraded (the first failure since it was last healthy).
    pub since: std::time::SystemTime,
}

impl Metrics {
    /// Counts a refused submission under its outcome: the log's own
    /// failures apart from refusals of the entry, so a full disk does not
    /// look like bad input; those also mark the log degraded.
    pub fn count_refused(&self, code: &str, message: &str) {
        let counter = match code {
            "storage_failure" => &self.storage_failures,
            "index_failure" => &self.index_failures,
            _ => &self.rejected,
        };
        counter.fetch_add(1, Relaxed);
        match code {
            "storage_failure" => self.degrade("storage_failure", message),
            "index_failure" => self.degrade("index_failure", message),
            _ => {}
        }
    }

    /// Marks the log degraded (keeping the first failure's time).
    pub fn degrade(&self, reason: &'static str, message: &str) {
        let mut degraded = self.degraded.lock().unwrap_or_else(|e| e.into_inner());
        let since = degraded
            .as_ref()
            .map_or_else(std::time::SystemTime::now, |d| d.since);
        *degraded = Some(Degraded {
            reason,
            message: message.to_owned(),
            since,
        });
    }

    /// Marks the log healthy again.
    pub fn recover(&self) {
        let mut degraded = self.degraded.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(was) = degraded.take() {
            tracing::info!(
                reason = was.reason,
                "recovered: a batch was stored and indexed"
            );
        }
    }

    /// Why the log is degraded, if it is.
    pub fn degraded(&self) -> Option<Degraded> {
        self.degraded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Records how long a submission took to become durable.
    pub fn observe_latency(&self, latency: Duration) {
        self.integration_latency.observe(latency.as_secs_f64());
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let _ = writeln!(
            out,
            "# HELP modeltrail_submissions_total Submissions by outcome.\n\
             # TYPE modeltrail_submissions_total counter"
        );
        for (outcome, counter) in [
            ("accepted", &self.accepted),
            ("duplicate", &self.duplicates),
            ("rejected", &self.rejected),
            ("storage_failure", &self.storage_failures),
            ("index_failure", &self.index_failures),
            ("pushback", &self.pushback),
        ] {
            let _ = writeln!(
                out,
                "modeltrail_submissions_total{{outcome=\"{outcome}\"}} {}",
                counter.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP modeltrail_degraded 1 after a storage or index failure, until a batch is stored and indexed again.\n\
             # TYPE modeltrail_degraded gauge\nmodeltrail_degraded {}",
            u8::from(self.degraded().is_some())
        );
        gauge(
            &mut out,
            "modeltrail_queue_depth",
            "Submissions waiting for the sequencer.",
            &self.queue_depth,
        );
        gauge(
            &mut out,
            "modeltrail_tree_size",
            "Entries in the published checkpoint.",
            &self.tree_size,
        );
        gauge(
            &mut out,
            "modeltrail_witnessed_size",
            "Entries in the served checkpoint whose cosignatures meet the witness quorum.",
            &self.witnessed_size,
        );
        let _ = writeln!(
            out,
            "# HELP modeltrail_checkpoints_total Checkpoints published.\n\
             # TYPE modeltrail_checkpoints_total counter\nmodeltrail_checkpoints_total {}",
            self.checkpoints.load(Relaxed)
        );
        self.batch_size.render(
            &mut out,
            "modeltrail_batch_size",
            "Entries per integrated batch.",
        );
        self.integration_latency.render(
            &mut out,
            "modeltrail_integration_latency_seconds",
            "Time from a submission's arrival to its durable integration.",
        );
        self.witness_latency.render(
            &mut out,
            "modeltrail_witness_latency_seconds",
            "Time from a checkpoint's publication to its cosignatures meeting the witness quorum.",
        );
        for (stage, histogram, help) in [
            (
                "judge",
                &self.stages.judge,
                "deduplicating a batch and applying the chain rules",
            ),
            (
                "store",
                &self.stages.store,
                "writing and syncing a batch's tiles and its signed checkpoint",
            ),
            (
                "index",
                &self.stages.index,
                "recording a batch in the index and committing it",
            ),
        ] {
            histogram.render(
                &mut out,
                &format!("modeltrail_batch_{stage}_seconds"),
                &format!("Time per batch spent {help}."),
            );
        }
        out
    }
}

fn gauge(out: &mut String, name: &str, help: &str, value: &AtomicU64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}",
        value.load(Relaxed)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_of_the_log_are_counted_apart_and_degrade_it_until_recovery() {
        let m = Metrics::default();
        m.count_refused("bad_signature", "no");
        assert!(m.degraded().is_none());
        m.count_refused("index_failure", "the index failed");
        let first = m.degraded().expect("degraded");
        assert_eq!(first.reason, "index_failure");
        m.count_refused("storage_failure", "disk full");
        let now = m.degraded().expect("still degraded");
        assert_eq!((now.reason, now.since), ("storage_failure", first.since));
        let text = m.render();
        for line in [
            "modeltrail_submissions_total{outcome=\"rejected\"} 1\n",
            "modeltrail_submissions_total{outcome=\"index_failure\"} 1\n",
            "modeltrail_submissions_total{outcome=\"storage_failure\"} 1\n",
            "modeltrail_degraded 1\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        m.recover();
        assert!(m.degraded().is_none());
        assert!(m.render().contains("modeltrail_degraded 0\n"));
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let m = Metrics::default();
        for v in [1.0, 3.0, 3.0, 100_000.0] {
            m.batch_size.observe(v);
        }
        let text = m.render();
        assert!(
            text.contains("modeltrail_batch_size_bucket{le=\"1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("modeltrail_batch_size_bucket{le=\"4\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("modeltrail_batch_size_bucket{le=\"16384\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("modeltrail_batch_size_bucket{le=\"+Inf\"} 4\n"),
            "{text}"
        );
        assert!(text.contains("modeltrail_batch_size_count 4\n"), "{text}");
    }
}
