//! HTTP handlers of the connectors role: extract, call a service function, map the result.

pub(crate) mod connect;
pub(crate) mod connections;
pub(crate) mod providers;
