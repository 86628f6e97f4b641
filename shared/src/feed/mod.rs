//! ERP data feeds (R-FEED): fetching safely (`fetch`), reading the customers XML (`xml`) and
//! mapping its items to incoming contacts (`map`), the feed and its runs
//! (`model`), when a feed is due (`schedule`), and one run (`sync`).

pub mod fetch;
pub mod map;
pub mod model;
pub mod schedule;
pub mod sync;
pub mod xml;
