//! The Redis store (placeholder until the Redis backend lands).
