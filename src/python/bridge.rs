//! asyncio <-> tokio, with a shutdown gate.
//!
//! Every async method returns an `asyncio.Future` created on the caller's running loop; the
//! work runs on our tokio runtime, off the GIL. Results travel through one channel to a
//! single delivery thread, which takes the GIL once per batch and resolves the futures with
//! one `call_soon_threadsafe` per loop. Cancelling the asyncio future aborts the tokio task.
//!
//! Why our own bridge: pyo3-async-runtimes resolves futures from tokio threads that may still
//! try to take the GIL while the interpreter finalizes, which aborts the process at exit
//! (see build notes, gotcha 1). Here `shutdown()` (an atexit hook) closes the gate and waits
//! for any delivery in progress; after that nothing enters CPython again and undelivered
//! Python references are leaked instead of touched.

use super::errors::to_py_err;
use crate::error::Error;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyTuple};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

type Outcome = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

pub enum Job {
    Resolve {
        event_loop: Py<PyAny>,
        future: Py<PyAny>,
        outcome: Outcome,
    },
    Log {
        logger: String,
        level: u8,
        message: String,
    },
}

static CLOSED: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// The runtime, the delivery thread's channel and the shutdown gate of this process.
struct Bridge {
    runtime: Runtime,
    delivery: Sender<Job>,
    gate: Arc<RwLock<()>>,
}

/// Replaced (the old one leaked) in a forked child, where the parent's threads do not exist:
/// without that, every await in the child would wait forever.
static BRIDGE: AtomicPtr<Bridge> = AtomicPtr::new(ptr::null_mut());
static BRIDGE_INIT: Mutex<()> = Mutex::new(());

fn current_bridge() -> Option<&'static Bridge> {
    let current = BRIDGE.load(Ordering::Acquire);
    // SAFETY: non-null pointers in BRIDGE come from Box::leak in `bridge()` and are never freed.
    unsafe { current.as_ref() }
}

fn bridge() -> Result<&'static Bridge, Error> {
    if let Some(existing) = current_bridge() {
        return Ok(existing);
    }
    let _init = BRIDGE_INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(existing) = current_bridge() {
        return Ok(existing);
    }
    let failed = |what: &str, err: std::io::Error| {
        Error::infrastructure(format!("secure_redis could not start its {what}: {err}"))
            .error_type("runtime_start_failure")
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("secure-redis-io")
        .enable_all()
        .build()
        .map_err(|e| failed("I/O runtime", e))?;
    let gate = Arc::new(RwLock::new(()));
    let (delivery, rx) = channel();
    let thread_gate = gate.clone();
    std::thread::Builder::new()
        .name("secure-redis-deliver".into())
        .spawn(move || deliver_forever(rx, thread_gate))
        .map_err(|e| failed("delivery thread", e))?;
    let leaked: &'static mut Bridge = Box::leak(Box::new(Bridge {
        runtime,
        delivery,
        gate,
    }));
    BRIDGE.store(leaked, Ordering::Release);
    Ok(leaked)
}

pub fn runtime() -> Result<&'static Runtime, Error> {
    bridge().map(|b| &b.runtime)
}

/// `os.register_at_fork(after_in_child=...)`: the child builds its own runtime on first use.
#[pyfunction]
pub fn after_fork_in_child() {
    BRIDGE.store(ptr::null_mut(), Ordering::Release);
}

pub fn send(job: Job) {
    if CLOSED.load(Ordering::Acquire) {
        std::mem::forget(job);
        return;
    }
    match current_bridge() {
        Some(b) => {
            if let Err(returned) = b.delivery.send(job) {
                std::mem::forget(returned.0);
            }
        }
        None => std::mem::forget(job),
    }
}

fn deliver_forever(rx: Receiver<Job>, gate: Arc<RwLock<()>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 4096 {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let _gate = gate.read().unwrap_or_else(|p| p.into_inner());
        if CLOSED.load(Ordering::Acquire) {
            std::mem::forget(batch);
            continue;
        }
        let mut pending = Some(batch);
        let delivered = Python::try_attach(|py| {
            let batch = pending.take().unwrap_or_default();
            // A panic here must not kill the thread every future depends on.
            let _ = std::panic::catch_unwind(AssertUnwindSafe(|| deliver_batch(py, batch)));
        });
        if delivered.is_none() {
            // The interpreter is finalizing: leak rather than touch it.
            std::mem::forget(pending);
        }
    }
}

static RESOLVE_BATCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static GET_LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn cached<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    module: &str,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    cell.get_or_try_init(py, || {
        Ok::<_, PyErr>(py.import(module)?.getattr(name)?.unbind())
    })
    .map(|f| f.bind(py).clone())
}

fn deliver_batch(py: Python<'_>, batch: Vec<Job>) {
    // Futures grouped by loop, in arrival order; usually there is one loop.
    let mut groups: Vec<(Py<PyAny>, Vec<Bound<'_, PyAny>>)> = Vec::new();
    for job in batch {
        match job {
            Job::Log {
                logger,
                level,
                message,
            } => {
                if let Ok(get_logger) = cached(py, &GET_LOGGER, "logging", "getLogger") {
                    if let Ok(log) = get_logger.call1((logger,)) {
                        let _ = log.call_method1("log", (level, message));
                    }
                }
            }
            Job::Resolve {
                event_loop,
                future,
                outcome,
            } => {
                let (ok, value) = match outcome(py) {
                    Ok(value) => (true, value),
                    Err(err) => (false, err.into_value(py).into_any()),
                };
                let ok = pyo3::types::PyBool::new(py, ok)
                    .to_owned()
                    .into_any()
                    .unbind();
                let Ok(item) = PyTuple::new(py, [future, ok, value]) else {
                    continue;
                };
                let item = item.into_any();
                match groups.iter_mut().find(|(l, _)| l.is(&event_loop)) {
                    Some((_, items)) => items.push(item),
                    None => groups.push((event_loop, vec![item])),
                }
            }
        }
    }
    if groups.is_empty() {
        return;
    }
    let resolve = match cached(py, &RESOLVE_BATCH, "secure_redis._bridge", "resolve_batch") {
        Ok(f) => f,
        Err(err) => {
            err.print(py);
            return;
        }
    };
    for (event_loop, items) in groups {
        let Ok(list) = PyList::new(py, items) else {
            continue;
        };
        // Fails only when the loop is closed; its futures are gone with it.
        let _ = event_loop
            .bind(py)
            .call_method1("call_soon_threadsafe", (&resolve, list));
    }
}

/// Called by `atexit`: stop entering CPython from our threads, after any delivery under way.
#[pyfunction]
pub fn shutdown(py: Python<'_>) {
    CLOSED.store(true, Ordering::Release);
    if let Some(b) = current_bridge() {
        py.detach(|| {
            drop(b.gate.write().unwrap_or_else(|p| p.into_inner()));
        });
    }
}

/// Done-callback attached to every future: cancelling the future aborts the Rust task.
#[pyclass(frozen)]
pub struct CancelTask {
    handle: AbortHandle,
}

#[pymethods]
impl CancelTask {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future.call_method0("cancelled")?.is_truthy()? {
            self.handle.abort();
        }
        Ok(())
    }
}

/// Counts Rust tasks started for Python and not yet finished or aborted. An aborted task
/// drops its future, and with it this guard, so tests can see cancellation reach Rust.
struct InFlight;

impl InFlight {
    fn enter() -> InFlight {
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

/// Turns a panic inside the Rust work into an error instead of a crash or a hung future.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

pub fn internal_error() -> Error {
    Error::infrastructure(
        "secure_redis hit an internal error (a bug; please report it). The operation was not completed.",
    )
    .error_type("internal_error")
}

fn running_loop<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
    cached(py, &GET_RUNNING_LOOP, "asyncio", "get_running_loop")?.call0()
}

/// Runs `work` on the runtime and returns an asyncio future for its result.
pub fn spawn<'py, F, T, C>(py: Python<'py>, work: F, convert: C) -> PyResult<Bound<'py, PyAny>>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let event_loop = running_loop(py)?;
    let future = event_loop.call_method0("create_future")?;
    let event_loop = event_loop.unbind();
    let future_ref = future.clone().unbind();
    let runtime = runtime().map_err(|err| to_py_err(py, &err))?;
    let counted = InFlight::enter();
    let handle = runtime.spawn(async move {
        let _counted = counted;
        let result = CatchUnwind(Box::pin(work)).await;
        let outcome: Outcome = match result {
            Ok(Ok(value)) => Box::new(move |py| convert(py, value)),
            Ok(Err(err)) => Box::new(move |py| Err(to_py_err(py, &err))),
            Err(()) => Box::new(|py| Err(to_py_err(py, &internal_error()))),
        };
        send(Job::Resolve {
            event_loop,
            future: future_ref,
            outcome,
        });
    });
    future.call_method1(
        "add_done_callback",
        (CancelTask {
            handle: handle.abort_handle(),
        },),
    )?;
    Ok(future)
}

/// An already-resolved future, for answers available without I/O (L1 hits).
pub fn ready<'py>(py: Python<'py>, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let future = running_loop(py)?.call_method0("create_future")?;
    future.call_method1("set_result", (value,))?;
    Ok(future)
}
