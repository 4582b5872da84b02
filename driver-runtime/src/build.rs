//! The build-script half: the link arguments of a kernel-mode PE.

use std::println;

/// The linker arguments of a WDM driver image, applied by [`link_driver`]:
///
/// * `/DRIVER`, `/SUBSYSTEM:NATIVE`: a kernel-mode image;
/// * `/ENTRY:DriverEntry`: the I/O manager calls `DriverEntry` directly (no CRT start-up);
/// * `/NODEFAULTLIB`: no C runtime; ntoskrnl.exe exports the few CRT functions `core` needs (the
///   `nt` crate imports them);
/// * `/RELEASE`: sets the PE checksum, which the kernel's loader verifies for drivers;
/// * `/CETCOMPAT`: marks the image compatible with kernel shadow stacks (Kernel-mode
///   Hardware-enforced Stack Protection loads only drivers so marked). Nothing in this runtime
///   rewrites return addresses; a driver that does (setjmp/longjmp, stack switching) must not use it.
///   x64 only: CET is an x86 feature, MSVC's linker documents the option for x86 and x64, and
///   [`link_args`] leaves it out for ARM64 (lld-link would otherwise write the x64 flag into an
///   ARM64 image).
pub const LINK_ARGS: [&str; 6] = [
    "/DRIVER",
    "/SUBSYSTEM:NATIVE",
    "/ENTRY:DriverEntry",
    "/NODEFAULTLIB",
    "/RELEASE",
    "/CETCOMPAT",
];

/// The link arguments for a target architecture (`CARGO_CFG_TARGET_ARCH`): all of [`LINK_ARGS`] on
/// `x86_64`; on any other architecture (`aarch64`) the same without `/CETCOMPAT`, which is x64-only.
pub fn link_args(target_arch: &str) -> &'static [&'static str] {
    if target_arch == "x86_64" {
        &LINK_ARGS
    } else {
        &LINK_ARGS[..LINK_ARGS.len() - 1]
    }
}

// `link_args` leaves out the last of LINK_ARGS: it must stay /CETCOMPAT.
const _: () = assert!(matches!(LINK_ARGS[LINK_ARGS.len() - 1].as_bytes(), b"/CETCOMPAT"));

/// Call from the driver's build script. When the package is built for Windows, passes
/// [`link_args`] for the target architecture (all of [`LINK_ARGS`] on x64) to the linker of the
/// package's `cdylib` (the `.sys`, which Cargo names `.dll`);
/// for any other target it does nothing, so the same crate stays an ordinary library on the host.
///
/// These are `cargo:rustc-cdylib-link-arg` lines printed by the driver's own build script: Cargo
/// applies link arguments only to the targets of the package whose build script printed them, never
/// to a package that depends on it, so this crate cannot set them from a build script of its own.
pub fn link_driver() {
    println!("cargo:rerun-if-changed=build.rs");
    // The target being built, not the host this build script runs on.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    for arg in link_args(&arch) {
        println!("cargo:rustc-cdylib-link-arg={arg}");
    }
}
