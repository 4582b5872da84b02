//! Link arguments for the kernel-mode PE when building for Windows (see
//! `wdm_driver_runtime::link_driver`); nothing for the host build, an ordinary Linux library and
//! executable.

fn main() {
    wdm_driver_runtime::link_driver();
}
