//! Python callables the extension calls on hot paths (`asyncio.get_running_loop`,
//! `logging.getLogger`, our `_bridge` helpers), looked up once per process instead of per call.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// `module.name`, imported on first use and kept in `cell`.
pub fn cached<'py>(
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
