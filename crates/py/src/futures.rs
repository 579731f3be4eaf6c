//! The per-loop half of the asyncio bridge: asyncio futures for Rust work.
//!
//! Every async method returns an `asyncio.Future` of the caller's running loop; the work runs
//! on the process's tokio runtime (`runtime`), off the GIL. Finished work is pushed, with the
//! future, onto the queue of that loop's `LoopWaker`, which wakes the loop through a socket it
//! watches with `add_reader`; the loop thread then drains the queue and resolves the futures.
//! So results are turned into Python objects on the loop's own thread, which already holds the
//! GIL: no thread waits for the GIL, no `call_soon_threadsafe`, one wake-up per burst of
//! results. Cancelling the asyncio future aborts the tokio task.
//!
//! Why our own bridge: pyo3-async-runtimes resolves futures from tokio threads that may still
//! try to take the GIL while the interpreter finalizes, which aborts the process at exit
//! (docs/architecture.md, "The asyncio bridge"). Here tokio threads never call into Python.

use crate::errors::to_py_err;
use crate::imports::cached;
use crate::logging::{self, LogRecord};
use crate::runtime::{self, InFlight};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyWeakrefReference;
use secure_redis_core::error::{Error, ErrorCode};
use std::future::Future;
use std::io::{Read, Write};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use tokio::task::AbortHandle;

type Outcome = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

enum Completion {
    Resolve {
        future: Py<PyAny>,
        /// The future's `CancelTask` done-callback, taken off before the result is set.
        cancel: Py<CancelTask>,
        outcome: Outcome,
    },
    /// A log record from work spawned for this loop: delivered in order with the results,
    /// so a warning about a call is in the logs before the call returns.
    Log(LogRecord),
}

tokio::task_local! {
    static CURRENT_QUEUE: Arc<WakerQueue>;
}

/// Queues a log record on the waker of the loop whose work is running, if any; otherwise
/// hands it back (for the log-delivery thread).
pub fn log_in_order(record: LogRecord) -> Option<LogRecord> {
    let mut record = Some(record);
    let queued = CURRENT_QUEUE.try_with(|queue| {
        if let Some(record) = record.take() {
            queue.push(Completion::Log(record));
        }
    });
    match queued {
        Ok(()) => None,
        Err(_) => record,
    }
}

struct WakerQueue {
    pending: Mutex<Vec<Completion>>,
    signal: std::os::unix::net::UnixStream,
    closed: AtomicBool,
}

impl WakerQueue {
    fn push(&self, completion: Completion) {
        if self.closed.load(Ordering::Acquire) {
            return; // the loop is gone; dropping the result releases its future
        }
        let was_empty = {
            let mut pending = self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            pending.push(completion);
            pending.len() == 1
        };
        if was_empty {
            // One byte per burst; a full socket buffer means a wake-up is pending anyway.
            let _ = (&self.signal).write(&[1]);
        }
    }
}

/// One per event loop: the queue finished work lands on, and the socket that wakes the loop.
#[pyclass(module = "secure_redis._native", frozen)]
pub struct LoopWaker {
    queue: Arc<WakerQueue>,
    receiver: std::os::unix::net::UnixStream,
}

#[pymethods]
impl LoopWaker {
    #[new]
    fn new() -> PyResult<Self> {
        let (signal, receiver) = std::os::unix::net::UnixStream::pair()?;
        signal.set_nonblocking(true)?;
        receiver.set_nonblocking(true)?;
        Ok(LoopWaker {
            queue: Arc::new(WakerQueue {
                pending: Mutex::new(Vec::new()),
                signal,
                closed: AtomicBool::new(false),
            }),
            receiver,
        })
    }

    fn fileno(&self) -> i32 {
        use std::os::fd::AsRawFd;
        self.receiver.as_raw_fd()
    }

    /// For a closed loop: drop queued results (and the futures that keep the loop alive) and
    /// accept no more, so the loop, this waker and its sockets can be freed.
    fn close(&self) {
        self.queue.closed.store(true, Ordering::Release);
        let _ = self.receiver.shutdown(std::net::Shutdown::Both);
        drop(std::mem::take(
            &mut *self
                .queue
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        ));
    }

    /// Runs on the loop thread (`loop.add_reader`): resolves every finished future.
    fn drain(&self, py: Python<'_>) {
        let mut sink = [0u8; 256];
        while matches!((&self.receiver).read(&mut sink), Ok(n) if n > 0) {}
        let batch = std::mem::take(
            &mut *self
                .queue
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for completion in batch {
            let (future, cancel, outcome) = match completion {
                Completion::Resolve {
                    future,
                    cancel,
                    outcome,
                } => (future, cancel, outcome),
                Completion::Log(record) => {
                    logging::deliver(py, record);
                    continue;
                }
            };
            let future = future.bind(py);
            // The work is over, so there is nothing left to cancel; removed, the callback is
            // not scheduled through the loop and called for nothing once per call.
            let _ = future.call_method1(intern!(py, "remove_done_callback"), (cancel,));
            let settled = match std::panic::catch_unwind(AssertUnwindSafe(|| outcome(py))) {
                Ok(Ok(value)) => future.call_method1(intern!(py, "set_result"), (value,)),
                Ok(Err(err)) => {
                    future.call_method1(intern!(py, "set_exception"), (err.into_value(py),))
                }
                Err(_) => future.call_method1(
                    intern!(py, "set_exception"),
                    (to_py_err(py, &internal_error()).into_value(py),),
                ),
            };
            // Fails only for a future cancelled while the Rust work finished: nothing to do.
            drop(settled);
        }
    }
}

/// Done-callback attached to every future: cancelling the future aborts the Rust task.
#[pyclass(module = "secure_redis._native", frozen)]
pub struct CancelTask {
    handle: Arc<OnceLock<AbortHandle>>,
}

#[pymethods]
impl CancelTask {
    fn __call__(&self, future: &Bound<'_, PyAny>) -> PyResult<()> {
        if future
            .call_method0(intern!(future.py(), "cancelled"))?
            .is_truthy()?
        {
            if let Some(handle) = self.handle.get() {
                handle.abort();
            }
        }
        Ok(())
    }
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
    .code(ErrorCode::InternalError)
}

static WAKERS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static REGISTER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The loop seen last and its waker. Most programs run one loop, and finding a waker in the
/// `WeakKeyDictionary` is a Python-level call that builds a weakref each time: the dearest
/// step of a cache call. Read and written only with the GIL held.
struct LastLoop {
    event_loop: Py<PyWeakrefReference>,
    waker: Py<LoopWaker>,
}

static LAST_LOOP: Mutex<Option<LastLoop>> = Mutex::new(None);

/// In a forked child: the parent's loop is no loop of this process's. Taking the lock cannot
/// block: only a thread holding the GIL ever holds it, and the forking thread held the GIL.
pub fn forget_inherited_loop() {
    let inherited = LAST_LOOP.try_lock().ok().and_then(|mut last| last.take());
    drop(inherited);
}

fn waker_of<'py>(
    py: Python<'py>,
    event_loop: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, LoopWaker>> {
    {
        let last = LAST_LOOP
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(seen) = last.as_ref() {
            if seen
                .event_loop
                .bind(py)
                .upgrade()
                .is_some_and(|alive| alive.is(event_loop))
            {
                return Ok(seen.waker.bind(py).clone());
            }
        }
    }
    // Unlocked: Python code below may switch threads, and another thread may then come here.
    let wakers = cached(py, &WAKERS, "secure_redis._bridge", "_wakers")?;
    let waker = match wakers.call_method1(intern!(py, "get"), (event_loop,))? {
        found if !found.is_none() => found,
        _ => cached(py, &REGISTER, "secure_redis._bridge", "register")?.call1((event_loop,))?,
    };
    let waker = waker.cast_into::<LoopWaker>()?;
    let seen = LastLoop {
        event_loop: PyWeakrefReference::new(event_loop)?.unbind(),
        waker: waker.clone().unbind(),
    };
    let previous = LAST_LOOP
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .replace(seen);
    drop(previous); // after unlocking: dropping it may run Python code
    Ok(waker)
}

/// A new future of the running loop, and the queue of that loop's waker.
fn prepare(py: Python<'_>) -> PyResult<(Bound<'_, PyAny>, Arc<WakerQueue>)> {
    let event_loop = cached(py, &GET_RUNNING_LOOP, "asyncio", "get_running_loop")?.call0()?;
    let queue = waker_of(py, &event_loop)?.get().queue.clone();
    Ok((
        event_loop.call_method0(intern!(py, "create_future"))?,
        queue,
    ))
}

/// Runs `work` on the runtime and returns an asyncio future for its result.
pub fn spawn<F, T, C>(py: Python<'_>, work: F, convert: C) -> PyResult<Bound<'_, PyAny>>
where
    F: Future<Output = Result<T, Error>> + Send + 'static,
    T: Send + 'static,
    C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
{
    let (future, queue) = prepare(py)?;
    let future_ref = future.clone().unbind();
    let runtime = runtime::runtime().map_err(|err| to_py_err(py, &err))?;
    let counted = InFlight::enter();
    let task_queue = queue.clone();
    // The task needs its done-callback and the callback the task's abort handle: the handle
    // goes into a cell filled right after the spawn, before the future is returned to Python
    // (so before anyone can cancel it).
    let abort = Arc::new(OnceLock::new());
    let cancel = Py::new(
        py,
        CancelTask {
            handle: abort.clone(),
        },
    )?;
    let task_cancel = cancel.clone_ref(py);
    let handle = runtime.spawn(CURRENT_QUEUE.scope(task_queue, async move {
        let result = CatchUnwind(Box::pin(work)).await;
        drop(counted); // before the push: once the caller sees the result, the task is done
        let outcome: Outcome = match result {
            Ok(Ok(value)) => Box::new(move |py| convert(py, value)),
            Ok(Err(err)) => Box::new(move |py| Err(to_py_err(py, &err))),
            Err(()) => Box::new(|py| Err(to_py_err(py, &internal_error()))),
        };
        queue.push(Completion::Resolve {
            future: future_ref,
            cancel: task_cancel,
            outcome,
        });
    }));
    let _ = abort.set(handle.abort_handle());
    future.call_method1(intern!(py, "add_done_callback"), (cancel,))?;
    Ok(future)
}

/// An already-resolved future, for answers available without I/O (L1 hits).
pub fn ready<'py>(py: Python<'py>, value: Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let future = cached(py, &GET_RUNNING_LOOP, "asyncio", "get_running_loop")?
        .call0()?
        .call_method0(intern!(py, "create_future"))?;
    future.call_method1(intern!(py, "set_result"), (value,))?;
    Ok(future)
}
