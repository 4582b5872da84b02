//! Link arguments for the kernel-mode PE. Only when building for Windows: the host build (the
//! program and the tests running on the emulation) is an ordinary Linux library and executable.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    // A WDM driver: native subsystem, entered at DriverEntry, no C runtime (ntoskrnl.exe exports the
    // few CRT functions core needs; see nt/src/windows/crt.rs), and /RELEASE to set the PE checksum,
    // which the kernel's loader verifies for drivers. /CETCOMPAT marks the image compatible with
    // kernel shadow stacks (Kernel-mode Hardware-enforced Stack Protection loads only drivers so
    // marked). Nothing here rewrites return addresses: no setjmp/longjmp, no stack switching, and
    // the only inline assembly reads and writes CR8.
    for arg in [
        "/DRIVER",
        "/SUBSYSTEM:NATIVE",
        "/ENTRY:DriverEntry",
        "/NODEFAULTLIB",
        "/RELEASE",
        "/CETCOMPAT",
    ] {
        println!("cargo:rustc-cdylib-link-arg={arg}");
    }
}
