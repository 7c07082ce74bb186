// SPDX-License-Identifier: GPL-2.0

//! The running KUnit case, as seen by the Rust test bodies.

use crate::glue;
use kernel::{str::CStr, time};

/// The KUnit case a test body runs in.
pub(crate) struct Test(*mut glue::kunit);

impl Test {
    /// Wraps the `struct kunit` KUnit passed to the case.
    ///
    /// # Safety
    ///
    /// `ptr` is the `struct kunit` of the case running on this thread, valid until it returns.
    pub(crate) unsafe fn from_raw(ptr: *mut glue::kunit) -> Self {
        Self(ptr)
    }

    /// Records a failed expectation; the case goes on and is reported as failed.
    pub(crate) fn fail(&self, file: &CStr, line: u32, what: &CStr) {
        // SAFETY: `self.0` is the running case by the `from_raw` contract; the strings are
        // NUL-terminated and outlive the call.
        unsafe {
            glue::bucketfs_kunit_fail(self.0, file.as_char_ptr(), line as i32, what.as_char_ptr())
        }
    }
}

/// Sleeps for `ms` milliseconds.
pub(crate) fn msleep(ms: u32) {
    // SAFETY: Sleeping is allowed in a KUnit case and in work items.
    unsafe { glue::bucketfs_msleep(ms) }
}

/// Queues SIGKILL for the running case's own thread; returns whether a fatal signal is now
/// pending. The case must call [`clear_kill`] before it returns.
pub(crate) fn kill_self() -> bool {
    // SAFETY: The case runs in its own KUnit kthread, which ends when the case returns; the
    // signal only sets its pending mask (its handler is not the default one), and the case
    // clears it again with `clear_kill`.
    unsafe { glue::bucketfs_kunit_kill_self() }
}

/// Drops the signal [`kill_self`] queued and ignores SIGKILL again.
pub(crate) fn clear_kill() {
    // SAFETY: Only touches the running thread's own pending signals and SIGKILL handler.
    unsafe { glue::bucketfs_kunit_clear_kill() }
}

/// Milliseconds since `start`.
pub(crate) fn ms_since(start: time::Ktime) -> i64 {
    time::ktime_ms_delta(time::Ktime::ktime_get(), start)
}

/// Polls `cond` every millisecond for at most `ms` milliseconds; returns its last value.
pub(crate) fn wait_until(ms: i64, cond: impl Fn() -> bool) -> bool {
    let start = time::Ktime::ktime_get();
    while !cond() {
        if ms_since(start) > ms {
            return cond();
        }
        msleep(1);
    }
    true
}

/// Defines the `extern "C"` entry point `suites.c` calls for one case.
macro_rules! kunit_case {
    ($name:ident, $body:ident) => {
        #[no_mangle]
        extern "C" fn $name(test: *mut $crate::glue::kunit) {
            // SAFETY: KUnit calls the case with its own `struct kunit`, valid for the call.
            let test = unsafe { $crate::test::Test::from_raw(test) };
            $body(&test);
        }
    };
}
pub(crate) use kunit_case;
