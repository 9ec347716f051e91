//! Standard output as Unix tools treat it: when the reader goes away (`dropletguard audit |
//! head`), the rest of the output is dropped quietly and the run ends with the exit status it
//! would have had. Any other write error (a full disk behind a redirect) is an error.

use std::fmt;
use std::io::{self, BufWriter, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write met a closed pipe: nothing more is written.
static CLOSED: AtomicBool = AtomicBool::new(false);

/// Runs `write` against a buffered, locked stdout and flushes it. A closed pipe (`EPIPE`)
/// is not an error: it stops all further output.
pub fn write_out(write: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> io::Result<()> {
    if CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let result = write(&mut out).and_then(|()| out.flush());
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            CLOSED.store(true, Ordering::Relaxed);
            // What is left in the buffer goes nowhere; dropping it must not try again.
            let _ = out.into_parts();
            Ok(())
        }
        other => other,
    }
}

/// One line on stdout (see [`write_out`]).
pub fn line(args: fmt::Arguments<'_>) -> io::Result<()> {
    write_out(|w| {
        w.write_fmt(args)?;
        w.write_all(b"\n")
    })
}

/// `value` as pretty JSON and a newline, written as it is encoded.
pub fn json<T: serde::Serialize>(value: &T) -> io::Result<()> {
    write_out(|w| {
        serde_json::to_writer_pretty(&mut *w, value)?;
        w.write_all(b"\n")
    })
}

/// `println!` that ends quietly on a closed pipe; evaluates to `std::io::Result<()>`.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
