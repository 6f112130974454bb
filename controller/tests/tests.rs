//! The controller library's integration tests (database drivers, rotation steps, revocation
//! sweeps, concurrent audit pushes, the binary's own arguments), in one test binary, one module
//! per area. End-to-end tests of the running controller live in the workspace's `tests/`.
//! `dbs_support` is shared set-up (the local PostgreSQL, MariaDB and Redis), not a test.

mod dbs_support;

mod audit_push;
mod binary;
mod dbs_mysql;
mod dbs_postgres;
mod dbs_redis;
mod revoke_sweep;
mod rotation_steps;
