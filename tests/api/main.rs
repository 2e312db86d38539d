//! Integration tests: the real server on port 0 over HTTP, a fresh database per test.
//! SQLite by default; PostgreSQL when `TEST_DATABASE_URL` names a server (see `.ci/run`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agents;
mod auth;
mod contract;
mod errors;
mod events;
mod helpers;
mod instances;
mod isolation;
mod meta_client;
mod meta_flows;
mod migrations;
mod openapi;
mod outbound;
mod phone_numbers;
mod sandbox;
mod webhooks;
