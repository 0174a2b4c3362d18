//! Progress on stderr: a spinner with the current state on a terminal (indicatif), one
//! plain line per state change otherwise, and one line per finished step. stdout is
//! kept for the command's result.

use std::sync::Mutex;

pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last: Mutex<String>,
    quiet: bool,
}

impl Progress {
    pub fn new(tty: bool, quiet: bool) -> Self {
        let bar = (tty && !quiet).then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(std::time::Duration::from_millis(120));
            b
        });
        Progress {
            bar,
            last: Mutex::new(String::new()),
            quiet,
        }
    }

    /// The current state of a wait; printed only when it changes.
    pub fn update(&self, msg: &str) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if *last == msg {
            return;
        }
        *last = msg.to_string();
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None if !self.quiet => eprintln!("  {msg}"),
            None => {}
        }
    }

    /// A finished step.
    pub fn done(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.println(format!("✓ {msg}")),
            None => eprintln!("✓ {msg}"),
        }
        self.last.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}
