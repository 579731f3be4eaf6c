//! Rust `tracing` events from our own targets (`secure_redis.*`) reach Python's `logging`
//! under the same logger names, through the delivery thread (never stdout).

use crate::bridge::{log_in_order, send, Job};
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

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
        let job = Job::Log {
            logger: meta.target().replace("::", "."),
            level,
            message: message.0,
        };
        if let Some(job) = log_in_order(job) {
            send(job);
        }
    }
}

pub fn install() {
    // Another library may own the global subscriber already; then our events go to it.
    let _ =
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(PythonLogging));
}
