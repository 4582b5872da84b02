//! Host emulation of the kernel (being built).
pub mod api {}
pub mod emu {}
