//! The log writer of `serve`: lines go into one in-memory buffer and a thread of its own
//! writes the buffer to stderr at most every [`GATHER`], one `write` for every line
//! gathered meanwhile. A request never waits on stderr and never wakes a thread for its
//! line: the writer thread is woken once per batch, by the first line into an empty
//! buffer. (`tracing-appender`'s worker woke per line: a futex wake and two context
//! switches per request, 11 % of the gateway's CPU at concurrency 1 — README, Benchmarks.)
//!
//! Nothing is dropped: past [`MAX_BUFFERED`] a logging thread waits until the writer has
//! taken the buffer. Dropping the [`LogWriterGuard`] writes what is left.

use parking_lot::{Condvar, Mutex};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the writer gathers lines after the first one of a batch.
pub const GATHER: Duration = Duration::from_millis(20);
/// Bytes buffered at most before logging threads wait for the writer.
pub const MAX_BUFFERED: usize = 8 << 20;

#[derive(Debug, Default)]
struct Buffer {
    bytes: Vec<u8>,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    buffer: Mutex<Buffer>,
    /// The writer waits here for a first line (or the close).
    lines: Condvar,
    /// Logging threads wait here for room.
    room: Condvar,
}

/// Where the log layer writes (cheap to clone; each `write` is one formatted line).
#[derive(Debug, Clone)]
pub struct LogWriter {
    shared: Arc<Shared>,
}

/// Writes what is buffered and stops the writer thread when dropped.
#[derive(Debug)]
pub struct LogWriterGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A writer to `out`, and the guard that flushes it.
pub fn spawn<W: Write + Send + 'static>(out: W) -> (LogWriter, LogWriterGuard) {
    let shared = Arc::new(Shared::default());
    let for_thread = shared.clone();
    let thread = std::thread::Builder::new()
        .name("xjp-log-writer".into())
        .spawn(move || write_batches(&for_thread, out))
        .expect("spawn the log writer thread");
    (LogWriter { shared: shared.clone() }, LogWriterGuard { shared, thread: Some(thread) })
}

/// The writer thread: waits for a first line, gathers for [`GATHER`], writes the batch.
fn write_batches<W: Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        {
            let mut buffer = shared.buffer.lock();
            while buffer.bytes.is_empty() && !buffer.closed {
                shared.lines.wait(&mut buffer);
            }
            if buffer.bytes.is_empty() {
                return;
            }
            let deadline = Instant::now() + GATHER;
            while !buffer.closed && buffer.bytes.len() < MAX_BUFFERED / 2 {
                if shared.lines.wait_until(&mut buffer, deadline).timed_out() {
                    break;
                }
            }
            std::mem::swap(&mut buffer.bytes, &mut batch);
            shared.room.notify_all();
        }
        // A failed write (stderr closed) has nowhere to be reported; the lines are gone.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if batch.capacity() > MAX_BUFFERED {
            batch.shrink_to(MAX_BUFFERED / 8);
        }
    }
}

impl Write for LogWriter {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let mut buffer = self.shared.buffer.lock();
        while buffer.bytes.len() >= MAX_BUFFERED && !buffer.closed {
            self.shared.room.wait(&mut buffer);
        }
        let first = buffer.bytes.is_empty();
        buffer.bytes.extend_from_slice(line);
        // The writer sleeps only on an empty buffer (or gathers and needs no wake), and a
        // nearly full one ends its gathering early.
        if first || buffer.bytes.len() >= MAX_BUFFERED / 2 {
            self.shared.lines.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        self.clone()
    }
}

impl Drop for LogWriterGuard {
    fn drop(&mut self) {
        self.shared.buffer.lock().closed = true;
        self.shared.lines.notify_one();
        self.shared.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` into shared memory that counts its calls.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let mut s = self.0.lock();
            s.0.extend_from_slice(b);
            s.1 += 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_arrive_whole_in_order_in_few_writes_and_the_guard_flushes() {
        let sink = Sink::default();
        let (writer, guard) = spawn(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        w.write_all(format!("thread {t} line {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        drop(guard);
        let (bytes, writes) = sink.0.lock().clone();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.lines().count(), 4000, "every line, none torn");
        for t in 0..4 {
            let mine: Vec<&str> = text.lines().filter(|l| l.starts_with(&format!("thread {t} "))).collect();
            let expected: Vec<String> = (0..1000).map(|i| format!("thread {t} line {i}")).collect();
            assert_eq!(mine, expected, "thread {t}'s lines in order");
        }
        assert!(writes < 100, "{writes} writes for 4000 lines: the lines were not batched");
    }

    #[test]
    fn a_single_line_is_written_within_the_gather_time() {
        let sink = Sink::default();
        let (mut writer, _guard) = spawn(sink.clone());
        writer.write_all(b"one\n").unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while sink.0.lock().0.is_empty() {
            assert!(Instant::now() < deadline, "a lone line was never written");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(sink.0.lock().0, b"one\n");
    }

    #[test]
    fn a_stalled_output_makes_loggers_wait_rather_than_drop() {
        // An output that blocks until released: the buffer fills to its bound, then the
        // next line waits; once released, everything arrives.
        #[derive(Clone)]
        struct Gate(Arc<(Mutex<bool>, Condvar)>, Sink);
        impl Write for Gate {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                let mut open = (self.0).0.lock();
                while !*open {
                    (self.0).1.wait(&mut open);
                }
                self.1.write(b)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let gate = Gate(Arc::new((Mutex::new(false), Condvar::new())), sink.clone());
        let (writer, guard) = spawn(gate.clone());
        let line = vec![b'x'; 1 << 16];
        let total = 3 * MAX_BUFFERED / line.len();
        let logger = {
            let (mut w, line) = (writer.clone(), line.clone());
            std::thread::spawn(move || (0..total).for_each(|_| w.write_all(&line).unwrap()))
        };
        std::thread::sleep(Duration::from_millis(300));
        assert!(!logger.is_finished(), "the logger should wait for room, not drop lines");
        *(gate.0).0.lock() = true;
        (gate.0).1.notify_all();
        logger.join().unwrap();
        drop(guard);
        assert_eq!(sink.0.lock().0.len(), total * line.len());
    }
}
