//! CASPaxos: a pure acceptor/proposer core and the register server around it.
