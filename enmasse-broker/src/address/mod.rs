//! Addresses and the engines behind them.

pub mod fanout;
pub mod policy;
pub mod queue;
pub mod table;
