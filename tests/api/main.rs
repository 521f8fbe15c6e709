//! Black-box tests over HTTP against real PostgreSQL (and Redis where quotas need it).
//! One binary; every test gets its own database, so tests run in parallel.

mod helpers;

mod idempotency;

mod accounts;
mod billing;
mod cli;
mod hardening;
mod invitations;
mod isolation;
mod jobs;
mod keys;
mod lifecycle;
mod mail;
mod metrics;
mod openapi;
mod passwords;
mod pgbouncer;
mod planning;
mod privilege;
mod problems;
mod provisioning;
mod quotas;
mod sessions;
mod simulations;
mod team;
mod web;
mod web_webops;
mod web_webpub;
mod web_websim;
