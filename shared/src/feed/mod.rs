//! ERP data feeds (R-FEED): fetching safely (`fetch`), reading the customers XML (`xml`) and
//! mapping its items to incoming contacts (`map`).

pub mod fetch;
pub mod map;
pub mod xml;
