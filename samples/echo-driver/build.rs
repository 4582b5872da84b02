//! Link arguments for the kernel-mode PE. Only when building for Windows: the host build (the
//! program and the tests running on the emulation) is an ordinary Linux library and executable.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    // A WDM driver: native subsystem, entered at DriverEntry, no C runtime (ntoskrnl.exe exports the
    // few CRT functions core needs; see nt/src/windows/crt.rs), and /RELEASE to set the PE checksum,
    // which the kernel's loader verifies for drivers.
    for arg in [
        "/DRIVER",
        "/SUBSYSTEM:NATIVE",
        "/ENTRY:DriverEntry",
        "/NODEFAULTLIB",
        "/RELEASE",
    ] {
        println!("cargo:rustc-cdylib-link-arg={arg}");
    }
}
