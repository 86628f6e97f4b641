//! ERP data feeds (R-FEED): reading the customers XML (`xml`).

pub mod xml;
