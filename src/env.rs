//! The one seam between commands and the world: the connection, the output stream, the
//! clock and the colour decision. Tests build an `Env` with a buffer and a fixed clock.

use crate::connect::Connection;
use crate::render::Style;
use std::io::Write;

pub struct Env {
    pub conn: Connection,
    pub out: Box<dyn Write + Send>,
    pub now: fn() -> jiff::Timestamp,
    pub style: Style,
    /// Whether stdout is a terminal (redraw in place for `--watch`).
    pub tty: bool,
    /// Whether stderr is a terminal (progress bars).
    pub tty_err: bool,
}

impl Env {
    pub fn print(&mut self, text: &str) -> std::io::Result<()> {
        self.out.write_all(text.as_bytes())?;
        self.out.flush()
    }
}
