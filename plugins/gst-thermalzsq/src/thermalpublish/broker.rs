//! Where and how to connect: the `broker` URL, credentials and TLS, checked when the
//! element starts so that a typo is an error at once rather than a retry loop.

use std::fs;
use std::path::Path;
use std::time::Duration;

use rumqttc::{LastWill, MqttOptions, QoS, TlsConfiguration, Transport};

/// Largest message the element sends (and rumqttc accepts); larger ones are refused
/// before they are queued, since one the client cannot send would block the queue.
pub const MAX_PACKET: usize = 1 << 20;

/// Unacknowledged QoS 1 publishes rumqttc keeps; packet ids cycle through
/// `1..INFLIGHT`.
pub const INFLIGHT: u16 = 100;

/// A broker that vanishes without closing the connection is noticed after about one
/// and a half keep-alive periods (by us, and by the broker, which then sends the will).
const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// `mqtt://HOST[:PORT]` or `mqtts://HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl std::str::FromStr for BrokerUrl {
    type Err = String;

    fn from_str(url: &str) -> Result<Self, String> {
        let expected = || {
            format!(
                "broker '{url}' is not mqtt://HOST[:PORT] or mqtts://HOST[:PORT] (e.g. mqtt://localhost:1883)"
            )
        };
        let (tls, rest) = if let Some(rest) = url.strip_prefix("mqtt://") {
            (false, rest)
        } else if let Some(rest) = url.strip_prefix("mqtts://") {
            (true, rest)
        } else {
            return Err(expected());
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let default_port = if tls { 8883 } else { 1883 };
        // `[::1]:1883`: an IPv6 address in brackets.
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or_else(expected)?;
                (host, after.strip_prefix(':'))
            }
            None => match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            },
        };
        if host.is_empty() || host.contains(['/', '?', '#', '@']) {
            return Err(expected());
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(expected)?,
            None => default_port,
        };
        Ok(BrokerUrl {
            tls,
            host: host.to_string(),
            port,
        })
    }
}

/// What [`options`] needs besides the URL.
pub struct Login<'a> {
    pub client_id: &'a str,
    pub username: Option<&'a str>,
    pub password_file: Option<&'a Path>,
    pub ca_file: Option<&'a Path>,
    /// Where the will (`offline`, retained) goes.
    pub status_topic: &'a str,
    pub qos: QoS,
}

/// rumqttc's options for `url` and `login`; reads the password and CA files.
pub fn options(url: &BrokerUrl, login: &Login) -> Result<MqttOptions, String> {
    let mut options = MqttOptions::new(login.client_id, url.host.as_str(), url.port);
    options
        .set_keep_alive(KEEP_ALIVE)
        .set_inflight(INFLIGHT)
        .set_max_packet_size(MAX_PACKET, MAX_PACKET)
        .set_last_will(LastWill::new(
            login.status_topic,
            "offline",
            login.qos,
            true,
        ));
    match (login.username, login.password_file) {
        (Some(user), Some(file)) => {
            options.set_credentials(user, read_password(file)?);
        }
        (Some(user), None) => {
            options.set_credentials(user, "");
        }
        (None, Some(_)) => {
            return Err("password-file is set but username is not (MQTT sends a password only with a user name)".into());
        }
        (None, None) => {}
    }
    if url.tls {
        let tls = match login.ca_file {
            Some(file) => TlsConfiguration::SimpleNative {
                ca: fs::read(file)
                    .map_err(|e| format!("Cannot read ca-file {}: {e}", file.display()))?,
                client_auth: None,
            },
            None => TlsConfiguration::Native,
        };
        options.set_transport(Transport::tls_with_config(tls));
    }
    Ok(options)
}

/// The first line of the password file (a trailing newline is not part of it).
fn read_password(file: &Path) -> Result<String, String> {
    let text = fs::read_to_string(file)
        .map_err(|e| format!("Cannot read password-file {}: {e}", file.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Result<BrokerUrl, String> {
        s.parse()
    }

    #[test]
    fn urls_parse_with_default_ports() {
        let b = |tls, host: &str, port| BrokerUrl {
            tls,
            host: host.into(),
            port,
        };
        assert_eq!(url("mqtt://localhost"), Ok(b(false, "localhost", 1883)));
        assert_eq!(url("mqtts://broker.lan"), Ok(b(true, "broker.lan", 8883)));
        assert_eq!(url("mqtt://10.0.0.5:1884/"), Ok(b(false, "10.0.0.5", 1884)));
        assert_eq!(url("mqtt://[::1]:1883"), Ok(b(false, "::1", 1883)));
    }

    #[test]
    fn bad_urls_say_what_is_expected() {
        for bad in [
            "localhost:1883",
            "http://localhost",
            "mqtt://",
            "mqtt://host:port",
            "mqtt://host:0",
            "mqtt://host:1883/topic",
            "mqtt://user@host",
        ] {
            let e = url(bad).unwrap_err();
            assert!(e.contains("mqtt://HOST[:PORT]"), "{bad}: {e}");
        }
    }
}
