//! Tests of the cache; the sources are tested against fake services in tests/store_credentials.rs.
