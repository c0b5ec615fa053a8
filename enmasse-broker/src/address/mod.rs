//! Addresses and the engines behind them.

pub mod queue;
