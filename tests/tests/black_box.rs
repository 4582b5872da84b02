//! The black-box client cases of `e2e_tests::cases` against the echo driver on the host emulation:
//! the same client code that `samples/echo-driver/wine/run-tier.sh` runs against the real `.sys`
//! under Wine. Each case gets a freshly loaded driver on a free port, and the emulation's leak
//! report and kernel rules are checked after it.

use e2e_tests::EchoServer;
use e2e_tests::cases::{CASES, case};
use std::net::{Ipv4Addr, SocketAddr};

fn run(name: &str) {
    let c = case(name).expect("a case of that name");
    let mut server = EchoServer::start(EchoServer::config());
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, server.port()));
    let mut unload = || {
        server.unload();
        Ok(())
    };
    if let Err(why) = (c.run)(addr, &mut unload) {
        panic!("case {name} ({}): {why}", c.what);
    }
    server.finish();
    let counters = echo_driver::counters();
    assert_eq!(counters.active, 0, "after unload: {counters}");
}

#[test]
fn echo_1mib_abortive() {
    run("echo-1mib-abortive");
}

#[test]
fn echo_1mib_graceful() {
    run("echo-1mib-graceful");
}

#[test]
fn concurrent_20x1mib_abortive() {
    run("concurrent-20x1mib-abortive");
}

#[test]
fn concurrent_20x1mib_graceful() {
    run("concurrent-20x1mib-graceful");
}

#[test]
fn fairness() {
    run("fairness");
}

#[test]
fn unload_with_clients() {
    run("unload-with-clients");
}

/// Every case that is not pending has its test above (a pending one, which fails on every backend
/// until the change it names lands, gets its test with that change).
#[test]
fn every_case_has_a_test_here() {
    let source = include_str!("black_box.rs");
    for c in CASES.iter().filter(|c| c.pending.is_none()) {
        assert!(
            source.contains(&format!("run(\"{}\")", c.name)),
            "case {} has no test",
            c.name
        );
    }
}
