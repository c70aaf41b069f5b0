//! Integration tests of the edge agent: a real server on an ephemeral port, spoken to with a
//! real HTTP client, with its SQLite file and blobs in a temporary directory.

mod auth;
mod auto_backend;
mod batching;
mod connections;
mod data_dir;
mod doc_examples;
mod edge_errors;
mod function_hardening;
mod function_queue;
mod functions;
mod guests;
mod hostile;
mod hostile_process;
mod in_flight;
mod inference;
mod input_shapes;
mod lifecycle;
mod model_rules;
mod no_phone_home;
mod observability;
mod process;
mod readiness;
mod real_model_clients;
mod repository;
mod routes;
mod support;
mod triton_client;
