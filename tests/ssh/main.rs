//! SSH tests: the probe, management sessions and password-auth removal against real throwaway
//! OpenSSH servers on loopback (never the machine's own sshd, never port 22), and the
//! listening-socket parser against real and hand-made `ss`/`netstat` outputs.

mod cases;
mod common;
mod listeners;
mod sshd;
