//! A metrics recorder for one test thread: counts each counter's
//! increments by its name and labels (`name{label=value,…}`, labels
//! sorted), so a test can read what the engine counted. Installed with
//! `metrics::set_default_local_recorder`, which holds on the test's
//! thread (tokio's test runtime runs the test on it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

#[derive(Default, Clone)]
pub struct Counts(Arc<Mutex<BTreeMap<String, u64>>>);

impl Counts {
    /// The count of `name` with exactly these labels (0 if never counted).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let mut sorted: Vec<_> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        sorted.sort();
        self.0.lock().unwrap().get(&format!("{name}{{{}}}", sorted.join(","))).copied().unwrap_or(0)
    }
}

struct One {
    key: String,
    counts: Counts,
}

impl CounterFn for One {
    fn increment(&self, value: u64) {
        *self.counts.0.lock().unwrap().entry(self.key.clone()).or_default() += value;
    }

    fn absolute(&self, value: u64) {
        self.counts.0.lock().unwrap().insert(self.key.clone(), value);
    }
}

impl Recorder for Counts {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut labels: Vec<_> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
        labels.sort();
        let key = format!("{}{{{}}}", key.name(), labels.join(","));
        Counter::from_arc(Arc::new(One { key, counts: self.clone() }))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}
