//! `node`: the node daemon (heartbeats, apply and rollback, drift, rollouts, commands). Nothing here yet: the daemon is issue 4.
