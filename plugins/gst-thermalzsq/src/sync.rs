//! Locking that survives a panic elsewhere.
//!
//! A panic while a Mutex is held poisons it; with `lock().unwrap()` every later
//! property read, state change and buffer would panic too, turning one bug into a
//! pipeline that can no longer even be stopped. The elements' Settings and State are
//! plain data that stay consistent between statements, so taking the guard back is
//! safe; the panic itself is reported where it happened (a worker's join, a
//! `catch_unwind`, GStreamer's own panic-to-error on the streaming thread).

use std::sync::{Mutex, MutexGuard};

/// The guard of `mutex`, recovered if an earlier holder panicked.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_mutex_still_gives_its_value() {
        let m = std::sync::Arc::new(Mutex::new(5));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 6);
    }
}
