//! Rust `tracing` events from our own targets (`secure_redis.*`) reach Python's `logging`
//! under the same logger names, never stdout. Every record of the extension ends in `deliver`:
//! * raised by work spawned for an event loop: queued with that loop's results, so a warning
//!   about a call is logged before the call returns;
//! * raised by binding code that holds the GIL (`warn_now`): logged at once, for the same
//!   reason;
//! * anywhere else (a background reconnect): through the delivery thread, behind the
//!   shutdown gate.

use crate::futures::log_in_order;
use crate::imports;
use crate::runtime;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, RwLock};
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// One event, ready for Python's `logging`.
pub struct LogRecord {
    pub logger: String,
    pub level: u8,
    pub message: String,
}

static GET_LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Hands a record to the delivery thread (dropped once `shutdown` ran or before the runtime
/// exists). Records are leaked rather than dropped there: dropping touches no Python, but a
/// record must never be freed by a thread that then races interpreter finalization.
fn send(record: LogRecord) {
    if runtime::is_closed() {
        std::mem::forget(record);
        return;
    }
    match runtime::delivery() {
        Some((delivery, _)) => {
            if let Err(returned) = delivery.send(record) {
                std::mem::forget(returned.0);
            }
        }
        None => std::mem::forget(record),
    }
}

/// Starts the thread that delivers records raised off any event loop (background reconnects,
/// for instance) to Python's `logging`, behind `gate`.
pub fn start_delivery(gate: Arc<RwLock<()>>) -> std::io::Result<Sender<LogRecord>> {
    let (delivery, rx) = channel();
    std::thread::Builder::new()
        .name("secure-redis-deliver".into())
        .spawn(move || deliver_forever(&rx, &gate))?;
    Ok(delivery)
}

fn deliver_forever(rx: &Receiver<LogRecord>, gate: &RwLock<()>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        let _gate = gate
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if runtime::is_closed() {
            std::mem::forget(batch);
            continue;
        }
        let mut pending = Some(batch);
        let delivered = Python::try_attach(|py| {
            let batch = pending.take().unwrap_or_default();
            // A panic here must not kill the thread every later record depends on.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| {
                for record in batch {
                    deliver(py, record);
                }
            }));
        });
        if delivered.is_none() {
            // The interpreter is finalizing: leak rather than touch it.
            std::mem::forget(pending);
        }
    }
}

/// Logs one record through `logging.getLogger(name).log(level, message)`.
pub fn deliver(py: Python<'_>, record: LogRecord) {
    if let Ok(get_logger) = imports::cached(py, &GET_LOGGER, "logging", "getLogger") {
        if let Ok(log) = get_logger.call1((record.logger,)) {
            let _ = log.call_method1("log", (record.level, record.message));
        }
    }
}

/// A warning from code that holds the GIL, logged before that code returns to Python.
/// `target` is a logger name such as `secure_redis.tamper`.
pub fn warn_now(py: Python<'_>, target: &str, message: String) {
    deliver(
        py,
        LogRecord {
            logger: target.to_owned(),
            level: 30,
            message,
        },
    );
}

struct PythonLogging;

struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            use std::fmt::Write;
            let _ = write!(self.0, "{value:?}");
        }
    }
}

fn ours(meta: &Metadata<'_>) -> bool {
    meta.target().starts_with("secure_redis") && *meta.level() <= Level::INFO
}

impl<S: Subscriber> Layer<S> for PythonLogging {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if ours(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        ours(meta)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => 40,
            Level::WARN => 30,
            Level::INFO => 20,
            Level::DEBUG => 10,
            Level::TRACE => 5,
        };
        let mut message = Message(String::new());
        event.record(&mut message);
        let record = LogRecord {
            logger: meta.target().replace("::", "."),
            level,
            message: message.0,
        };
        if let Some(record) = log_in_order(record) {
            send(record);
        }
    }
}

pub fn install() {
    // Another library may own the global subscriber already; then our events go to it.
    let _ =
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(PythonLogging));
}
