//! Queuing an IRP-based operation: the transport's policy for it (the in-memory transport lets a test
//! hold or fail it), arming its cancel routine, and the inline attempt. Returns what the WSK function
//! returns: the final status if the IRP already completed (its completion routine has then already
//! run), STATUS_PENDING otherwise.

use super::irp::{Done, ProviderIrp, arm};
use super::socket::{Op, Pending, SocketCore};
use super::transport::{OpKind, Policy};
use crate::types::*;
use std::sync::Arc;

impl SocketCore {
    /// Queues `op` for the IRP the provider has just taken, and makes what progress it can.
    pub(crate) fn submit(self: &Arc<Self>, irp: ProviderIrp, op: Op) -> NTSTATUS {
        let kind = op.kind();
        let policy = self.registration.policy(kind, &self.me);
        let mut out = Vec::new();
        {
            let mut st = self.lock();
            match policy {
                Policy::Fail(status) => out.push(Done::new(irp, status, 0)),
                Policy::Hold(id) => {
                    if arm(irp, self) {
                        st.held.push((id, Pending { irp, op }));
                    } else {
                        out.push(Done::new(irp, STATUS_CANCELLED, 0));
                    }
                }
                Policy::Natural => {
                    let queue = match kind {
                        OpKind::Accept => &mut st.accepts,
                        OpKind::Connect => &mut st.connects,
                        OpKind::Receive => &mut st.receives,
                        OpKind::Send | OpKind::Disconnect => &mut st.sends,
                    };
                    queue.push_back(Pending { irp, op });
                    if !arm(irp, self) {
                        st.remove(irp);
                        out.push(Done::new(irp, STATUS_CANCELLED, 0));
                    }
                    self.pump(&mut st, &mut out);
                }
            }
        }
        let status = out.iter().find(|d| d.irp == irp).map_or(STATUS_PENDING, |d| d.status);
        self.settle(out);
        status
    }

    /// The in-memory transport's test releases a held operation: back to natural progress, or
    /// completed with `status`.
    pub(crate) fn release_held(self: &Arc<Self>, id: u64, status: Option<NTSTATUS>) -> bool {
        let mut out = Vec::new();
        let found;
        {
            let mut st = self.lock();
            let index = st.held.iter().position(|(held, _)| *held == id);
            found = index.is_some();
            if let Some(index) = index {
                let (_, pending) = st.held.remove(index);
                match status {
                    Some(status) => {
                        if super::irp::claim(pending.irp) {
                            out.push(Done::new(pending.irp, status, pending.op.progress()));
                        } else {
                            st.held.push((id, pending));
                        }
                    }
                    None => {
                        match pending.op.kind() {
                            OpKind::Accept => st.accepts.push_back(pending),
                            OpKind::Connect => st.connects.push_back(pending),
                            OpKind::Receive => st.receives.push_back(pending),
                            OpKind::Send | OpKind::Disconnect => st.sends.push_back(pending),
                        }
                        if !st.closed {
                            self.pump(&mut st, &mut out);
                        }
                    }
                }
            }
        }
        self.settle(out);
        found
    }
}
