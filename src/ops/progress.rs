//! Progress for long CLI work: a bar on a terminal (indicatif), plain lines otherwise, so that
//! logs of scripted runs stay readable.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    /// `None`: not known ahead (the rows of a file read as it is applied).
    total: Option<u64>,
    unit: &'static str,
    done: u64,
    last_line: Instant,
}

impl Progress {
    pub fn new(label: &str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            if let Ok(style) =
                ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta} left)")
            {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_owned());
            bar
        });
        Progress {
            bar,
            label: label.to_owned(),
            total: Some(total),
            unit: "",
            done: 0,
            last_line: Instant::now(),
        }
    }

    /// Progress whose end is not known ahead: a count of `unit` and a rate.
    pub fn unbounded(label: &str, unit: &'static str) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{msg} {pos} ({per_sec})") {
                bar.set_style(style);
            }
            bar.set_message(format!("{label}: {unit}"));
            bar
        });
        Progress {
            bar,
            label: label.to_owned(),
            total: None,
            unit,
            done: 0,
            last_line: Instant::now(),
        }
    }

    /// `done/total`, or `done unit` when the total is not known.
    fn count(&self) -> String {
        match self.total {
            Some(total) => format!("{}/{total}", self.done),
            None => format!("{} {}", self.done, self.unit),
        }
    }

    pub fn inc(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            // At most one line every 5 seconds, and one at the end.
            None if self.last_line.elapsed() >= Duration::from_secs(5) => {
                self.last_line = Instant::now();
                eprintln!("{}: {}", self.label, self.count());
            }
            None => {}
        }
    }

    pub fn finish(self) {
        match self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("{}: {} done", self.label, self.count()),
        }
    }
}
