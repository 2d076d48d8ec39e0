//! Who may use the shared cluster when. All e2e tests share one control plane and one
//! Prometheus; most only add objects in their own namespace and run side by side, a few
//! disturb everyone (stop Prometheus or the API server, change the CRDs, install releases
//! with cluster-scoped objects and fixed names). When each file was its own test binary,
//! cargo ran the binaries one after another and those few only met the tests of their own
//! file; in one binary, a claim says it:
//!
//! - a test that uses the cluster holds a [`shared`] claim for as long as it does: its
//!   [`TestNamespace`](super::TestNamespace) holds one, so only tests that use the cluster
//!   without a namespace of their own take one by hand;
//! - a test that disturbs the cluster takes it [`exclusive`]ly, first thing: it waits for
//!   the running tests to finish, and no test starts meanwhile.
//!
//! Claims are per test thread and nest: the namespaces of a test that holds the cluster
//! exclusively, or a test's second namespace, reuse the claim it has. (`#[tokio::test]` runs
//! a test, and the tasks it spawns, on the test's own thread.)

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

use tokio::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

static CLUSTER: RwLock<()> = RwLock::const_new(());

enum Guard {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Exclusive(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

thread_local! {
    /// The guard this test's thread holds, and how many claims share it.
    static HELD: RefCell<Option<Guard>> = const { RefCell::new(None) };
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// A claim on the cluster; released when the last claim of its test is dropped. It stays on
/// the thread that took it (not `Send`).
#[must_use = "the claim is released when dropped"]
pub struct Claim(PhantomData<*const ()>);

impl Drop for Claim {
    fn drop(&mut self) {
        let depth = DEPTH.get() - 1;
        DEPTH.set(depth);
        if depth == 0 {
            HELD.take();
        }
    }
}

fn nested() -> Option<Claim> {
    (DEPTH.get() > 0).then(|| {
        DEPTH.set(DEPTH.get() + 1);
        Claim(PhantomData)
    })
}

/// Uses the cluster alongside other tests.
pub async fn shared() -> Claim {
    if let Some(c) = nested() {
        return c;
    }
    let guard = CLUSTER.read().await;
    HELD.set(Some(Guard::Shared(guard)));
    DEPTH.set(1);
    Claim(PhantomData)
}

/// Uses the cluster alone: waits until no other test uses it.
pub async fn exclusive() -> Claim {
    let held = HELD.with_borrow(|h| match h {
        Some(Guard::Exclusive(_)) => Some(true),
        Some(Guard::Shared(_)) => Some(false),
        None => None,
    });
    match held {
        Some(true) => return nested().expect("a held claim"),
        Some(false) => panic!(
            "this test already uses the cluster alongside others: take the exclusive claim first"
        ),
        None => {}
    }
    let guard = CLUSTER.write().await;
    HELD.set(Some(Guard::Exclusive(guard)));
    DEPTH.set(1);
    Claim(PhantomData)
}
