//! Exports newer than the oldest supported Windows (`ExAllocatePool2`, `KeQueryInterruptTimePrecise`):
//! resolution with `MmGetSystemRoutineAddress`, the fallbacks where the emulated kernel lacks them,
//! and the checks of the routines behind both.
#![cfg(not(target_os = "windows"))]

mod common;

use common::{TAG, take_one};
use nt::emu::{self, Rule};
use nt::*;
use std::time::Duration;

/// Reads `len` bytes of a live block.
///
/// # Safety
/// `p` points to `len` readable bytes.
unsafe fn bytes(p: PVOID, len: usize) -> Vec<u8> {
    // SAFETY: forwarded from the caller's contract.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }.to_vec()
}

/// The interrupt time through `nt::KeQueryInterruptTimePrecise`, and the counter stamp it reports.
fn read_clock() -> (u64, u64) {
    let mut qpc = 0;
    // SAFETY: `qpc` is valid for a write.
    let t = unsafe { KeQueryInterruptTimePrecise(&mut qpc) };
    (t, qpc)
}

/// Allocates paged pool at DISPATCH_LEVEL (a broken rule) and returns the violation, which names
/// the routine that checked it: which allocator `nt::ExAllocatePool2` reached.
fn allocator_reached() -> String {
    emu::expect_violations();
    emu::at_dispatch(|| {
        // SAFETY: rejected at DISPATCH_LEVEL, returns NULL.
        assert!(unsafe { ExAllocatePool2(POOL_FLAG_PAGED, 8, TAG) }.is_null());
    });
    take_one(Rule::IrqlTooHigh).to_string()
}

#[test]
fn on_windows_10_2004_resolution_finds_both_exports_and_uses_them() {
    let _session = emu::session();
    let found = resolve_optional_exports();
    assert!(found.pool2 && found.precise_clock && found.nx_pool, "{found:?}");
    assert_eq!(found.version, (10, 0, 19041));
    let v = allocator_reached();
    assert!(v.contains("ExAllocatePool2 called at DISPATCH_LEVEL"), "{v}");
    // The emulated KeQueryInterruptTimePrecise stamps the interrupt time itself; the fallback would
    // stamp the performance counter, which runs at another frequency here.
    emu::clock::set_performance_frequency(3_579_545);
    emu::clock::pause();
    let (t, qpc) = read_clock();
    assert_eq!((t, qpc), (emu::clock::now(), emu::clock::now()));
}

#[test]
fn before_resolution_ex_allocate_pool2_is_zeroed_pool_with_tag() {
    let _session = emu::session();
    let v = allocator_reached();
    assert!(v.contains("ExAllocatePoolWithTag called at DISPATCH_LEVEL"), "{v}");
    // SAFETY: blocks used within their sizes, freed once.
    unsafe {
        // ExAllocatePoolWithTag's memory is not zeroed (the emulation fills it with 0xCD): the
        // fallback zeroes it, unless told not to.
        let zeroed = ExAllocatePool2(POOL_FLAG_NON_PAGED, 300, TAG);
        assert!(bytes(zeroed, 300).iter().all(|&b| b == 0));
        let raw = ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_UNINITIALIZED, 64, TAG);
        assert!(bytes(raw, 64).iter().all(|&b| b == emu::pool::UNINITIALIZED_FILL));
        let aligned = ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_CACHE_ALIGNED, 8, TAG);
        assert_eq!(aligned.addr() % 64, 0);
        assert!(bytes(aligned, 8).iter().all(|&b| b == 0));
        let paged = ExAllocatePool2(POOL_FLAG_PAGED, 16, TAG);
        assert!(bytes(paged, 16).iter().all(|&b| b == 0));
        assert_eq!(emu::pool::live_blocks(TAG), 4);
        for p in [zeroed, raw, aligned, paged] {
            ExFreePoolWithTag(p, TAG);
        }
    }
}

#[test]
fn a_kernel_without_the_exports_gets_the_fallbacks_after_resolution() {
    let _session = emu::session();
    // Wine 8: reports Windows 10, exports neither.
    emu::exports::hide("ExAllocatePool2");
    emu::exports::hide("KeQueryInterruptTimePrecise");
    let found = resolve_optional_exports();
    assert!(!found.pool2 && !found.precise_clock && found.nx_pool, "{found:?}");
    assert!(!found.clock_fixed_before);
    let v = allocator_reached();
    assert!(v.contains("ExAllocatePoolWithTag called at DISPATCH_LEVEL"), "{v}");
    // SAFETY: used within its size, freed once.
    unsafe {
        let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 4096 + 7, TAG);
        assert!(bytes(p, 4096 + 7).iter().all(|&b| b == 0));
        ExFreePoolWithTag(p, TAG);
    }
}

#[test]
fn on_windows_7_the_fallback_allocates_executable_nonpaged_pool() {
    let _session = emu::session();
    emu::exports::set_version(6, 1, 7601);
    let found = resolve_optional_exports();
    assert_eq!(found.version, (6, 1, 7601));
    assert!(!found.pool2 && !found.precise_clock && !found.nx_pool, "{found:?}");
    // NonPagedPoolNx would be refused (a violation, which would fail the test): the fallback asks
    // for NonPagedPool.
    // SAFETY: used within their sizes, freed once.
    unsafe {
        let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 64, TAG);
        assert!(!p.is_null());
        assert!(bytes(p, 64).iter().all(|&b| b == 0));
        let q = ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_CACHE_ALIGNED, 64, TAG);
        assert!(!q.is_null());
        ExFreePoolWithTag(p, TAG);
        ExFreePoolWithTag(q, TAG);
    }
}

#[test]
fn on_windows_8_the_fallback_allocates_no_execute_pool() {
    let _session = emu::session();
    emu::exports::set_version(6, 2, 9200);
    let found = resolve_optional_exports();
    assert!(!found.pool2 && !found.precise_clock && found.nx_pool, "{found:?}");
    // SAFETY: used within its size, freed once.
    unsafe {
        let p = ExAllocatePool2(POOL_FLAG_NON_PAGED, 64, TAG);
        assert!(!p.is_null());
        ExFreePoolWithTag(p, TAG);
    }
}

#[test]
fn the_fallback_refuses_flags_it_cannot_honour() {
    let _session = emu::session();
    emu::exports::hide("ExAllocatePool2");
    resolve_optional_exports();
    // SAFETY: refused allocations return NULL.
    unsafe {
        assert!(ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_USE_QUOTA, 8, TAG).is_null());
        assert!(ExAllocatePool2(POOL_FLAG_PAGED | POOL_FLAG_RAISE_ON_FAILURE, 8, TAG).is_null());
        assert!(ExAllocatePool2(POOL_FLAG_NON_PAGED | POOL_FLAG_PAGED, 8, TAG).is_null());
    }
    assert_eq!(emu::pool::live_blocks(TAG), 0);
}

#[test]
fn the_fallback_clock_counts_100ns_units_at_any_counter_frequency() {
    let _session = emu::session();
    emu::exports::hide("KeQueryInterruptTimePrecise");
    assert!(!resolve_optional_exports().precise_clock);
    // The ACPI PM timer's frequency: the counter must be scaled to give 100 ns units.
    emu::clock::set_performance_frequency(3_579_545);
    emu::clock::pause();
    let (t0, qpc0) = read_clock();
    emu::clock::advance(Duration::from_secs(1));
    let (t1, qpc1) = read_clock();
    assert_eq!(qpc1 - qpc0, 3_579_545, "the stamp is the performance counter");
    assert_eq!(t1 - t0, 10_000_000, "one second is 10^7 units");
    emu::clock::advance(Duration::from_micros(1));
    let (t2, _) = read_clock();
    // 10 units, give or take the counter tick (2.8 units) on either reading.
    assert!(t2 >= t1 && (7..=13).contains(&(t2 - t1)), "{t1} -> {t2}");
    // Within one counter tick (2.8 units) plus the scaling's rounding of the interrupt time.
    assert!(emu::clock::now() - t2 < 4, "{} vs {t2}", emu::clock::now());
}

#[test]
fn a_clock_read_before_resolution_stays_on_the_performance_counter() {
    let _session = emu::session();
    emu::clock::set_performance_frequency(3_579_545);
    emu::clock::pause();
    let (t0, qpc0) = read_clock();
    let found = resolve_optional_exports();
    assert!(found.pool2, "{found:?}");
    assert!(!found.precise_clock && found.clock_fixed_before, "{found:?}");
    emu::clock::advance(Duration::from_secs(2));
    let (t1, qpc1) = read_clock();
    assert_ne!(qpc1, emu::clock::now(), "still the counter, not the precise routine");
    assert_eq!(qpc1 - qpc0, 2 * 3_579_545);
    assert_eq!(t1 - t0, 20_000_000);
    // Resolving again changes nothing and says so.
    assert_eq!(resolve_optional_exports(), found);
}

#[test]
fn resolution_is_idempotent() {
    let _session = emu::session();
    let first = resolve_optional_exports();
    assert_eq!(resolve_optional_exports(), first);
    assert!(first.precise_clock);
    assert_eq!(
        first.to_string(),
        "kernel 10.0.19041; ExAllocatePool2 found, KeQueryInterruptTimePrecise found"
    );
}

#[test]
fn above_passive_level_resolution_resolves_nothing() {
    let _session = emu::session();
    let found = emu::at_dispatch(resolve_optional_exports);
    assert!(!found.pool2 && !found.precise_clock, "{found:?}");
    assert_eq!(found.version, (0, 0, 0));
    let v = allocator_reached();
    assert!(v.contains("ExAllocatePoolWithTag"), "{v}");
    // Resolving later, at PASSIVE_LEVEL, still finds them.
    assert!(resolve_optional_exports().pool2);
}

/// A UNICODE_STRING over `units` (which must outlive its use).
fn unicode(units: &mut [u16]) -> UNICODE_STRING {
    let bytes = (units.len() * 2) as USHORT;
    UNICODE_STRING {
        Length: bytes,
        MaximumLength: bytes,
        Buffer: units.as_mut_ptr(),
    }
}

#[test]
fn mm_get_system_routine_address_checks_its_caller() {
    let _session = emu::session();
    let mut name: Vec<u16> = "ExAllocatePool2".encode_utf16().collect();
    let mut unknown: Vec<u16> = "NoSuchRoutine".encode_utf16().collect();
    // SAFETY: the strings point to live buffers; the malformed ones are rejected before any read.
    unsafe {
        assert!(!MmGetSystemRoutineAddress(&mut unicode(&mut name)).is_null());
        assert!(MmGetSystemRoutineAddress(&mut unicode(&mut unknown)).is_null());
        emu::expect_violations();
        let mut odd = unicode(&mut name);
        odd.Length = 3;
        assert!(MmGetSystemRoutineAddress(&mut odd).is_null());
        take_one(Rule::InvalidParameter);
        let mut too_long = unicode(&mut name);
        too_long.Length = too_long.MaximumLength + 2;
        assert!(MmGetSystemRoutineAddress(&mut too_long).is_null());
        take_one(Rule::InvalidParameter);
        let mut string = unicode(&mut name);
        let at_dispatch = emu::at_dispatch(|| MmGetSystemRoutineAddress(&mut string));
        assert!(at_dispatch.is_null());
        let v = take_one(Rule::IrqlTooHigh);
        assert!(v.to_string().contains("MmGetSystemRoutineAddress"), "{v}");
    }
}

#[test]
fn rtl_get_version_needs_the_structure_size() {
    let _session = emu::session();
    emu::exports::set_version(6, 3, 9600);
    let mut info = RTL_OSVERSIONINFOW {
        dwOSVersionInfoSize: 0,
        dwMajorVersion: 0,
        dwMinorVersion: 0,
        dwBuildNumber: 0,
        dwPlatformId: 0,
        szCSDVersion: [0; 128],
    };
    // SAFETY: `info` is a writable RTL_OSVERSIONINFOW.
    unsafe {
        assert_eq!(RtlGetVersion(&mut info), STATUS_INVALID_PARAMETER);
        info.dwOSVersionInfoSize = size_of::<RTL_OSVERSIONINFOW>() as ULONG;
        assert_eq!(RtlGetVersion(&mut info), STATUS_SUCCESS);
    }
    assert_eq!(
        (info.dwMajorVersion, info.dwMinorVersion, info.dwBuildNumber),
        (6, 3, 9600)
    );
    assert_eq!(info.dwPlatformId, 2);
}

#[test]
fn ex_allocate_pool_with_tag_checks_pool_type_tag_and_irql() {
    let _session = emu::session();
    emu::exports::set_version(6, 1, 7601);
    emu::expect_violations();
    // SAFETY: rejected allocations return NULL; the accepted one is freed.
    unsafe {
        let v = {
            assert!(ExAllocatePoolWithTag(NonPagedPoolNx, 8, TAG).is_null());
            take_one(Rule::InvalidParameter)
        };
        assert!(v.to_string().contains("pool type 512"), "{v}");
        assert!(ExAllocatePoolWithTag(3, 8, TAG).is_null());
        take_one(Rule::InvalidParameter);
        assert!(ExAllocatePoolWithTag(NonPagedPool, 8, 0).is_null());
        take_one(Rule::InvalidParameter);
        emu::at_dispatch(|| assert!(ExAllocatePoolWithTag(PagedPool, 8, TAG).is_null()));
        take_one(Rule::IrqlTooHigh);
        let p = ExAllocatePoolWithTag(NonPagedPool, 32, TAG);
        assert!(bytes(p, 32).iter().all(|&b| b == emu::pool::UNINITIALIZED_FILL));
        ExFreePoolWithTag(p, TAG);
    }
}

#[test]
fn a_new_session_forgets_hidden_exports_and_resolutions() {
    {
        let _session = emu::session();
        emu::exports::hide("ExAllocatePool2");
        emu::exports::set_version(6, 1, 7601);
        assert!(!resolve_optional_exports().pool2);
    }
    let _session = emu::session();
    let v = allocator_reached();
    assert!(v.contains("ExAllocatePoolWithTag"), "unresolved again: {v}");
    let found = resolve_optional_exports();
    assert!(found.pool2 && found.precise_clock, "{found:?}");
    assert_eq!(found.version, (10, 0, 19041));
}
