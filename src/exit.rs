//! The process exit codes, documented in the README and `--help`.

/// Why the process exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// A runtime failure not covered below (see the log).
    Failure = 1,
    /// Bad command line (clap's own exit code).
    Usage = 2,
    /// The configuration is invalid; every problem was printed.
    Config = 3,
    /// The brokers could not be reached or answered with an error.
    Unavailable = 4,
    /// `request`: no reply arrived within the timeout.
    NoReply = 5,
    /// A broker refused the SASL credentials (wrong user or password, or a
    /// mechanism its listener does not enable).
    Authentication = 6,
    /// TLS failed: the handshake (an untrusted, expired or misnamed broker
    /// certificate, a refused client certificate), or TLS on one side only
    /// (a plaintext client on a TLS listener, or the reverse).
    Tls = 7,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// The table printed by `--help`.
pub const HELP: &str = "\
Exit codes:
  0  success
  1  runtime failure (see the log)
  2  command-line usage error
  3  invalid configuration (every problem is listed, with its key and source)
  4  brokers unreachable, or they answered with an error
  5  request: no reply within --timeout
  6  a broker refused the SASL credentials or mechanism
  7  TLS failed: untrusted, expired or misnamed broker certificate, client
     certificate refused, or TLS on one side of the connection only";
