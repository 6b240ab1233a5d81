//! `sync`: identity, peers, transport (iroh), automerge sync and health exchange between replicas. Nothing here yet: peer-to-peer sync is issue 3.
