//! SFTP: the SSH layer (sunset driven sans-I/O by our reactor, host key,
//! authorized keys). The SFTP v3 engine modules (proto, engine, handles,
//! attrs, ...) are declared by the engine's own branch; merge both lists here.

pub mod authkeys;
pub mod hostkey;
pub mod ssh;
