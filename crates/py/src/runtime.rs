//! The process-wide half of the asyncio bridge: the tokio runtime and the log-delivery
//! thread, made on first use, replaced in a forked child (whose parent's threads do not
//! exist), and a gate that `shutdown` (an atexit hook) closes so that no thread of ours enters
//! a finalizing interpreter. Also counts the Rust tasks started for Python.

use crate::futures;
use crate::logging::{self, LogRecord};
use pyo3::prelude::*;
use secure_redis_core::error::{Error, ErrorCode};
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, RwLock};
use tokio::runtime::Runtime;

static CLOSED: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The runtime, the delivery thread's channel and the shutdown gate of this process.
struct Process {
    runtime: Runtime,
    delivery: Sender<LogRecord>,
    gate: Arc<RwLock<()>>,
}

/// Replaced (the old one leaked) in a forked child, where the parent's threads do not exist:
/// without that, every await in the child would wait forever.
static PROCESS: AtomicPtr<Process> = AtomicPtr::new(ptr::null_mut());
static PROCESS_INIT: Mutex<()> = Mutex::new(());

fn current() -> Option<&'static Process> {
    let current = PROCESS.load(Ordering::Acquire);
    // SAFETY: non-null pointers in PROCESS come from Box::leak in `process()` and are never freed.
    unsafe { current.as_ref() }
}

fn process() -> Result<&'static Process, Error> {
    if let Some(existing) = current() {
        return Ok(existing);
    }
    let _init = PROCESS_INIT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(existing) = current() {
        return Ok(existing);
    }
    let failed = |what: &str, err: std::io::Error| {
        Error::infrastructure(format!("secure_redis could not start its {what}: {err}"))
            .code(ErrorCode::RuntimeStartFailure)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("secure-redis-io")
        .enable_all()
        .build()
        .map_err(|e| failed("I/O runtime", e))?;
    let gate = Arc::new(RwLock::new(()));
    let delivery =
        logging::start_delivery(gate.clone()).map_err(|e| failed("delivery thread", e))?;
    let leaked: &'static mut Process = Box::leak(Box::new(Process {
        runtime,
        delivery,
        gate,
    }));
    PROCESS.store(leaked, Ordering::Release);
    Ok(leaked)
}

pub fn runtime() -> Result<&'static Runtime, Error> {
    process().map(|b| &b.runtime)
}

/// `os.register_at_fork(after_in_child=...)`: the child builds its own runtime on first use and
/// draws its Fernet IVs from a freshly seeded generator.
#[pyfunction]
pub fn after_fork_in_child() {
    PROCESS.store(ptr::null_mut(), Ordering::Release);
    futures::forget_inherited_loop();
    secure_redis_core::crypto::keyring::reseed_after_fork();
}

/// Whether `shutdown` ran: from then on nothing of ours may call into Python.
pub fn is_closed() -> bool {
    CLOSED.load(Ordering::Acquire)
}

/// The delivery thread's channel and its gate, once the runtime exists.
pub fn delivery() -> Option<(&'static Sender<LogRecord>, &'static RwLock<()>)> {
    current().map(|p| (&p.delivery, &*p.gate))
}

/// Called by `atexit`: stop entering CPython from our threads, after any delivery under way.
#[pyfunction]
pub fn shutdown(py: Python<'_>) {
    CLOSED.store(true, Ordering::Release);
    if let Some(b) = current() {
        py.detach(|| {
            drop(
                b.gate
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
        });
    }
}

/// Counts Rust tasks started for Python and not yet finished or aborted. An aborted task
/// drops its future, and with it this guard, so tests can see cancellation reach Rust.
pub struct InFlight;

impl InFlight {
    pub fn enter() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        InFlight
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

#[pyfunction]
pub fn in_flight_tasks() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}
