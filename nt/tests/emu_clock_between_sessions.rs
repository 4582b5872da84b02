//! Negative test of the clock controls' session check, alone in its binary so that no other test's
//! session can be current while it runs.
#![cfg(not(target_os = "windows"))]

use std::time::Duration;

/// A harness's `Drop` that resumed the clock after its session had ended could land in the next
/// test's session and undo the pause that test had just made: every clock control now refuses to
/// run while no session is current.
#[test]
fn clock_controls_between_sessions_panic() {
    drop(nt::emu::session());
    let controls: [(&str, fn()); 3] = [
        ("emu::clock::resume", nt::emu::clock::resume),
        ("emu::clock::pause", nt::emu::clock::pause),
        ("emu::clock::advance", || {
            nt::emu::clock::advance(Duration::from_millis(1))
        }),
    ];
    for (name, control) in controls {
        let panic = std::panic::catch_unwind(control).expect_err(name);
        let message = panic.downcast_ref::<String>().map(String::as_str).unwrap_or_default();
        assert!(
            message.starts_with(name) && message.contains("no emu::session() is current"),
            "{name}: {message}"
        );
    }
    // Inside a session they work.
    let _session = nt::emu::session();
    nt::emu::clock::pause();
    nt::emu::clock::advance(Duration::from_millis(1));
    nt::emu::clock::resume();
}
