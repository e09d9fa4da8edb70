//! A write-once value many threads can wait for.

use std::sync::{Arc, Condvar, Mutex};

/// Set once by a worker, read by any number of waiters.
#[derive(Debug)]
pub struct Promise<T> {
    inner: Arc<(Mutex<State<T>>, Condvar)>,
}

#[derive(Debug)]
struct State<T> {
    value: Option<T>,
    /// Someone sleeps on the condition variable. Most promises are set before anyone asks,
    /// and a wake-up is a system call: one per file of a source tree was most of a backup's
    /// futex calls.
    waiting: bool,
}

impl<T> Clone for Promise<T> {
    fn clone(&self) -> Self {
        Promise {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Clone> Promise<T> {
    pub(crate) fn new() -> Self {
        Promise {
            inner: Arc::new((
                Mutex::new(State {
                    value: None,
                    waiting: false,
                }),
                Condvar::new(),
            )),
        }
    }

    pub(crate) fn set(&self, value: T) {
        let (lock, cvar) = &*self.inner;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        state.value = Some(value);
        let waiting = state.waiting;
        drop(state);
        if waiting {
            cvar.notify_all();
        }
    }

    /// Whether the value is there (`wait` would not block).
    pub(crate) fn is_set(&self) -> bool {
        let (lock, _) = &*self.inner;
        lock.lock()
            .unwrap_or_else(|p| p.into_inner())
            .value
            .is_some()
    }

    pub(crate) fn wait(&self) -> T {
        let (lock, cvar) = &*self.inner;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(v) = state.value.as_ref() {
                return v.clone();
            }
            state.waiting = true;
            state = cvar.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_see_the_value() {
        let p = Promise::new();
        let q = p.clone();
        let h = std::thread::spawn(move || q.wait());
        p.set(5u32);
        assert_eq!(h.join().unwrap(), 5);
        assert_eq!(p.wait(), 5);
    }

    #[test]
    fn a_waiter_asleep_before_the_value_is_set_wakes() {
        let p = Promise::new();
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let q = p.clone();
                std::thread::spawn(move || q.wait())
            })
            .collect();
        // Give the waiters time to fall asleep, so the wake-up path is the one taken.
        while !p.inner.0.lock().unwrap().waiting {
            std::thread::yield_now();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        p.set(7u32);
        for w in waiters {
            assert_eq!(w.join().unwrap(), 7);
        }
    }
}
