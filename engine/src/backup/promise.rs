//! A write-once value many threads can wait for.

use std::sync::{Arc, Condvar, Mutex};

/// Set once by a worker, read by any number of waiters.
#[derive(Debug)]
pub struct Promise<T> {
    inner: Arc<(Mutex<Option<T>>, Condvar)>,
}

impl<T> Clone for Promise<T> {
    fn clone(&self) -> Self {
        Promise {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Clone> Promise<T> {
    pub fn new() -> Self {
        Promise {
            inner: Arc::new((Mutex::new(None), Condvar::new())),
        }
    }

    pub fn set(&self, value: T) {
        let (lock, cvar) = &*self.inner;
        let mut slot = lock.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(value);
        cvar.notify_all();
    }

    pub fn wait(&self) -> T {
        let (lock, cvar) = &*self.inner;
        let mut slot = lock.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(v) = slot.as_ref() {
                return v.clone();
            }
            slot = cvar.wait(slot).unwrap_or_else(|p| p.into_inner());
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
}
