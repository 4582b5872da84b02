//! Sessions: leak reports for every kind of resource, the failure of a session that leaks or leaves
//! violations untaken, isolation between sessions, and the default abort on a violation.
#![cfg(not(target_os = "windows"))]

mod common;

use common::{BOUND, Event, TAG};
use nt::emu;
use nt::*;

#[test]
fn leak_report_lists_every_kind_of_resource() {
    let session = emu::session();
    assert!(session.leak_report().is_empty());
    // SAFETY: every object is created here and released below.
    unsafe {
        let pool = ExAllocatePool2(POOL_FLAG_NON_PAGED, 64, TAG);
        let irp = IoAllocateIrp(2, FALSE);
        let mdl = IoAllocateMdl(pool, 64, FALSE, FALSE, core::ptr::null_mut());
        emu::tracking::track("WSK socket", 0x1000, "listening on [::]:7".to_string());
        let report = session.leak_report();
        assert_eq!(report.len(), 4, "{report}");
        assert_eq!(report.count("pool block"), 1);
        assert_eq!(report.count("IRP"), 1);
        assert_eq!(report.count("MDL"), 1);
        assert_eq!(report.count("WSK socket"), 1);
        let text = report.to_string();
        assert!(text.contains("tag 'Test' (64 bytes, nonpaged)"), "{text}");
        assert!(text.contains("listening on [::]:7"), "{text}");
        assert!(emu::tracking::untrack("WSK socket", 0x1000));
        assert!(!emu::tracking::untrack("WSK socket", 0x1000));
        IoFreeMdl(mdl);
        IoFreeIrp(irp);
        ExFreePoolWithTag(pool, TAG);
    }
    assert!(session.leak_report().is_empty());
}

unsafe extern "system" fn wait_for_release(context: PVOID) {
    // SAFETY: the context is the test's event, alive until the thread has ended.
    let release = unsafe { &*(context as *const Event) };
    release.wait(Some(BOUND));
}

#[test]
fn running_threads_and_open_handles_are_leaks() {
    let session = emu::session();
    let release = Event::new(NotificationEvent, false);
    let mut handle: HANDLE = core::ptr::null_mut();
    // SAFETY: the event outlives the thread (the test waits for the thread object below).
    let status = unsafe {
        PsCreateSystemThread(
            &mut handle,
            THREAD_ALL_ACCESS,
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            Some(wait_for_release),
            &*release as *const Event as PVOID,
        )
    };
    assert_eq!(status, STATUS_SUCCESS);
    let report = session.leak_report();
    assert_eq!(report.count("system thread"), 1, "{report}");
    assert_eq!(report.count("handle"), 1, "{report}");
    let mut object: PVOID = core::ptr::null_mut();
    // SAFETY: valid outputs; the reference is released below.
    unsafe {
        ObReferenceObjectByHandle(
            handle,
            SYNCHRONIZE,
            core::ptr::null_mut(),
            KernelMode,
            &mut object,
            core::ptr::null_mut(),
        );
    }
    release.set();
    let mut timeout = common::relative(BOUND);
    // SAFETY: we hold a reference to the thread object.
    assert_eq!(
        unsafe { KeWaitForSingleObject(object, Executive, KernelMode, FALSE, &mut timeout) },
        STATUS_SUCCESS
    );
    // SAFETY: closes the open handle once.
    unsafe { ZwClose(handle) };
    let report = session.leak_report();
    assert_eq!(report.len(), 1, "{report}");
    assert_eq!(report.count("thread object"), 1, "{report}");
    // SAFETY: releases our reference once.
    unsafe { ObfDereferenceObject(object) };
    assert!(session.leak_report().is_empty());
}

#[test]
fn a_session_that_leaks_fails_and_the_next_one_starts_clean() {
    let outcome = std::panic::catch_unwind(|| {
        let _session = emu::session();
        // SAFETY: deliberately leaked; the next session forgets it.
        unsafe { IoAllocateIrp(1, FALSE) };
    });
    let message = outcome.expect_err("a leaking session must fail");
    let text = message
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| message.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default();
    assert!(text.contains("leak at the end of the session"), "{text}");
    assert!(text.contains("IRP 0x"), "{text}");
    let session = emu::session();
    assert!(session.leak_report().is_empty());
    assert_eq!(emu::irp::live_count(), 0);
}

#[test]
fn untaken_violations_fail_the_session() {
    let outcome = std::panic::catch_unwind(|| {
        let _session = emu::session();
        emu::expect_violations();
        // SAFETY: the double free is made harmless in recording mode.
        unsafe {
            let irp = IoAllocateIrp(1, FALSE);
            IoFreeIrp(irp);
            IoFreeIrp(irp);
        }
    });
    let message = outcome.expect_err("untaken violations must fail the session");
    let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("never taken"), "{text}");
    assert!(text.contains("double free"), "{text}");
}

#[test]
fn finish_passes_a_clean_session_and_fails_on_a_leak_or_a_recorded_violation() {
    emu::session().finish();
    let leaking = std::panic::catch_unwind(|| {
        let session = emu::session();
        // SAFETY: deliberately leaked; the next session forgets it.
        unsafe { IoAllocateIrp(1, FALSE) };
        session.finish();
    });
    let message = leaking.expect_err("finish must fail on a leak");
    let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("IRP 0x"), "{text}");
    let violating = std::panic::catch_unwind(|| {
        let session = emu::session();
        emu::expect_violations();
        // SAFETY: the double free is made harmless in recording mode.
        unsafe {
            let irp = IoAllocateIrp(1, FALSE);
            IoFreeIrp(irp);
            IoFreeIrp(irp);
        }
        session.finish();
    });
    let message = violating.expect_err("finish must fail on a recorded violation");
    let text = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("kernel rules broken"), "{text}");
    assert!(text.contains("double free") || text.contains("DoubleFree"), "{text}");
}

#[test]
fn a_new_session_resets_mode_and_fault_injection() {
    {
        let _session = emu::session();
        emu::expect_violations();
        emu::pool::fail_next(100);
        emu::clock::pause();
    }
    let _session = emu::session();
    assert!(!emu::clock::is_paused());
    // SAFETY: plain allocation, freed.
    unsafe {
        let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 8, TAG);
        assert!(!p.is_null(), "fault injection must not leak into the next session");
        ExFreePoolWithTag(p, TAG);
    }
}

#[test]
fn a_nested_session_is_refused_instead_of_deadlocking() {
    let outcome = std::panic::catch_unwind(|| {
        let _outer = emu::session();
        let _inner = emu::session();
    });
    let message = outcome.expect_err("a nested session must be refused");
    let text = message
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .unwrap_or_default();
    assert!(text.contains("already holds a session"), "{text}");
    // The outer session was released while unwinding.
    drop(emu::session());
}

/// The environment variable that makes this test binary act as the aborting child.
const CHILD_ROLE: &str = "NT_EMU_DEATH_TEST_CHILD";

/// In the child: commits a double free without recording mode, which must abort the process with
/// the report on stderr. In the parent (normal runs): re-runs this very test as that child.
#[test]
#[cfg(not(miri))]
fn violation_aborts_with_a_report() {
    if std::env::var_os(CHILD_ROLE).is_some() {
        let _session = emu::session();
        // SAFETY: the second free is the violation under test; the emulation aborts before it.
        unsafe {
            let irp = IoAllocateIrp(1, FALSE);
            IoFreeIrp(irp);
            IoFreeIrp(irp);
        }
        unreachable!("the emulation must abort on a double free");
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "violation_aborts_with_a_report",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ROLE, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the child must abort; stderr:\n{stderr}");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(output.status.signal(), Some(6), "SIGABRT expected; stderr:\n{stderr}");
    }
    assert!(
        stderr.contains("*** nt emulation: rule violated: double free"),
        "{stderr}"
    );
    assert!(stderr.contains("IoFreeIrp on freed IRP"), "{stderr}");
    assert!(stderr.contains("object created at:"), "{stderr}");
    assert!(
        stderr.contains("violation_aborts_with_a_report"),
        "creation site expected:\n{stderr}"
    );
}
