#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
//! whatsapp-numbers: a JSON REST API for managing WhatsApp Business phone numbers, the AI agent
//! that answers each number's inbound messages, and the number each agent sends from.
//!
//! Layers: [`api`] (HTTP) → [`service`] (use cases) → [`domain`] (rules) and [`db`] (storage).

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod db;
pub mod domain;
pub mod meta;
pub mod metrics;
pub mod service;
pub mod startup;
pub mod state;
