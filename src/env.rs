//! The one seam between commands and the world: the connection, where output goes, the
//! clock, this host and process (for Lease holders and Event sources), and the colour and
//! terminal decisions. `main` builds it from the process (`Io::process`); tests build it
//! with a captured buffer and a fixed clock (`Io` fields), so every verb runs in-process.

use crate::connect::Connection;
use crate::observe::ReadHints;
use crate::render::Style;
use std::io::Write;
use std::path::PathBuf;

/// The wall clock (history entries, Events, Lease times, "ago" columns).
pub type Clock = fn() -> jiff::Timestamp;

/// What a command writes to and reads the time from, apart from the cluster.
pub struct Io {
    pub out: Box<dyn Write + Send>,
    pub now: Clock,
    /// This machine's name (a Lease holder is `user@host/pid`).
    pub host: String,
    pub pid: u32,
    /// Whether stdout is a terminal (redraw in place for `--watch`, colour).
    pub tty: bool,
    /// Whether stderr is a terminal (progress bars).
    pub tty_err: bool,
    /// `NO_COLOR` is set (and not empty).
    pub no_color: bool,
    /// kubectl's cache directory, where reads keep their hints (None: no hints).
    pub cache_dir: Option<PathBuf>,
}

impl Io {
    /// The real process: stdout, the system clock, the hostname, the terminal.
    pub fn process() -> Io {
        use std::io::IsTerminal;
        Io {
            out: Box::new(std::io::stdout()),
            now: jiff::Timestamp::now,
            host: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into()),
            pid: std::process::id(),
            tty: std::io::stdout().is_terminal(),
            tty_err: std::io::stderr().is_terminal(),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            cache_dir: crate::observe::kubectl_cache_dir(),
        }
    }
}

pub struct Env {
    pub conn: Connection,
    pub out: Box<dyn Write + Send>,
    pub now: Clock,
    pub host: String,
    pub pid: u32,
    pub style: Style,
    pub tty: bool,
    pub tty_err: bool,
    /// This server's read hints (observe/hints.rs).
    pub hints: Option<ReadHints>,
}

impl Env {
    pub fn new(conn: Connection, io: Io, machine_output: bool) -> Env {
        Env {
            hints: io
                .cache_dir
                .as_deref()
                .map(|dir| ReadHints::under(dir, &conn.server)),
            conn,
            style: Style {
                color: io.tty && !machine_output && !io.no_color,
            },
            out: io.out,
            now: io.now,
            host: io.host,
            pid: io.pid,
            tty: io.tty,
            tty_err: io.tty_err,
        }
    }

    pub fn print(&mut self, text: &str) -> std::io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }

    /// Now, to the second, as history entries and messages show it.
    pub fn timestamp(&self) -> String {
        let now = (self.now)();
        now.round(jiff::Unit::Second).unwrap_or(now).to_string()
    }
}
