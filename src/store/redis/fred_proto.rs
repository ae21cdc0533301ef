//! Measurement prototype: the `fred` client behind the store's connection facade, for
//! comparing it with the store's own connection (selected by the environment
//! variable `SESSIONS_REDIS_CLIENT=fred`; plain TCP, standalone and cluster only).

use bytes::Bytes;
use fred::interfaces::ClientLike;
use fred::prelude::{Builder, Client, Config, ServerConfig};
use fred::types::{ClusterHash, CustomCommand, Value as FValue};
use futures::future::try_join_all;
use redis::{Cmd, ConnectionAddr, ConnectionInfo, Pipeline, RedisError, Value};

pub(crate) fn client(infos: &[ConnectionInfo], cluster: bool) -> Result<Client, String> {
    let hosts: Vec<(String, u16)> = infos
        .iter()
        .filter_map(|i| match i.addr() {
            ConnectionAddr::Tcp(h, p) => Some((h.clone(), *p)),
            _ => None,
        })
        .collect();
    let first = hosts.first().cloned().ok_or("plain TCP only")?;
    let server = if cluster {
        ServerConfig::new_clustered(hosts)
    } else {
        ServerConfig::new_centralized(first.0, first.1)
    };
    let config = Config {
        server,
        ..Config::default()
    };
    let c = Builder::from_config(config)
        .build()
        .map_err(|e| e.to_string())?;
    let init = c.clone();
    tokio::spawn(async move {
        if let Err(e) = init.init().await {
            tracing::warn!(error = %e, "fred init");
        }
    });
    Ok(c)
}

fn custom(cmd: &Cmd) -> (CustomCommand, Vec<FValue>) {
    let mut args = cmd.args_iter().filter_map(|a| match a {
        redis::Arg::Simple(b) => Some(b),
        _ => None,
    });
    let name = String::from_utf8_lossy(args.next().unwrap_or(b"PING")).into_owned();
    let values: Vec<FValue> = args
        .map(|a| FValue::Bytes(Bytes::copy_from_slice(a)))
        .collect();
    // Only a slot given outright is used for a custom command (the others hash the
    // first argument, the SHA1 of an EVALSHA).
    let key = match name.as_str() {
        "EVALSHA" | "EVAL" => values.get(2),
        "PING" | "WAIT" => None,
        _ => values.first(),
    };
    let hash = match key {
        Some(FValue::Bytes(k)) => ClusterHash::Custom(fred::util::redis_keyslot(k)),
        _ => ClusterHash::Random,
    };
    (CustomCommand::new(name, hash, false), values)
}

fn value(v: FValue) -> Value {
    match v {
        FValue::Boolean(b) => Value::Boolean(b),
        FValue::Integer(i) => Value::Int(i),
        FValue::Double(d) => Value::Double(d),
        FValue::String(s) => Value::BulkString(s.as_bytes().to_vec()),
        FValue::Bytes(b) => Value::BulkString(b.to_vec()),
        FValue::Null => Value::Nil,
        FValue::Queued => Value::Okay,
        FValue::Map(m) => Value::Map(
            m.inner()
                .into_iter()
                .map(|(k, v)| (Value::BulkString(k.as_bytes().to_vec()), value(v)))
                .collect(),
        ),
        FValue::Array(a) => Value::Array(a.into_iter().map(value).collect()),
    }
}

fn error(e: fred::error::Error) -> RedisError {
    let text = format!("-{}\r\n", e.details());
    match redis::parse_redis_value(text.as_bytes()) {
        Ok(Value::ServerError(s)) => s.into(),
        _ => std::io::Error::other(e.to_string()).into(),
    }
}

pub(crate) async fn one(c: &Client, cmd: &Cmd) -> Result<Value, RedisError> {
    let (command, args) = custom(cmd);
    c.custom::<FValue, FValue>(command, args)
        .await
        .map(value)
        .map_err(error)
}

pub(crate) async fn many(c: &Client, p: &Pipeline) -> Result<Vec<Value>, RedisError> {
    try_join_all(p.cmd_iter().map(|cmd| one(c, cmd))).await
}
