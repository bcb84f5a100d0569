//! Work done once per key in the process, however many ask for it at the same time.
//!
//! A box with many cameras starts a `zsqcalibrate` per stream, all on the same model
//! with the same settings. The cache's file lock already keeps two of them from
//! storing the same entry twice, but only where there is a cache, and a second
//! calibration in the same process would still compete for the cores if the lock were
//! not there. [`InFlight::run`] makes the first caller of a key the leader, which does
//! the work; callers of the same key that arrive while it works wait for its result
//! instead of doing the work again.
//!
//! Waiting never hangs: a waiter gives up when its own cancel flag is raised (polled
//! like the cache's lock, every 50 ms); a leader that is cancelled or panics abandons
//! the flight, and a waiter then tries again itself (one of them leads the next
//! flight); a leader that fails hands its error to the waiters (the same work with the
//! same inputs would fail the same way).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use super::ZsqError;

/// How often a waiter looks at its cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(50);

/// The flights under way, by key.
pub struct InFlight<T> {
    flights: Mutex<HashMap<String, Arc<Flight<T>>>>,
}

/// What a caller of [`InFlight::run`] got, and whether it did the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined<T> {
    /// This caller led: its `make` made the value.
    Led(T),
    /// Another caller made the value while this one waited.
    Followed(T),
}

impl<T> Joined<T> {
    pub fn value(self) -> T {
        match self {
            Joined::Led(v) | Joined::Followed(v) => v,
        }
    }

    /// Whether the value came from another caller's work.
    pub fn followed(&self) -> bool {
        matches!(self, Joined::Followed(_))
    }
}

/// One piece of work under way, and how it ended.
struct Flight<T> {
    landing: Mutex<Option<Landing<T>>>,
    landed: Condvar,
}

enum Landing<T> {
    Done(Result<T, Arc<ZsqError>>),
    /// The leader was cancelled or panicked: nobody has the value, a waiter tries again.
    Abandoned,
}

impl<T> Default for InFlight<T> {
    fn default() -> Self {
        InFlight {
            flights: Mutex::new(HashMap::new()),
        }
    }
}

impl<T: Clone> InFlight<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of `key`: made by `make` if no other caller is making it, else that
    /// caller's once it is done (`on_wait` is called once, as this caller starts to
    /// wait: to tell a user why nothing seems to happen). While waiting, raising `cancel` gives up with
    /// [`ZsqError::Cancelled`] (within 50 ms). A leader's error comes back to the waiters
    /// as [`ZsqError::Shared`]; its [`ZsqError::Cancelled`] (or a panic) makes a waiter
    /// try again.
    pub fn run(
        &self,
        key: &str,
        cancel: Option<&AtomicBool>,
        on_wait: impl FnOnce(),
        make: impl FnOnce() -> Result<T, ZsqError>,
    ) -> Result<Joined<T>, ZsqError> {
        let mut on_wait = Some(on_wait);
        loop {
            let (flight, leads) = {
                let mut flights = lock(&self.flights);
                match flights.get(key) {
                    Some(flight) => (flight.clone(), false),
                    None => {
                        let flight = Arc::new(Flight {
                            landing: Mutex::new(None),
                            landed: Condvar::new(),
                        });
                        flights.insert(key.to_string(), flight.clone());
                        (flight, true)
                    }
                }
            };
            if leads {
                return self.lead(key, flight, make).map(Joined::Led);
            }
            if let Some(on_wait) = on_wait.take() {
                on_wait();
            }
            match flight.wait(cancel)? {
                Landing::Done(Ok(value)) => return Ok(Joined::Followed(value)),
                Landing::Done(Err(e)) => return Err(ZsqError::Shared(e)),
                Landing::Abandoned => continue,
            }
        }
    }

    /// Runs `make` as the leader of `flight` and lands it, also when `make` panics.
    fn lead(
        &self,
        key: &str,
        flight: Arc<Flight<T>>,
        make: impl FnOnce() -> Result<T, ZsqError>,
    ) -> Result<T, ZsqError> {
        let mut leader = Leader {
            flights: self,
            key,
            flight,
            landing: Some(Landing::Abandoned),
        };
        let result = make();
        leader.landing = Some(match &result {
            Ok(value) => Landing::Done(Ok(value.clone())),
            Err(ZsqError::Cancelled) => Landing::Abandoned,
            Err(e) => Landing::Done(Err(Arc::new(clone_error(e)))),
        });
        result
    }
}

impl<T: Clone> Flight<T> {
    /// Waits for the landing (a copy of it), or for `cancel`.
    fn wait(&self, cancel: Option<&AtomicBool>) -> Result<Landing<T>, ZsqError> {
        let mut landing = lock(&self.landing);
        loop {
            if let Some(l) = landing.as_ref() {
                return Ok(match l {
                    Landing::Done(Ok(v)) => Landing::Done(Ok(v.clone())),
                    Landing::Done(Err(e)) => Landing::Done(Err(e.clone())),
                    Landing::Abandoned => Landing::Abandoned,
                });
            }
            match cancel {
                Some(c) if c.load(Ordering::Relaxed) => return Err(ZsqError::Cancelled),
                Some(_) => {
                    landing = self
                        .landed
                        .wait_timeout(landing, CANCEL_POLL)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                None => {
                    landing = self
                        .landed
                        .wait(landing)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
        }
    }
}

/// The leader's side of a flight: when dropped (after `make`, or while a panic
/// unwinds) it lands the flight, wakes the waiters and takes the key off the list, so
/// the next caller of the key starts afresh.
struct Leader<'a, T> {
    flights: &'a InFlight<T>,
    key: &'a str,
    flight: Arc<Flight<T>>,
    landing: Option<Landing<T>>,
}

impl<T> Drop for Leader<'_, T> {
    fn drop(&mut self) {
        {
            let mut flights = lock(&self.flights.flights);
            if flights
                .get(self.key)
                .is_some_and(|f| Arc::ptr_eq(f, &self.flight))
            {
                flights.remove(self.key);
            }
        }
        *lock(&self.flight.landing) = self.landing.take();
        self.flight.landed.notify_all();
    }
}

/// A leader's error for its waiters: the same variant where it carries no I/O source,
/// else its words.
fn clone_error(e: &ZsqError) -> ZsqError {
    match e {
        ZsqError::NoBatchNorm => ZsqError::NoBatchNorm,
        ZsqError::Model(why) => ZsqError::Model(why.clone()),
        ZsqError::Options(why) => ZsqError::Options(why.clone()),
        ZsqError::Images(why) => ZsqError::Images(why.clone()),
        ZsqError::Cache(why) => ZsqError::Cache(why.clone()),
        ZsqError::Runtime(e) => ZsqError::Runtime(e.clone()),
        other => ZsqError::Model(other.to_string()),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::Barrier;
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// Runs `key` on a thread once `flights` has a leader for it, so the thread waits.
    fn follower<'s>(
        scope: &'s std::thread::Scope<'s, '_>,
        flights: &'s InFlight<u32>,
        cancel: &'s AtomicBool,
        made: &'s AtomicUsize,
        waited: &'s AtomicBool,
    ) -> std::thread::ScopedJoinHandle<'s, Result<Joined<u32>, ZsqError>> {
        scope.spawn(move || {
            flights.run(
                "k",
                Some(cancel),
                || waited.store(true, Ordering::SeqCst),
                || {
                    made.fetch_add(1, Ordering::SeqCst);
                    Ok(2)
                },
            )
        })
    }

    /// Leads `key` on this thread: `release` lets `make` finish with `result`, after the
    /// follower has joined (it is a waiter once the flight has two owners).
    fn lead_until_joined(
        flights: &InFlight<u32>,
        result: Result<u32, ZsqError>,
        joined: &Barrier,
    ) -> Result<Joined<u32>, ZsqError> {
        flights.run(
            "k",
            None,
            || {},
            || {
                joined.wait();
                while Arc::strong_count(lock(&flights.flights).get("k").unwrap()) < 3 {
                    std::thread::sleep(Duration::from_millis(5));
                }
                result
            },
        )
    }

    #[test]
    fn a_caller_arriving_while_the_leader_works_gets_its_value_and_makes_nothing() {
        let flights = InFlight::new();
        let (cancel, made) = (AtomicBool::new(false), AtomicUsize::new(0));
        let waited = AtomicBool::new(false);
        let joined = Barrier::new(2);
        std::thread::scope(|scope| {
            let leader = scope.spawn(|| lead_until_joined(&flights, Ok(1), &joined));
            joined.wait();
            let follower = follower(scope, &flights, &cancel, &made, &waited);
            assert_eq!(leader.join().unwrap().unwrap(), Joined::Led(1));
            assert_eq!(follower.join().unwrap().unwrap(), Joined::Followed(1));
        });
        assert_eq!(made.load(Ordering::SeqCst), 0);
        assert!(
            waited.load(Ordering::SeqCst),
            "the follower was told it waits"
        );
        // Landed flights are gone: the next caller leads.
        assert_eq!(
            flights.run("k", None, || {}, || Ok(3)).unwrap(),
            Joined::Led(3)
        );
    }

    #[test]
    fn a_leaders_error_reaches_the_waiters() {
        let flights = InFlight::new();
        let (cancel, made) = (AtomicBool::new(false), AtomicUsize::new(0));
        let waited = AtomicBool::new(false);
        let joined = Barrier::new(2);
        std::thread::scope(|scope| {
            let leader =
                scope.spawn(|| lead_until_joined(&flights, Err(ZsqError::NoBatchNorm), &joined));
            joined.wait();
            let follower = follower(scope, &flights, &cancel, &made, &waited);
            assert!(matches!(leader.join().unwrap(), Err(ZsqError::NoBatchNorm)));
            let e = follower.join().unwrap().unwrap_err();
            assert!(
                matches!(&e, ZsqError::Shared(inner) if matches!(**inner, ZsqError::NoBatchNorm)),
                "{e:?}"
            );
            assert!(e.to_string().contains("BatchNormalization"), "{e}");
        });
        assert_eq!(made.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_waiter_tries_again_when_the_leader_is_cancelled_or_panics() {
        for cancelled in [true, false] {
            let flights = InFlight::new();
            let (cancel, made) = (AtomicBool::new(false), AtomicUsize::new(0));
            let waited = AtomicBool::new(false);
            let joined = Barrier::new(2);
            std::thread::scope(|scope| {
                let leader = scope.spawn(|| {
                    if cancelled {
                        lead_until_joined(&flights, Err(ZsqError::Cancelled), &joined)
                    } else {
                        flights.run(
                            "k",
                            None,
                            || {},
                            || {
                                joined.wait();
                                while Arc::strong_count(lock(&flights.flights).get("k").unwrap())
                                    < 3
                                {
                                    std::thread::sleep(Duration::from_millis(5));
                                }
                                panic!("the leader panics")
                            },
                        )
                    }
                });
                joined.wait();
                let follower = follower(scope, &flights, &cancel, &made, &waited);
                let led = leader.join();
                assert_eq!(led.is_err(), !cancelled, "a panic propagates to the leader");
                assert_eq!(follower.join().unwrap().unwrap(), Joined::Led(2));
            });
            assert_eq!(made.load(Ordering::SeqCst), 1, "the waiter made it");
        }
    }

    #[test]
    fn a_cancelled_waiter_gives_up_while_the_leader_goes_on() {
        let flights = InFlight::new();
        let (cancel, made) = (AtomicBool::new(false), AtomicUsize::new(0));
        let waited = AtomicBool::new(false);
        let joined = Barrier::new(2);
        let release = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let leader = scope.spawn(|| {
                flights.run(
                    "k",
                    None,
                    || {},
                    || {
                        joined.wait();
                        while !release.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Ok(1)
                    },
                )
            });
            joined.wait();
            let follower = follower(scope, &flights, &cancel, &made, &waited);
            while Arc::strong_count(lock(&flights.flights).get("k").unwrap()) < 3 {
                std::thread::sleep(Duration::from_millis(5));
            }
            cancel.store(true, Ordering::SeqCst);
            assert!(matches!(follower.join().unwrap(), Err(ZsqError::Cancelled)));
            release.store(true, Ordering::SeqCst);
            assert_eq!(leader.join().unwrap().unwrap(), Joined::Led(1));
        });
        assert_eq!(made.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn different_keys_do_not_wait_for_each_other() {
        let flights = InFlight::new();
        let inner = flights.run(
            "a",
            None,
            || {},
            || flights.run("b", None, || {}, || Ok(2)).map(Joined::value),
        );
        assert_eq!(inner.unwrap(), Joined::Led(2));
    }
}
