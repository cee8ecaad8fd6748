//! The CLI side of the control socket.

use crate::Failure;
use crate::cli::Command;

pub fn main(_command: Command) -> Result<u8, Failure> {
    Err(Failure::runtime("the control client is not written yet"))
}
