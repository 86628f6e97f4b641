//! ERP data feeds (R-FEED): reading the customers XML (`xml`) and mapping its items to
//! incoming contacts (`map`).

pub mod map;
pub mod xml;
