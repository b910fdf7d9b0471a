//! What the service did on a test's thread: the store's calls (its `store.*` spans), which a
//! test compares to show that two requests took the same reads, and a counter's increments.
//! A `#[tokio::test]` runs on one thread by default, the service's tasks with it; other tests'
//! threads keep their own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

use tracing::span::{Attributes, Id};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// Records the store's calls that requests make on this thread while it is held.
pub struct StoreCalls {
    calls: Arc<Mutex<Vec<&'static str>>>,
    _recording: DefaultGuard,
}

impl StoreCalls {
    pub fn record() -> Self {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorder = SpanNames(Arc::clone(&calls));
        let recording =
            tracing::subscriber::set_default(tracing_subscriber::registry().with(recorder));
        Self {
            calls,
            _recording: recording,
        }
    }

    /// The calls so far, in order.
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().expect("calls").clone()
    }
}

struct SpanNames(Arc<Mutex<Vec<&'static str>>>);

impl<S> Layer<S> for SpanNames
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, context: Context<'_, S>) {
        let name = attrs.metadata().name();
        // Only a request's: not the background jobs' (the refusals' flush, housekeeping).
        let in_request = context
            .span(id)
            .is_some_and(|span| span.scope().skip(1).any(|s| s.name() == "request"));
        if name.starts_with("store.") && in_request {
            self.0.lock().expect("calls").push(name);
        }
    }
}

/// Counts the increments of one counter (whatever its labels) made on this thread while
/// [`CounterWatch::watch`]'s guard is held.
pub struct CounterWatch {
    name: &'static str,
    count: Arc<AtomicU64>,
}

impl CounterWatch {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            count: Arc::default(),
        }
    }

    pub fn watch(&self) -> metrics::LocalRecorderGuard<'_> {
        metrics::set_default_local_recorder(self)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl Recorder for CounterWatch {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        if key.name() == self.name {
            Counter::from_arc(Arc::new(Tally(Arc::clone(&self.count))))
        } else {
            Counter::noop()
        }
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

struct Tally(Arc<AtomicU64>);

impl CounterFn for Tally {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }

    fn absolute(&self, value: u64) {
        self.0.fetch_max(value, Ordering::Relaxed);
    }
}
