//! One module per subcommand.

pub mod archive;
pub mod backup;
pub mod controller;
pub mod copy;
pub mod crd;
pub mod destroy;
pub mod init;
pub mod inventory;
pub mod job;
pub mod locks;
pub mod ls;
pub mod purge;
pub mod restore;
pub mod runs;
pub mod storage;
pub mod verify;
