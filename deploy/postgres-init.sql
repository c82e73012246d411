-- One database per service: the sidecar's keys and audit trail, and Hasura's metadata.
CREATE USER sidecar WITH PASSWORD 'sidecar';
CREATE DATABASE sidecar OWNER sidecar;
CREATE USER hasura WITH PASSWORD 'hasura';
CREATE DATABASE hasura OWNER hasura;
