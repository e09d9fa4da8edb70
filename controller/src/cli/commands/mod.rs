//! One module per subcommand.

pub mod backup;
pub mod init;
pub mod ls;
pub mod restore;
pub mod runs;
pub mod verify;
