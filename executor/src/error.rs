//! Error values. Nothing in this crate panics on a path a caller can reach: every refusal is one of
//! these.

use nt::NTSTATUS;

/// Why a spawn was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnError {
    /// Every slot of the pool holds a task (or the output of one not yet joined).
    PoolFull,
    /// The executor is shutting down or shut down.
    ShutDown,
}

/// Why a join handle resolved without an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinError {
    /// The task was aborted, or dropped by the executor's shutdown, before it completed.
    Aborted,
    /// The handle was polled again after it had already returned the output.
    AlreadyJoined,
}

/// Why an executor operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutorError {
    /// Called above PASSIVE_LEVEL where PASSIVE_LEVEL is required.
    NotPassiveLevel,
    /// Another thread is already running this executor (its system thread, or `run_until_idle`).
    Busy,
    /// The executor was shut down.
    ShutDown,
    /// `PsCreateSystemThread` or `ObReferenceObjectByHandle` failed with this status.
    Thread(NTSTATUS),
}

/// Why `block_on` refused to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockOnError {
    /// `block_on` waits on a KEVENT, which is allowed only at PASSIVE_LEVEL.
    NotPassiveLevel,
    /// Every one of the [`MAX_BLOCKED_THREADS`](crate::MAX_BLOCKED_THREADS) parking slots is in use.
    TooManyBlockedThreads,
}
