//! Knowing that this process is a fork of the one that set something up. A counter bumped in
//! every child by a `pthread_atfork` handler, read with one atomic load: state stamped with
//! the count it was made under (an L1 lease, "a background task runs") is void in a child,
//! whose parent's threads and tasks do not exist. libc's `fork()` runs the handler even when
//! called directly, skipping Python's own at-fork hooks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Once;

static FORKS: AtomicU64 = AtomicU64::new(0);
static REGISTER: Once = Once::new();

extern "C" fn in_child() {
    // Async-signal-safe: a lone atomic add.
    FORKS.fetch_add(1, Ordering::SeqCst);
}

/// How many forks separate this process from the first one that called this function.
pub fn generation() -> u64 {
    REGISTER.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic; pthread_atfork has no other
        // precondition. A failure (ENOMEM) leaves generation() at 0 in children, where
        // callers fall back to their own process-id checks.
        unsafe {
            libc::pthread_atfork(None, None, Some(in_child));
        }
    });
    FORKS.load(Ordering::Acquire)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forked_child_sees_a_new_generation() {
        let before = generation();
        // SAFETY: the child only reads an atomic and calls _exit.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = i32::from(generation() != before + 1);
            // SAFETY: _exit is async-signal-safe and never returns.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child started above.
        unsafe { libc::waitpid(pid, &raw mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
        assert_eq!(generation(), before);
    }
}
