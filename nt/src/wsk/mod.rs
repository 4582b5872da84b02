//! The Winsock Kernel (WSK) ABI of `wsk.h` and `netioddk.h`, and the socket address types of
//! `ws2def.h` / `ws2ipdef.h` it uses: `#[repr(C)]` declarations identical on every target.
//!
//! On Windows the dispatch tables are filled in by netio.sys; on the host by the emulated provider.
//! A WSK client (a driver) only ever sees these structures and the four functions
//! `WskRegister`, `WskCaptureProviderNPI`, `WskReleaseProviderNPI` and `WskDeregister`.
//! Every x64 size and offset is pinned by `const` assertions in `layout.rs` and exported as
//! [`WSK_LAYOUT`].

mod addrinfo;
mod constants;
mod dispatch;
mod layout;
mod npi;
mod sockaddr;

pub use addrinfo::*;
pub use constants::*;
pub use dispatch::*;
pub use layout::WSK_LAYOUT;
pub use npi::*;
pub use sockaddr::*;
