//! Control of test hosts over SSH, and the local cluster of network-namespace hosts.
