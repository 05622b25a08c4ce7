//! A program running under `qemu-aarch64 -g PORT`, its gdbstub on 127.0.0.1 only.

use std::io;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::rsp::Client;

#[derive(Debug)]
pub struct Target {
    child: Child,
    pub client: Client,
}

/// A port nobody listens on now (qemu takes it a moment later; a lost race makes `spawn` retry).
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}

impl Target {
    /// Starts `program args` stopped at its first instruction and connects to it.
    pub fn spawn(qemu: &str, program: &Path, args: &[String]) -> io::Result<Target> {
        let mut last = io::Error::other("no attempt");
        for _ in 0..5 {
            let port = free_port()?;
            let mut child = Command::new(qemu)
                // One instruction per translated block: a signal then stops the program at any
                // instruction, not only where a block starts.
                .arg("-one-insn-per-tb")
                .arg("-g")
                .arg(port.to_string())
                .arg(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| io::Error::new(e.kind(), format!("{qemu}: {e}")))?;
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                match TcpStream::connect((Ipv4Addr::LOCALHOST, port)) {
                    Ok(s) => return Ok(Target { child, client: Client::connect(s)? }),
                    Err(_) if Instant::now() < deadline && child.try_wait()?.is_none() => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => {
                        last = e;
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
        Err(io::Error::new(last.kind(), format!("cannot reach qemu's gdbstub: {last}")))
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.client.kill();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
