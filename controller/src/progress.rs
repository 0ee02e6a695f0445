//! Progress on stderr: a spinner on a terminal, plain lines elsewhere.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use pyexec_runtime::capture::{LiveLog, Stream};

#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A spinner when stderr is a terminal; otherwise progress is printed as
    /// plain lines by `step`.
    pub fn new() -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.enable_steady_tick(Duration::from_millis(100));
        Progress { bar: Some(bar) }
    }

    pub fn step(&self, msg: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(msg.to_owned()),
            None => eprintln!("pyexec: {msg}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Write to stderr without tearing the spinner.
    pub fn write_stderr(&self, data: &[u8]) {
        let write = || {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(data).and_then(|_| err.flush());
        };
        match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

/// The script's log: live on stderr and, complete, in a file.
pub struct TeeLog {
    pub progress: Progress,
    pub file: Option<std::io::BufWriter<std::fs::File>>,
}

impl LiveLog for TeeLog {
    fn write(&mut self, _stream: Stream, data: &[u8]) {
        self.progress.write_stderr(data);
        if let Some(f) = &mut self.file {
            let _ = f.write_all(data).and_then(|_| f.flush());
        }
    }
}
