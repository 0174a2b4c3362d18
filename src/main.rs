//! kubectl-bluegreen: the plugin binary. The read and write sides are built on top of the
//! simulated cluster in `sim/`; until they land this binary only reports its version.

fn main() {
    println!("kubectl-bluegreen {}", env!("CARGO_PKG_VERSION"));
}
